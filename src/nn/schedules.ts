// Learning-rate schedules as pure functions of the optimizer step (0-based, as Hugging Face's
// schedulers count): set `opt.lr = schedule.lrAt(step)` before each step.

export interface Schedule {
  lrAt(step: number): number;
}

export interface WarmupDecayOptions {
  peakLr: number;
  /** Steps of linear warmup from 0 to peakLr (lr = peakLr·step/warmupSteps). */
  warmupSteps: number;
  /** The decay reaches minLr at this step and stays there. */
  totalSteps: number;
  /** Default 0. */
  minLr?: number;
}

export function constant(lr: number): Schedule {
  return { lrAt: () => lr };
}

/** Linear warmup, then constant (get_constant_schedule_with_warmup). */
export function warmupConstant(peakLr: number, warmupSteps: number): Schedule {
  return { lrAt: (step) => (step < warmupSteps ? (peakLr * step) / Math.max(1, warmupSteps) : peakLr) };
}

function warmupThen(o: WarmupDecayOptions, decay: (progress: number) => number): Schedule {
  const minLr = o.minLr ?? 0;
  return {
    lrAt(step) {
      if (step < o.warmupSteps) return (o.peakLr * step) / Math.max(1, o.warmupSteps);
      const progress = Math.min(1, (step - o.warmupSteps) / Math.max(1, o.totalSteps - o.warmupSteps));
      return minLr + (o.peakLr - minLr) * decay(progress);
    },
  };
}

/** Linear warmup, then linear decay to minLr at totalSteps (get_linear_schedule_with_warmup). */
export function warmupLinear(o: WarmupDecayOptions): Schedule {
  return warmupThen(o, (p) => 1 - p);
}

/**
 * Linear warmup, then half a cosine down to minLr at totalSteps (get_cosine_schedule_with_warmup);
 * unlike it, the lr stays at minLr past totalSteps instead of rising again.
 */
export function warmupCosine(o: WarmupDecayOptions): Schedule {
  return warmupThen(o, (p) => 0.5 * (1 + Math.cos(Math.PI * p)));
}

export type ScheduleKind = 'constant' | 'linear' | 'cosine';

/** The schedule of a kind: constant, or linear warmup then linear or cosine decay to 0 at totalSteps. */
export function makeSchedule(kind: ScheduleKind, peakLr: number, warmupSteps: number, totalSteps: number): Schedule {
  if (kind === 'constant') return constant(peakLr);
  const o = { peakLr, warmupSteps, totalSteps };
  return kind === 'linear' ? warmupLinear(o) : warmupCosine(o);
}
