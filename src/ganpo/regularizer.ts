// The GANPO regularizer as one object: the two critics (or one shared critic), their optimizer
// and schedule, and the six running means, with the critic step and the generator loss of
// GANPO.md §5–6.

import { Critic, type CriticConfig } from '../nn/critic.js';
import { AdamW } from '../nn/optim.js';
import { makeSchedule, type Schedule, type ScheduleKind } from '../nn/schedules.js';
import type { Backend } from '../tensor/backend.js';
import type { DType } from '../tensor/dtype.js';
import { Generator } from '../tensor/random/philox.js';
import { add, concat, mul, detach, slice, type Tensor } from '../tensor/index.js';
import { criticAccuracy, criticLosses, generatorLoss, RunningMeans, type CriticScores } from './adversarial.js';

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
  losses: { chosen: Tensor; rejected: Tensor };
  accuracy: Tensor;
  scores: CriticScores;
}

export class GanpoRegularizer {
  readonly chosenCritic: Critic;
  readonly rejectedCritic: Critic;
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
    const common = { backend: opts.backend, dtype: opts.dtype, dropoutGenerator: this.dropout };
    // Each critic gets its own initialization stream, so Dc and Dr start different.
    this.chosenCritic = new Critic(criticConfig, { ...common, generator: new Generator(seed + 2) });
    this.rejectedCritic = config.sharedCritic ? this.chosenCritic : new Critic(criticConfig, { ...common, generator: new Generator(seed + 3) });
    this.optimizer = new AdamW(this.namedParameters(), { lr: config.criticLr, weightDecay: config.criticWeightDecay });
    this.schedule = makeSchedule(config.criticSchedule, config.criticLr, opts.warmupSteps, opts.totalSteps);
    this.means = new RunningMeans(config.momentum);
  }

  /** Critic parameters named `chosen.*` and `rejected.*` (only `chosen.*` when shared). */
  namedParameters(): [string, Tensor][] {
    const out: [string, Tensor][] = this.chosenCritic.namedParameters().map(([n, t]) => [`chosen.${n}`, t]);
    if (!this.config.sharedCritic) out.push(...this.rejectedCritic.namedParameters().map(([n, t]): [string, Tensor] => [`rejected.${n}`, t]));
    return out;
  }

  /** Critic state (parameters and spectral-norm buffers) by name. */
  stateDict(): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    for (const [n, t] of this.chosenCritic.stateDict()) out.set(`chosen.${n}`, t);
    if (!this.config.sharedCritic) for (const [n, t] of this.rejectedCritic.stateDict()) out.set(`rejected.${n}`, t);
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
   * `losses.chosen + losses.rejected` (scaled for accumulation) into the critics.
   * States are [2B, T, d] with chosen rows first; mask is [2B, T] for pooled modes.
   */
  criticLoss(policyHidden: Tensor, refHidden: Tensor, mask: Tensor | undefined): CriticStepResult {
    const B = policyHidden.shape[0] / 2;
    const pol = detach(policyHidden);
    const half = (t: Tensor, i: 0 | 1): Tensor => slice(t, 0, i * B, (i + 1) * B);
    const mk = (i: 0 | 1): Tensor | undefined => (mask ? half(mask, i) : undefined);
    this.chosenCritic.train();
    this.rejectedCritic.train();
    let scores: CriticScores;
    if (this.config.batchCriticCalls) {
      // One forward per critic over [policy; ref-chosen; ref-rejected] stacked on the batch axis.
      const three = (critic: Critic, first: Tensor, firstMask: Tensor | undefined): Tensor[] => {
        // refHidden is already [ref-chosen; ref-rejected]: no need to slice it and join the halves.
        const x = concat([first, refHidden], 0);
        const m = mask ? concat([firstMask!, mask], 0) : undefined;
        const s = critic.forward(x, m);
        return [0, 1, 2].map((i) => slice(s, 0, i * B, (i + 1) * B));
      };
      const [a, b, c] = three(this.chosenCritic, half(pol, 0), mk(0));
      const [a2, b2, c2] = three(this.rejectedCritic, half(pol, 1), mk(1));
      scores = { a, b, c, a2, b2, c2 };
    } else {
      scores = {
        a: this.chosenCritic.forward(half(pol, 0), mk(0)),
        b: this.chosenCritic.forward(half(refHidden, 0), mk(0)),
        c: this.chosenCritic.forward(half(refHidden, 1), mk(1)),
        a2: this.rejectedCritic.forward(half(pol, 1), mk(1)),
        b2: this.rejectedCritic.forward(half(refHidden, 0), mk(0)),
        c2: this.rejectedCritic.forward(half(refHidden, 1), mk(1)),
      };
    }
    this.means.update(scores);
    const losses = criticLosses(scores, this.means.parts(), this.config.contrastive);
    return { losses, accuracy: criticAccuracy(scores), scores };
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
    const half = (t: Tensor, i: 0 | 1): Tensor => slice(t, 0, i * B, (i + 1) * B);
    this.chosenCritic.eval().freeze();
    this.rejectedCritic.eval().freeze();
    try {
      const a = this.chosenCritic.forward(half(policyHidden, 0), mask ? half(mask, 0) : undefined);
      const a2 = this.rejectedCritic.forward(half(policyHidden, 1), mask ? half(mask, 1) : undefined);
      return generatorLoss(a, a2, this.means.parts());
    } finally {
      this.chosenCritic.unfreeze();
      this.rejectedCritic.unfreeze();
    }
  }

  /** λ·L_adv added to a base loss. */
  regularize(base: Tensor, adv: Tensor): Tensor {
    return add(base, mul(adv, this.config.lambda));
  }

  dispose(): void {
    this.optimizer.dispose();
    this.chosenCritic.dispose();
    if (!this.config.sharedCritic) this.rejectedCritic.dispose();
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
