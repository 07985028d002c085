// The GANPO regularizer as one object: the two critics (or one shared critic), their optimizer
// and schedule, and the six running means, with the critic step and the generator loss of
// GANPO.md §5–6.

import type { CriticConfig } from '../nn/critic.js';
import { CriticPair } from '../nn/criticPair.js';
import { AdamW } from '../nn/optim.js';
import { member, setMember } from '../nn/stacked.js';
import { makeSchedule, type Schedule, type ScheduleKind } from '../nn/schedules.js';
import type { Backend } from '../tensor/backend.js';
import type { DType } from '../tensor/dtype.js';
import { Generator } from '../tensor/random/philox.js';
import { add, broadcastTo, concat, concatBroadcast, mul, detach, reshape, slice, zeros, type Tensor } from '../tensor/index.js';
import { criticAccuracy, criticLosses, generatorLoss, RunningMeans, type StackedScores } from './adversarial.js';

export type PoolMode = 'all' | 'response' | 'nonpad';
export type { ScheduleKind };

export interface GanpoConfig {
  /** λ, the weight of L_adv in the policy loss (reference 1.0). */
  lambda: number;
  /** μ of the running means (0.9). */
  momentum: number;
  /** Critic learning rate; the reference uses half the policy's. */
  criticLr: number;
  criticSchedule: ScheduleKind;
  criticWeightDecay: number;
  /** Critic updates per policy step: an integer k >= 1, or a fraction 1/n for one every n steps. */
  criticStepsPerStep: number;
  /** The critic's width d_c, layers, heads, longest input and dropout. */
  criticWidth: number;
  criticLayers: number;
  criticHeads: number;
  criticMaxLen: number;
  criticDropout: number;
  /** Which positions the critics see and pool (GANPO.md §3; the reference sees 'all'). */
  pool: PoolMode;
  /** Keep the contrastive pair of each critic loss (the reference does). */
  contrastive: boolean;
  /** Ablation: one critic plays both Dc and Dr. */
  sharedCritic: boolean;
  /**
   * Score a critic's three inputs (policy, ref-chosen, ref-rejected) in one forward on the stacked
   * batch instead of three calls: the same scores up to the spectral norm's power iteration, which
   * then runs once per critic step instead of three times (the reference calls each critic three
   * times). Far fewer dispatches; the `reference` preset turns it off.
   */
  batchCriticCalls: boolean;
}

/** Defaults sized for the small models of this project; `referenceGanpo` mirrors the reference implementation. */
export function defaultGanpo(policyLr: number, contextLength: number): GanpoConfig {
  return {
    lambda: 1,
    momentum: 0.9,
    criticLr: policyLr / 2,
    criticSchedule: 'cosine',
    criticWeightDecay: 0.01,
    criticStepsPerStep: 1,
    criticWidth: 64,
    criticLayers: 2,
    criticHeads: 4,
    criticMaxLen: contextLength,
    criticDropout: 0.1,
    pool: 'all',
    contrastive: true,
    sharedCritic: false,
    batchCriticCalls: true,
  };
}

/** The reference implementation's choices (GANPO.md §4–6): d_c 512, 2 layers, 8 heads, max_len 2048. */
export function referenceGanpo(policyLr: number): GanpoConfig {
  return { ...defaultGanpo(policyLr, 2048), criticWidth: 512, criticHeads: 8, criticMaxLen: 2048, batchCriticCalls: false };
}

export interface RegularizerOptions {
  backend?: Backend;
  dtype?: DType;
  /** Seed of the critics' initialization and dropout. */
  seed?: number;
  /** Policy warmup steps and total steps, for the critic schedule. */
  warmupSteps: number;
  totalSteps: number;
}

export interface CriticStepResult {
  /** [L_Dc, L_Dr]. */
  losses: Tensor;
  accuracy: Tensor;
  /** [critic, input, B] (see StackedScores). */
  scores: StackedScores;
}

export class GanpoRegularizer {
  /**
   * Dc and Dr as one model with stacked parameters (member 0 is Dc, member 1 Dr): each critic op
   * runs once for both. With sharedCritic, one member plays both.
   */
  readonly critics: CriticPair;
  readonly optimizer: AdamW;
  readonly schedule: Schedule;
  readonly means: RunningMeans;
  /** Dropout generator of the critics (part of the training state). */
  dropout: Generator;
  /** Critic optimizer steps taken. */
  criticSteps = 0;

