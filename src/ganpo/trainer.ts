// The preference trainer: one optimizer step of GANPO.md §6 (policy and reference forwards,
// critic step, base loss + λ·L_adv), gradient accumulation, clipping, schedules, non-finite
// guards, held-out evaluation and exact-resume checkpoints.

import type { GPT } from '../nn/gpt.js';
import { AdamW, clipGradNorm } from '../nn/optim.js';
import { makeSchedule, type Schedule } from '../nn/schedules.js';
import { arrayToTensor, saveCheckpoint, withPrefix, type LoadedCheckpoint } from '../nn/checkpoint.js';
import { copyInto } from '../nn/module.js';
import {
  add, backward, closeScope, concat, defaultGenerator, full, keep, lt, mean, mul, noGrad, openScope, setDefaultGenerator, slice, reshape, sumOfSquares, tensor, tidy,
  type Backend, type Tensor,
} from '../tensor/index.js';
import { Generator, type GeneratorState } from '../tensor/random/philox.js';
import { BatchSampler, collatePairs, type PairBatch, type TokenizedPair } from './data.js';
import { responseLogProbsAtRows, responseRows } from './logprobs.js';
import { preferenceLoss, type BaseLossConfig } from './losses.js';
import { GanpoRegularizer, type GanpoConfig, type ScheduleKind } from './regularizer.js';
import { RUNNING_MEAN_NAMES } from './adversarial.js';
import { cachedReference, type ReferenceCache } from './refcache.js';

export interface TrainConfig {
  base: BaseLossConfig;
  /** null trains the base loss alone. */
  ganpo: GanpoConfig | null;
  lr: number;
  schedule: ScheduleKind;
  warmupSteps: number;
  /** Optimizer steps. */
  steps: number;
  /** Pairs per micro-batch. */
  batchSize: number;
  gradAccum: number;
  maxGradNorm: number;
  weightDecay: number;
  /** Evaluate on the held-out pairs every N steps (0: only at the end). */
  evalEvery: number;
  seed: number;
  /** Consecutive skipped (non-finite) steps that stop training. */
  maxBadSteps: number;
}

export function defaultTrainConfig(base: BaseLossConfig): TrainConfig {
  return {
    base, ganpo: null, lr: 1e-4, schedule: 'cosine', warmupSteps: 0, steps: 100, batchSize: 8, gradAccum: 1,
    maxGradNorm: 1, weightDecay: 0, evalEvery: 0, seed: 0, maxBadSteps: 3,
  };
}

/** Metrics of one optimizer step, named as in TRL plus the GANPO ones. */
export type StepMetrics = Record<string, number>;

/** Thrown when repeated non-finite steps stop training; names the first non-finite tensor. */
export class NonFiniteError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NonFiniteError';
  }
}

// Order of the packed metrics vector of a step.
const BASE_METRICS = ['loss', 'rewards/chosen', 'rewards/rejected', 'rewards/accuracies', 'rewards/margins', 'logps/chosen', 'logps/rejected', 'base_loss'] as const;
const GANPO_METRICS = ['ganpo/generator_loss'] as const;
const CRITIC_METRICS = ['ganpo/critic_loss_chosen', 'ganpo/critic_loss_rejected', 'ganpo/critic_accuracy'] as const;

function allFinite(xs: ArrayLike<number>): boolean {
  for (let i = 0; i < xs.length; i++) if (!Number.isFinite(xs[i])) return false;
  return true;
}

export interface TrainerOptions {
  /** Pad id for collation (the tokenizer's end-of-text id). */
  padId: number;
  backend?: Backend;
  /**
   * Precomputed reference outputs for the training pairs (see refcache.ts): the reference forward
   * is then skipped during training. Held-out evaluation still runs the reference.
   */
  referenceCache?: ReferenceCache;
}

