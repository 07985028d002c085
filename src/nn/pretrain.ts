// Causal language-model pretraining on a token stream: random windows, AdamW with warmup and
// cosine decay, gradient clipping, periodic validation loss. Used by `ganpo pretrain`.

import { GPT, type GPTConfig } from './gpt.js';
import { AdamW, clipGradNorm } from './optim.js';
import { warmupCosine } from './schedules.js';
import type { Backend } from '../tensor/backend.js';
import { Generator, uniformAt } from '../tensor/random/philox.js';
import { backward, crossEntropy, keep, noGrad, tensor, tidy, type Tensor } from '../tensor/index.js';

export interface PretrainConfig {
  model: GPTConfig;
  batchSize: number;
  steps: number;
  lr: number;
  minLr: number;
  warmupSteps: number;
  weightDecay: number;
  gradClip: number;
  seed: number;
  /** Validation every N steps (and at the end), over evalBatches fixed batches. */
  evalEvery: number;
  evalBatches: number;
}

export interface PretrainStep {
  step: number;
  loss: number;
  lr: number;
  gradNorm: number;
  tokens: number;
  seconds: number;
}

export interface PretrainHooks {
  /** Called after each step; may return a promise (e.g. a periodic save), which is awaited. */
  onStep?: (s: PretrainStep) => void | Promise<void>;
  onEval?: (step: number, valLoss: number) => void;
  /** Checked after every step; return true to stop early (e.g. on SIGINT). */
  shouldStop?: () => boolean;
}

/** Input/target windows of length T starting at seeded random positions of the stream. */
export function sampleWindows(stream: Int32Array, T: number, count: number, gen: Generator): { ids: Int32Array; targets: Int32Array } {
  const span = stream.length - T - 1;
  if (span < 1) throw new Error(`token stream of ${stream.length} tokens is too short for windows of ${T + 1}`);
  const offset = gen.next(count);
  const ids = new Int32Array(count * T);
  const targets = new Int32Array(count * T);
  for (let b = 0; b < count; b++) {
    const s = Math.floor(uniformAt(gen.key, offset, b) * span);
    ids.set(stream.subarray(s, s + T), b * T);
    targets.set(stream.subarray(s + 1, s + T + 1), b * T);
  }
  return { ids, targets };
}

/** Mean next-token cross-entropy over fixed windows (same windows every call). */
export async function validationLoss(model: GPT, stream: Int32Array, cfg: PretrainConfig, backend: Backend): Promise<number> {
  const gen = new Generator(cfg.seed + 7777);
  const T = cfg.model.contextLength;
  let total = 0;
  const wasTraining = model.training;
  model.eval();
  for (let i = 0; i < cfg.evalBatches; i++) {
    const w = sampleWindows(stream, T, cfg.batchSize, gen);
    const loss = noGrad(() => tidy(() => {
      const ids = tensor(w.ids, [cfg.batchSize, T], { dtype: 'i32', backend });
      const tg = tensor(w.targets, [cfg.batchSize, T], { dtype: 'i32', backend });
      return crossEntropy(model.forward(ids).logits, tg);
    }));
    total += await loss.item();
    loss.dispose();
  }
  model.train(wasTraining);
  return total / cfg.evalBatches;
}

/** Weight decay on matrices and embedding tables only, not on biases or LayerNorm parameters. */
function decays(_name: string, p: Tensor): boolean {
  return p.rank >= 2;
}

/** Trains `model` in place on the train stream. Returns the per-step history. */
export async function pretrain(model: GPT, cfg: PretrainConfig, train: Int32Array, val: Int32Array, backend: Backend, hooks: PretrainHooks = {}): Promise<{ steps: PretrainStep[]; val: [number, number][] }> {
  const T = cfg.model.contextLength;
  const opt = new AdamW(model, { lr: cfg.lr, weightDecay: cfg.weightDecay, betas: [0.9, 0.95], decay: decays });
  const schedule = warmupCosine({ peakLr: cfg.lr, warmupSteps: cfg.warmupSteps, totalSteps: cfg.steps, minLr: cfg.minLr });
  const gen = new Generator(cfg.seed);
  const history: PretrainStep[] = [];
  const valHistory: [number, number][] = [];
  const start = performance.now();
  model.train();
  for (let step = 0; step < cfg.steps; step++) {
    const w = sampleWindows(train, T, cfg.batchSize, gen);
    const loss = tidy(() => {
      const ids = tensor(w.ids, [cfg.batchSize, T], { dtype: 'i32', backend });
      const tg = tensor(w.targets, [cfg.batchSize, T], { dtype: 'i32', backend });
      const l = crossEntropy(model.forward(ids).logits, tg);
      backward(l);
      return keep(l.detach());
    });
    const norm = clipGradNorm(model.parameters(), cfg.gradClip);
    opt.lr = schedule.lrAt(step);
    opt.step();
    opt.zeroGrad();
    const [lv, nv] = [await loss.item(), await norm.item()];
    loss.dispose();
    norm.dispose();
    if (!Number.isFinite(lv)) throw new Error(`pretraining diverged at step ${step + 1}: loss ${lv}`);
    const s: PretrainStep = { step: step + 1, loss: lv, lr: opt.lr, gradNorm: nv, tokens: (step + 1) * cfg.batchSize * T, seconds: (performance.now() - start) / 1000 };
    history.push(s);
    await hooks.onStep?.(s);
    const last = step === cfg.steps - 1 || hooks.shouldStop?.();
    if ((cfg.evalEvery > 0 && (step + 1) % cfg.evalEvery === 0) || last) {
      const v = await validationLoss(model, val, cfg, backend);
      valHistory.push([step + 1, v]);
      hooks.onEval?.(step + 1, v);
    }
    // Let signal handlers run (CPU-backend awaits never leave the microtask queue).
    await new Promise((resolve) => setImmediate(resolve));
    if (hooks.shouldStop?.()) break;
  }
  opt.dispose();
  return { steps: history, val: valHistory };
}