  constructor(readonly config: GanpoConfig, dIn: number, opts: RegularizerOptions) {
    validateGanpo(config);
    const seed = opts.seed ?? 0;
    this.dropout = new Generator(seed + 1);
    const criticConfig: CriticConfig = {
      dIn, dModel: config.criticWidth, nLayers: config.criticLayers, nHeads: config.criticHeads,
      maxLen: config.criticMaxLen, dropout: config.criticDropout,
    };
    // Each critic gets its own initialization stream, so Dc and Dr start different.
    const generators = (config.sharedCritic ? [seed + 2] : [seed + 2, seed + 3]).map((s) => new Generator(s));
    this.critics = new CriticPair(criticConfig, { backend: opts.backend, dtype: opts.dtype, generators, dropoutGenerator: this.dropout });
    this.optimizer = new AdamW(this.namedParameters(), { lr: config.criticLr, weightDecay: config.criticWeightDecay });
    this.schedule = makeSchedule(config.criticSchedule, config.criticLr, opts.warmupSteps, opts.totalSteps);
    this.means = new RunningMeans(config.momentum);
  }

  /** The critics' names, member by member: `chosen` (Dc) and `rejected` (Dr), or only `chosen` when shared. */
  get sides(): readonly string[] {
    return this.config.sharedCritic ? ['chosen'] : ['chosen', 'rejected'];
  }

  /** The stacked critic parameters ([members, ...] each) by their Critic names; what the optimizer updates. */
  namedParameters(): [string, Tensor][] {
    return this.critics.namedParameters();
  }