export class PreferenceTrainer {
  /** Optimizer steps taken (including skipped ones). */
  step = 0;
  skippedSteps = 0;
  skippedCriticSteps = 0;
  private consecutiveBad = 0;
  readonly optimizer: AdamW;
  readonly schedule: Schedule;
  readonly regularizer: GanpoRegularizer | null;
  readonly sampler: BatchSampler;
  private readonly backend: Backend;
  private readonly params: Tensor[];

  constructor(
    readonly policy: GPT,
    readonly reference: GPT | null,
    readonly train: readonly TokenizedPair[],
    readonly heldOut: readonly TokenizedPair[],
    readonly config: TrainConfig,
    readonly opts: TrainerOptions,
  ) {
    const c = config;
    if (c.base.kind !== 'simpo' || c.ganpo) {
      if (!reference) throw new Error(`${c.base.kind}${c.ganpo ? ' with GANPO' : ''} needs a reference model`);
    }
    for (const [k, v] of [['steps', c.steps], ['batchSize', c.batchSize], ['gradAccum', c.gradAccum]] as const) {
      if (!(Number.isInteger(v) && v >= 1)) throw new Error(`train config: ${k} must be a positive integer, got ${v}`);
    }
    this.backend = opts.backend ?? policy.parameters()[0].backend;
    this.params = policy.parameters();
    this.optimizer = new AdamW(policy, { lr: c.lr, weightDecay: c.weightDecay });
    this.schedule = makeSchedule(c.schedule, c.lr, c.warmupSteps, c.steps);
    this.sampler = new BatchSampler(train.length, c.batchSize, c.seed);
    this.regularizer = c.ganpo
      ? new GanpoRegularizer(c.ganpo, policy.config.dModel, {
        backend: this.backend, seed: c.seed + 100, warmupSteps: c.warmupSteps, totalSteps: c.steps,
      })
      : null;
    this.reference?.eval().freeze();
  }

  private batchTensors(batch: PairBatch) {
    const rows = 2 * batch.pairs;
    const o = { backend: this.backend };
    return {
      ids: tensor(batch.ids, [rows, batch.length], { ...o, dtype: 'i32' }),
      attn: tensor(batch.attentionMask, [rows, batch.length], o),
      resp: tensor(batch.responseMask, [rows, batch.length], o),
    };
  }

  private poolMask(t: { attn: Tensor; resp: Tensor }): Tensor | undefined {
    const pool = this.config.ganpo?.pool ?? 'all';
    return pool === 'all' ? undefined : pool === 'response' ? t.resp : t.attn;
  }

  /** Base loss and reward metrics for one batch; ref is computed under noGrad (or read from the cache for training pairs idx). */
  private forward(batch: PairBatch, withHidden: boolean, idx?: readonly number[]) {
    const t = this.batchTensors(batch);
    // Logits only where a response token is predicted: the LM head is most of a small model's cost.
    const rows = responseRows(batch);
    const headRows = tensor(rows, [rows.length], { dtype: 'i32', backend: this.backend });
    const out = this.policy.forward(t.ids, { attentionMask: t.attn, returnHidden: withHidden, headRows });
    const lp = responseLogProbsAtRows(out.logits, batch, rows);
    const B = batch.pairs;
    const needRef = this.config.base.kind !== 'simpo' || withHidden;
    const cache = this.opts.referenceCache;
    if (cache && idx && withHidden && !cache.hidden) throw new Error('the reference cache holds no hidden states; build it with GANPO on');
    const ref = needRef && cache && idx
      ? cachedReference(cache, idx, batch.length, this.backend)
      : needRef && this.reference
      ? noGrad(() => {
        const r = this.reference!.forward(t.ids, { attentionMask: t.attn, returnHidden: withHidden, headRows });
        return { sum: responseLogProbsAtRows(r.logits, batch, rows).sum, hidden: r.hidden };
      })
      : null;
    const half = (x: Tensor, i: 0 | 1): Tensor => slice(x, 0, i * B, (i + 1) * B);
    const base = preferenceLoss(this.config.base, {
      policyChosen: half(lp.sum, 0), policyRejected: half(lp.sum, 1),
      refChosen: ref ? half(ref.sum, 0) : undefined, refRejected: ref ? half(ref.sum, 1) : undefined,
      chosenLength: half(lp.lengths, 0), rejectedLength: half(lp.lengths, 1),
    });
    const margins = noGrad(() => base.chosenRewards.sub(base.rejectedRewards));
    // Metrics carry no graph: they are only read back. The six batch means as one [6] tensor (rewards
    // chosen and rejected, accuracy, margin, log-probs chosen and rejected): one concat and one reduction.
    const metrics = noGrad(() => {
      const row = (x: Tensor) => reshape(x, [1, B]);
      return mean(concat([row(base.chosenRewards), row(base.rejectedRewards), row(margins.gt(0)), row(margins), reshape(lp.sum, [2, B])], 0), 1);
    });
    return { t, out, ref, base, metrics };
  }

