// The training loop around PreferenceTrainer: progress bar, JSONL metrics, periodic held-out
// evaluation, periodic and on-signal checkpoints (SIGINT/SIGTERM stop cleanly after the step).

import { appendFileSync } from 'node:fs';
import type { PreferenceTrainer, StepMetrics } from './trainer.js';
import { Progress } from './progress.js';

export interface LoopOptions {
  /** Append one JSON line per step (and per evaluation) here. */
  metricsPath?: string;
  /** Trainer checkpoint path (written atomically). */
  checkpointPath?: string;
  /** Checkpoint every N steps (0: only at the end and on a signal). */
  saveEvery?: number;
  /** Extra metadata stored with checkpoints (model config, tokenizer). */
  checkpointMeta?: Record<string, unknown>;
  /** Held-out evaluation every N steps (0: only at the end); pairs evaluated at most. */
  evalEvery?: number;
  evalPairs?: number;
  label?: string;
  silent?: boolean;
  /** Stop on SIGINT/SIGTERM (default true). */
  handleSignals?: boolean;
}

export interface LoopResult {
  history: StepMetrics[];
  evals: StepMetrics[];
  interrupted: boolean;
  seconds: number;
}

export async function trainLoop(trainer: PreferenceTrainer, opts: LoopOptions = {}): Promise<LoopResult> {
  const total = trainer.config.steps;
  const bar = new Progress(opts.label ?? 'train', total - trainer.step, { unit: 'tok', silent: opts.silent });
  const history: StepMetrics[] = [];
  const evals: StepMetrics[] = [];
  let signal: string | null = null;
  const onSignal = (s: NodeJS.Signals): void => {
    signal = s;
    if (!opts.silent) process.stderr.write(`\n${s}: finishing the current step, then writing a checkpoint\n`);
  };
  if (opts.handleSignals !== false) {
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  }
  const log = (m: StepMetrics): void => {
    if (opts.metricsPath) appendFileSync(opts.metricsPath, JSON.stringify(m) + '\n');
  };
  const save = async (): Promise<void> => {
    if (opts.checkpointPath) await trainer.save(opts.checkpointPath, opts.checkpointMeta ?? {});
  };
  const start = performance.now();
  try {
    while (trainer.step < total && !signal) {
      const m = await trainer.trainStep();
      // Yield to the event loop: on the CPU backend every await resolves as a microtask, so without
      // this a signal handler would never run before training ends.
      await new Promise((resolve) => setImmediate(resolve));
      history.push(m);
      log(m);
      bar.tick(1, m.tokens, { loss: m.loss, acc: m['rewards/accuracies'], ...(m['ganpo/critic_accuracy'] !== undefined ? { critic: m['ganpo/critic_accuracy'] } : {}) });
      const step = trainer.step;
      if (opts.evalEvery && step % opts.evalEvery === 0 && step < total) {
        const e = { step, ...(await trainer.evaluate(opts.evalPairs)) };
        evals.push(e);
        log(e);
      }
      if (opts.saveEvery && step % opts.saveEvery === 0) await save();
    }
  } finally {
    if (opts.handleSignals !== false) {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
  }
  bar.finish();
  if (!signal) {
    const e = { step: trainer.step, ...(await trainer.evaluate(opts.evalPairs)) };
    evals.push(e);
    log(e);
  }
  await save();
  return { history, evals, interrupted: signal !== null, seconds: (performance.now() - start) / 1000 };
}