  /**
   * Critic state (parameters and spectral-norm buffers) by checkpoint name, `chosen.*` and
   * `rejected.*` (only `chosen.*` when shared), as PyTorch's critics name them. New tensors (copies
   * of the members): the caller disposes them, e.g. in a scope.
   */
  stateDict(): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    this.sides.forEach((side, k) => {
      for (const [n, t] of this.critics.memberState(k)) out.set(`${side}.${n}`, t);
    });
    return out;
  }

  /**
   * Loads a state dict of stateDict()'s names into the critics (every name required; checked before
   * writing). Errors name a tensor as prefix + its name (a checkpoint's `critic.`, say).
   */
  loadStateDict(state: ReadonlyMap<string, Tensor>, prefix = ''): void {
    const bySide = this.splitBySide(state, `${prefix}*`);
    this.sides.forEach((side, k) => {
      const missing = [...this.critics.stateDict().keys()].filter((n) => !bySide[k].has(n));
      if (missing.length) throw new Error(`missing tensor ${prefix}${side}.${missing[0]}`);
    });
    for (const [n, t] of this.critics.stateDict()) {
      this.sides.forEach((side, k) => {
        const src = bySide[k].get(n)!;
        if (src.shape.join() !== t.shape.slice(1).join()) throw new Error(`tensor ${prefix}${side}.${n} is [${src.shape}], expected [${t.shape.slice(1)}]`);
      });
    }
    this.sides.forEach((_, k) => this.critics.loadMember(k, bySide[k]));
  }

  /**
   * The optimizer's state under per-critic names (`chosen.<param>.exp_avg`, ...) and step counts
   * (`chosen.<param>`), as separate critics would have it. The tensors are copies the caller disposes.
   */
  optimizerState(): { tensors: Map<string, Tensor>; steps: Map<string, number> } {
    const own = this.optimizer.stateDict();
    const tensors = new Map<string, Tensor>();
    const steps = new Map<string, number>();
    this.sides.forEach((side, k) => {
      for (const [n, t] of own.tensors) tensors.set(`${side}.${n}`, member(t, k));
      for (const [n, c] of own.steps) steps.set(`${side}.${n}`, c);
    });
    return { tensors, steps };
  }

  /** Step counts of optimizerState() without copying any tensor. */
  optimizerSteps(): Map<string, number> {
    const out = new Map<string, number>();
    for (const side of this.sides) for (const [n, c] of this.optimizer.stateDict().steps) out.set(`${side}.${n}`, c);
    return out;
  }

  /** Restores optimizerState()'s form: the members' slots are stacked back; their step counts must agree. */
  loadOptimizerState(state: { tensors: ReadonlyMap<string, Tensor>; steps: ReadonlyMap<string, number> }, prefix = ''): void {
    const bySide = this.splitBySide(state.tensors, `${prefix}*`);
    const stepsBySide = this.splitBySide(state.steps, 'critic optimizer step counts');
    const tensors = new Map<string, Tensor>();
    const params = new Map(this.namedParameters());
    try {
      for (const [key, first] of bySide[0]) {
        const param = params.get(key.slice(0, key.lastIndexOf('.')));
        const stacked = zeros([this.sides.length, ...first.shape], { backend: param?.backend ?? first.backend, dtype: first.dtype });
        tensors.set(key, stacked);
        this.sides.forEach((side, k) => {
          const part = bySide[k].get(key);
          if (!part) throw new Error(`missing tensor ${prefix}${side}.${key}`);
          setMember(stacked, k, part);
        });
      }
      const steps = new Map(stepsBySide[0]);
      this.sides.forEach((side, k) => {
        for (const [n, c] of stepsBySide[k]) if (steps.get(n) !== c) throw new Error(`critic optimizer step count of ${side}.${n} (${c}) differs from chosen.${n}'s (${steps.get(n)})`);
      });
      this.optimizer.loadStateDict({ tensors, steps });
    } finally {
      for (const t of tensors.values()) t.dispose();
    }
  }

  /** Entries named `<side>.<name>` → one map per member, by name; other names are errors (naming `what`). */
  private splitBySide<V>(state: ReadonlyMap<string, V>, what: string): Map<string, V>[] {
    const out = this.sides.map(() => new Map<string, V>());
    for (const [key, v] of state) {
      const dot = key.indexOf('.');
      const k = this.sides.indexOf(key.slice(0, dot));
      if (dot < 0 || k < 0) throw new Error(`${what}: unexpected name '${key}' (expected ${this.sides.map((side) => `${side}.*`).join(' or ')})`);
      out[k].set(key.slice(dot + 1), v);
    }
    return out;
  }

  /** Whether the critics update at this policy step (criticStepsPerStep < 1 skips some). */
  updatesAt(policyStep: number): number {
    const k = this.config.criticStepsPerStep;
    if (k >= 1) return Math.round(k);
    const every = Math.round(1 / k);
    return policyStep % every === every - 1 ? 1 : 0;
  }

  /**
   * Critic losses on detached policy states and reference states (critics in training mode), and
   * the running-mean update (GANPO.md §6: from these training-mode scores). The caller backprops
   * the sum of the two losses (scaled for accumulation) into the critics.
   * States are [2B, T, d] with chosen rows first; mask is [2B, T] for pooled modes.
   */
  criticLoss(policyHidden: Tensor, refHidden: Tensor, mask: Tensor | undefined): CriticStepResult {
    const B = policyHidden.shape[0] / 2;
    const [, T, d] = policyHidden.shape;
    const pol = detach(policyHidden);
    this.critics.train();
    // Rows [from, to) of a [2B, ...] tensor, counted in halves.
    const rows = (t: Tensor, from: number, to: number): Tensor => slice(t, 0, from * B, to * B);
    // Member k of the pair sees x[k] (and mask[k]): [members, N, T, d] and [members, N, T].
    const call = (x: Tensor, m: Tensor | undefined, members: number, bases?: number[]): Tensor => {
      const N = x.shape[0] / members;
      return this.critics.forward(reshape(x, [members, N, T, d]), m && reshape(m, [members, N, T]), { dropoutBases: bases });
    };
    // [n, ...] → [2, n, ...]: both critics see all of it.
    const twice = (t: Tensor): Tensor => broadcastTo(reshape(t, [1, ...t.shape]), [2, ...t.shape]);
    let scores: Tensor; // [critic, input, B]: input 0 the critic's own policy half, 1 ref-chosen, 2 ref-rejected
    if (this.config.sharedCritic) {
      // One critic plays Dc, then Dr, on the same calls two critics would get.
      const roles = [0, 1].map((i) => {
        const own = rows(pol, i, i + 1);
        const ownMask = mask && rows(mask, i, i + 1);
        if (this.config.batchCriticCalls) return call(concat([own, refHidden], 0), mask && concat([ownMask!, mask], 0), 1);
        const inputs: [Tensor, Tensor | undefined][] = [[own, ownMask], [rows(refHidden, 0, 1), mask && rows(mask, 0, 1)], [rows(refHidden, 1, 2), mask && rows(mask, 1, 2)]];
        return concat(inputs.map(([x, m]) => call(x, m, 1)), 1);
      });
      scores = concat(roles, 0);
    } else if (this.config.batchCriticCalls) {
      // One forward of both critics, each over [its policy half; ref-chosen; ref-rejected].
      // The reference states are read in place for both critics (no broadcast copy).
      const x = concatBroadcast([reshape(pol, [2, B, T, d]), reshape(refHidden, [1, 2 * B, T, d])], 1);
      const m = mask && concatBroadcast([reshape(mask, [2, B, T]), reshape(mask, [1, 2 * B, T])], 1);
      scores = call(reshape(x, [6 * B, T, d]), m && reshape(m, [6 * B, T]), 2);
    } else {
      // The reference's three calls per critic (three power iterations each), with the dropout
      // draws laid out as three calls of Dc and then three of Dr would take them.
      const per = this.critics.dropoutDraws(B, T);
      const base = per > 0 ? this.dropout.next(6 * per) : 0;
      // Call j: each critic's own policy half (j = 0), then ref-chosen, then ref-rejected for both.
      const inputs: [Tensor, Tensor | undefined][] = [[pol, mask], ...[0, 1].map((i): [Tensor, Tensor | undefined] => [
        twice(rows(refHidden, i, i + 1)), mask && twice(rows(mask, i, i + 1)),
      ])];
      scores = concat(inputs.map(([x, m], j) => reshape(call(reshape(x, [2 * B, T, d]), m && reshape(m, [2 * B, T]), 2, [base + j * per, base + (3 + j) * per]), [2, 1, B])), 1);
    }
    const s = reshape(scores, [2, 3, B]);
    this.means.update(s);
    return { losses: criticLosses(s, this.means.current(), this.config.contrastive), accuracy: criticAccuracy(s), scores: s };
  }

  /**
   * One critic optimizer step at the schedule's learning rate; clears the critic gradients. With a
   * gate (one f32 element on the device), the update happens only where gate != 0; a caller that
   * reads back a zero gate calls revertCriticStep().
   */
  criticStep(gate?: Tensor): void {
    this.optimizer.lr = this.schedule.lrAt(this.criticSteps);
    this.optimizer.step({ gate });
    this.optimizer.zeroGrad();
    this.criticSteps++;
  }

  /** The last gated criticStep did not happen: its step counts go back. */
  revertCriticStep(): void {
    this.optimizer.revertStepCounts();
    this.criticSteps--;
  }

  /** L_adv with critics frozen and in eval mode; gradients flow through them into the policy states. */
  generatorLoss(policyHidden: Tensor, mask: Tensor | undefined): Tensor {
    const B = policyHidden.shape[0] / 2;
    const [, T, d] = policyHidden.shape;
    const K = this.critics.count;
    this.critics.eval().freeze();
    try {
      // [policy-chosen; policy-rejected] is already Dc's and Dr's input side by side (a shared
      // critic scores all 2B rows as its one member: eval mode, so rows do not interact).
      const s = this.critics.forward(reshape(policyHidden, [K, (2 * B) / K, T, d]), mask && reshape(mask, [K, (2 * B) / K, T]));
      return generatorLoss(reshape(s, [2, B]), this.means.current());
    } finally {
      this.critics.unfreeze();
    }
  }

  /** λ·L_adv added to a base loss. */
  regularize(base: Tensor, adv: Tensor): Tensor {
    // λ = 1 (the default) needs no scaling kernel, forward or backward.
    return add(base, this.config.lambda === 1 ? adv : mul(adv, this.config.lambda));
  }

  dispose(): void {
    this.optimizer.dispose();
    this.critics.dispose();
    this.means.dispose();
  }
}