  /**
   * Critic update(s) at the accumulation boundary; a non-finite critic step (losses, accuracy or
   * gradient) is skipped rather than applied. One update (the default) is gated on the device: the
   * AdamW kernels run only if the check passed, and the gate is read back with the step's other
   * scalars (no mid-step readback; the caller reverts the step counts of a skipped update). Several
   * updates per step read each check back before the next forward. Returns the skipped count so
   * far and the gate to read back, if any.
   */
  private async criticUpdates(reg: GanpoRegularizer, scored: readonly Tensor[], batch: PairBatch, idx: readonly number[], updates: number): Promise<{ skipped: number; gate: Tensor | null }> {
    const gateOf = (values: readonly Tensor[]) => finiteGate([...reg.namedParameters().flatMap(([, p]) => (p.grad ? [p.grad] : [])), ...values]);
    if (updates === 1) {
      const gate = keep(gateOf(scored));
      reg.criticStep(gate);
      return { skipped: 0, gate };
    }
    let skipped = 0;
    for (let k = 0; k < updates; k++) {
      let values = scored;
      if (k > 0) {
        // Further updates in the same step re-score the same batch with the updated critics.
        values = tidy(() => {
          const f = this.forward(batch, true, idx);
          const cr = reg.criticLoss(f.out.hidden!, f.ref!.hidden!, this.poolMask(f.t));
          backwardEach(cr.losses, 1);
          return [keep(cr.losses), keep(cr.accuracy)];
        });
      }
      const check = gateOf(values);
      const ok = (await check.data())[0] === 1;
      check.dispose();
      if (k > 0) values.forEach((t) => t.dispose());
      if (ok) reg.criticStep();
      else {
        reg.optimizer.zeroGrad();
        skipped++;
      }
    }
    return { skipped, gate: null };
  }

  /** One optimizer step over gradAccum micro-batches (GANPO.md §6). Returns the step's metrics. */
  async trainStep(): Promise<StepMetrics> {
    const c = this.config;
    const reg = this.regularizer;
    const accum = c.gradAccum;
    let sums: Tensor | null = null;
    let criticLossSums: Tensor | null = null;
    let criticAccuracySums: Tensor | null = null;
    let criticSkipped = 0;
    let criticGate: Tensor | null = null;
    let tokens = 0;
    for (let micro = 0; micro < accum; micro++) {
      const idx = this.sampler.batch(this.step * accum + micro);
      const batch = collatePairs(idx.map((i) => this.train[i]), this.opts.padId);
      tokens += batch.tokenCounts.reduce((a, b) => a + b, 0);
      const scope = openScope();
      try {
        const f = this.forward(batch, reg !== null, idx);
        let loss = f.base.loss;
        const extra: Tensor[] = [];
        if (reg) {
          const mask = this.poolMask(f.t);
          const cr = reg.criticLoss(f.out.hidden!, f.ref!.hidden!, mask);
          backwardEach(cr.losses, accum);
          if (micro === accum - 1) ({ skipped: criticSkipped, gate: criticGate } = await this.criticUpdates(reg, [cr.losses, cr.accuracy], batch, idx, reg.updatesAt(this.step)));
          criticLossSums = accumulate(criticLossSums, cr.losses.detach());
          criticAccuracySums = accumulate(criticAccuracySums, cr.accuracy);
          const adv = reg.generatorLoss(f.out.hidden!, mask);
          loss = reg.regularize(loss, adv);
          extra.push(adv);
        }
        backward(perMicro(loss, accum));
        sums = accumulate(sums, noGrad(() => concat([asVector(loss), f.metrics, ...[f.base.loss, ...extra].map(asVector)], 0)));
      } finally {
        closeScope(scope);
      }
    }
    // One readback for the step's scalars and the policy's gradient norm, before the update.
    const norm = clipGradNorm(this.params, c.maxGradNorm);
    const packed = tidy(() => {
      const parts = [perMicro(sums!, accum), norm];
      if (criticLossSums) parts.push(perMicro(criticLossSums, accum), perMicro(criticAccuracySums!, accum));
      if (reg) parts.push(reg.means.value!);
      if (criticGate) parts.push(criticGate);
      return stackFlat(parts);
    });
    const values = await packed.data();
    for (const t of [packed, norm, sums!, criticLossSums, criticAccuracySums, criticGate]) t?.dispose();
    if (criticGate && values[values.length - 1] === 0) {
      // The gated critic update did not happen (a non-finite check): count it, undo its counts.
      reg!.revertCriticStep();
      criticSkipped++;
    }
    const metrics: StepMetrics = { step: this.step + 1, lr: this.schedule.lrAt(this.step) };
    let i = 0;
    for (const n of [...BASE_METRICS, ...(reg ? GANPO_METRICS : [])]) metrics[n] = values[i++];
    metrics.grad_norm = values[i++];
    if (reg) {
      for (const n of CRITIC_METRICS) metrics[n] = values[i++];
      for (const n of RUNNING_MEAN_NAMES) metrics[`ganpo/${n}`] = values[i++];
      metrics['ganpo/critic_lr'] = reg.schedule.lrAt(Math.max(0, reg.criticSteps - 1));
      metrics['ganpo/critic_skipped'] = criticSkipped;
      this.skippedCriticSteps += criticSkipped;
    }
    metrics.tokens = tokens;
    const finite = Number.isFinite(metrics.loss) && Number.isFinite(metrics.grad_norm);
    if (finite) {
      this.optimizer.lr = this.schedule.lrAt(this.step);
      this.optimizer.step();
      this.consecutiveBad = 0;
    } else {
      this.skippedSteps++;
      this.consecutiveBad++;
    }
    metrics.skipped = finite ? 0 : 1;
    if (!finite && this.consecutiveBad >= c.maxBadSteps) {
      const culprit = await this.firstNonFinite(metrics);
      this.optimizer.zeroGrad();
      throw new NonFiniteError(`training stopped after ${this.consecutiveBad} consecutive non-finite steps (step ${this.step + 1}); first non-finite value: ${culprit}`);
    }
    this.optimizer.zeroGrad();
    this.step++;
    return metrics;
  }

  /** Names the first non-finite quantity of a bad step: a loss term, else a parameter's gradient. */
  private async firstNonFinite(m: StepMetrics): Promise<string> {
    for (const k of ['base_loss', 'ganpo/generator_loss', 'loss']) if (k in m && !Number.isFinite(m[k])) return `${k} = ${m[k]}`;
    for (const [name, p] of this.policy.namedParameters()) {
      if (!p.grad) continue;
      if (!allFinite(await p.grad.data())) return `gradient of ${name}`;
    }
    return `grad_norm = ${m.grad_norm}`;
  }