export function validateGanpo(c: GanpoConfig): void {
  const bad = (field: string, why: string): never => {
    throw new Error(`GANPO config: ${field} ${why}`);
  };
  if (!(c.lambda >= 0)) bad('lambda', `must be >= 0, got ${c.lambda}`);
  if (!(c.momentum >= 0 && c.momentum < 1)) bad('momentum', `must be in [0, 1), got ${c.momentum}`);
  if (!(c.criticLr >= 0)) bad('criticLr', `must be >= 0, got ${c.criticLr}`);
  if (!(c.criticStepsPerStep > 0)) bad('criticStepsPerStep', `must be > 0, got ${c.criticStepsPerStep}`);
  if (c.criticStepsPerStep < 1 && !Number.isInteger(1 / c.criticStepsPerStep)) bad('criticStepsPerStep', `below 1 must be 1/n, got ${c.criticStepsPerStep}`);
  for (const f of ['criticWidth', 'criticLayers', 'criticHeads', 'criticMaxLen'] as const) {
    if (!(Number.isInteger(c[f]) && c[f] >= 1)) bad(f, `must be a positive integer, got ${c[f]}`);
  }
  if (c.criticWidth % c.criticHeads !== 0) bad('criticWidth', `${c.criticWidth} must be divisible by criticHeads ${c.criticHeads}`);
  if (!(c.criticDropout >= 0 && c.criticDropout < 1)) bad('criticDropout', `must be in [0, 1), got ${c.criticDropout}`);
}