  /** Held-out preference metrics (no gradient): loss, reward accuracy and margins, log-probs. */
  async evaluate(maxPairs = Infinity): Promise<StepMetrics> {
    const pairs = this.heldOut.slice(0, Math.min(this.heldOut.length, maxPairs));
    if (pairs.length === 0) return {};
    const bs = this.config.batchSize;
    const totals = new Float64Array(7);
    const wasTraining = this.policy.training;
    this.policy.eval();
    try {
      for (let s = 0; s < pairs.length; s += bs) {
        const chunk = pairs.slice(s, s + bs);
        const batch = collatePairs(chunk, this.opts.padId);
        const v = await noGrad(() => tidy(() => {
          const f = this.forward(batch, false);
          return keep(concat([asVector(f.base.loss), f.metrics], 0));
        })).data();
        for (let i = 0; i < 7; i++) totals[i] += v[i] * chunk.length;
      }
    } finally {
      this.policy.train(wasTraining);
    }
    const names = ['eval/loss', 'eval/rewards/chosen', 'eval/rewards/rejected', 'eval/rewards/accuracies', 'eval/rewards/margins', 'eval/logps/chosen', 'eval/logps/rejected'];
    return Object.fromEntries(names.map((n, i) => [n, totals[i] / pairs.length]));
  }

  /**
   * Everything needed to resume exactly: tensors by name and JSON metadata. The critic entries
   * (`critic.chosen.*`, `optim.critic.rejected.*`, ...) are copies of the stacked critics' halves:
   * call this inside a scope (tidy, openScope) that frees them.
   */
  stateTensors(): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    for (const [n, t] of this.policy.stateDict()) out.set(`policy.${n}`, t);
    for (const [n, t] of this.optimizer.stateDict().tensors) out.set(`optim.policy.${n}`, t);
    if (this.regularizer) {
      for (const [n, t] of this.regularizer.stateDict()) out.set(`critic.${n}`, t);
      for (const [n, t] of this.regularizer.optimizerState().tensors) out.set(`optim.critic.${n}`, t);
    }
    return out;
  }

  async stateMetadata(): Promise<TrainerState> {
    const reg = this.regularizer;
    return {
      version: 1,
      step: this.step,
      skippedSteps: this.skippedSteps,
      skippedCriticSteps: this.skippedCriticSteps,
      consecutiveBad: this.consecutiveBad,
      policySteps: [...this.optimizer.stateDict().steps],
      criticSteps: reg ? [...reg.optimizerSteps()] : null,
      criticStepCount: reg?.criticSteps ?? 0,
      runningMeans: reg ? await reg.means.toArray() : null,
      criticDropout: reg?.dropout.state() ?? null,
      defaultGenerator: defaultGenerator().state(),
      config: this.config,
    };
  }

  /** Writes an atomic checkpoint (one safetensors file) with extra caller metadata (model config, tokenizer). */
  async save(path: string, extra: Record<string, unknown> = {}): Promise<void> {
    const scope = openScope();
    try {
      await saveCheckpoint(path, this.stateTensors(), { trainer: await this.stateMetadata(), ...extra });
    } finally {
      closeScope(scope);
    }
  }

  /** Restores a checkpoint written by save(); the trainer must have been built with the same config. */
  load(ckpt: LoadedCheckpoint): void {
    const meta = (ckpt.metadata as { trainer?: TrainerState } | null)?.trainer;
    if (!meta || meta.version !== 1) throw new Error(`${ckpt.file}: not a trainer checkpoint (no trainer metadata)`);
    if (JSON.stringify(meta.config) !== JSON.stringify(this.config)) {
      throw new Error(`${ckpt.file}: the checkpoint's training config differs from this run's; resume with the same settings`);
    }
    const load = (prefix: string, target: ReadonlyMap<string, Tensor>): void => {
      const arrays = withPrefix(ckpt.arrays, prefix);
      for (const [name, t] of target) {
        const a = arrays.get(name);
        if (!a) throw new Error(`${ckpt.file}: missing tensor ${prefix}${name}`);
        const src = arrayToTensor(a, prefix + name, ckpt.file, { backend: t.backend, dtype: t.dtype });
        if (src.shape.join() !== t.shape.join()) throw new Error(`${ckpt.file}: tensor ${prefix}${name} is [${src.shape}], expected [${t.shape}]`);
        copyInto(t, src);
        src.dispose();
      }
    };
    load('policy.', this.policy.stateDict());
    const optTensors = (opt: AdamW, prefix: string, steps: [string, number][]): void => {
      const arrays = withPrefix(ckpt.arrays, prefix);
      const tensors = new Map<string, Tensor>();
      for (const [n, a] of arrays) tensors.set(n, keep(arrayToTensor(a, prefix + n, ckpt.file, { backend: this.backend })));
      opt.loadStateDict({ tensors, steps: new Map(steps) });
    };
    optTensors(this.optimizer, 'optim.policy.', meta.policySteps);
    if (this.regularizer) {
      const reg = this.regularizer;
      // The critics are stacked: their per-critic checkpoint tensors are loaded through the regularizer.
      const like = reg.namedParameters()[0][1];
      const fromFile = (prefix: string): Map<string, Tensor> => {
        const out = new Map<string, Tensor>();
        for (const [n, a] of withPrefix(ckpt.arrays, prefix)) out.set(n, arrayToTensor(a, prefix + n, ckpt.file, { backend: like.backend, dtype: like.dtype }));
        return out;
      };
      const scope = openScope();
      try {
        reg.loadStateDict(fromFile('critic.'), 'critic.');
        reg.loadOptimizerState({ tensors: fromFile('optim.critic.'), steps: new Map(meta.criticSteps ?? []) }, 'optim.critic.');
      } catch (e) {
        throw new Error(`${ckpt.file}: ${(e as Error).message}`);
      } finally {
        closeScope(scope);
      }
      reg.criticSteps = meta.criticStepCount;
      reg.means.load(meta.runningMeans, this.params[0]);
      if (meta.criticDropout) reg.dropout.seek(meta.criticDropout.offset);
    }
    setDefaultGenerator(Generator.fromState(meta.defaultGenerator));
    this.step = meta.step;
    this.skippedSteps = meta.skippedSteps;
    this.skippedCriticSteps = meta.skippedCriticSteps;
    this.consecutiveBad = meta.consecutiveBad;
  }

  dispose(): void {
    this.optimizer.dispose();
    this.regularizer?.dispose();
  }
}

export interface TrainerState {
  version: 1;
  step: number;
  skippedSteps: number;
  skippedCriticSteps: number;
  consecutiveBad: number;
  policySteps: [string, number][];
  criticSteps: [string, number][] | null;
  criticStepCount: number;
  runningMeans: number[] | null;
  criticDropout: GeneratorState | null;
  defaultGenerator: GeneratorState;
  config: TrainConfig;
}

function accumulate(acc: Tensor | null, v: Tensor): Tensor {
  if (!acc) return keep(v);
  const next = keep(noGrad(() => add(acc, v)));
  acc.dispose();
  v.dispose();
  return next;
}

/** A scalar as a [1] vector (a view), to concat with others. */
function asVector(x: Tensor): Tensor {
  return reshape(x, [1]);
}

/** A micro-batch's share of an accumulated quantity: x / accum (no kernel without accumulation). */
/**
 * Backward of the sum of the elements of xs (the critics' losses) over accum micro-batches: the
 * output gradient 1/accum per element seeds backward directly (one fill, not a sum, a scale and a
 * broadcast of its gradient).
 */
function backwardEach(xs: Tensor, accum: number): void {
  backward(xs, full(xs.shape, 1 / accum, { backend: xs.backend, dtype: xs.dtype }));
}

function perMicro(x: Tensor, accum: number): Tensor {
  return accum === 1 ? x : mul(x, 1 / accum);
}

/**
 * 1 when every element of every tensor is finite, else 0, as one f32 on the device: Σx² < ∞ fails
 * for a NaN or an infinite sum (a square past f32's range counts as non-finite, as the gradient norm
 * it stands for would). The sum of squares and one compare; nothing read back.
 */
export function finiteGate(xs: readonly Tensor[]): Tensor {
  return noGrad(() => lt(sumOfSquares(xs), Infinity));
}

function stackFlat(parts: Tensor[]): Tensor {
  return concat(parts.map((p) => p.reshape([p.size])), 0);
}
