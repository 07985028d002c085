// Shared by the step profilers (profileStep.ts, profileGanpo.ts): record the dispatches of a step
// by wrapping the backend runtime's dispatch, then replay each alone to attribute GPU time per
// kernel.

import type { Launch } from '../src/shaders/kernel.js';
import type { WebGPUBackend } from '../src/tensor/backends/webgpu/index.js';

export interface Recorded {
  launch: Launch;
  buffers: readonly GPUBuffer[];
  /** Where it was issued (profileGanpo's ORIGIN mode), else ''. */
  origin: string;
}

type Dispatch = (l: Launch, b: readonly GPUBuffer[]) => void;

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/**
 * Wraps the backend's dispatch (the runtime is private; the profiler reaches in). While a list is
 * set with start(), every dispatch is appended to it; take() returns the list and stops recording.
 */
export function recordDispatches(gpu: WebGPUBackend, originOf: () => string = () => ''): { start(): void; take(): Recorded[]; dispatch: Dispatch } {
  const rt = (gpu as unknown as { rt: { dispatch: Dispatch } }).rt;
  const original = rt.dispatch.bind(rt);
  let recording: Recorded[] | null = null;
  rt.dispatch = (l, b) => {
    recording?.push({ launch: l, buffers: b, origin: originOf() });
    original(l, b);
  };
  return {
    start: () => (recording = []),
    take: () => {
      const out = recording ?? [];
      recording = null;
      return out;
    },
    dispatch: original,
  };
}

/**
 * Milliseconds of each recorded dispatch replayed alone: reps copies in one submit (amortizing the
 * wait's wake-up), best of two, minus the cost of an empty submit-and-wait (returned as base).
 * Buffers went back to the pool but still exist; stale contents do not change a kernel's cost.
 */
export async function replay(gpu: WebGPUBackend, recs: readonly Recorded[], dispatch: Dispatch, reps: number): Promise<{ base: number; ms: number[] }> {
  const waitCost: number[] = [];
  for (let i = 0; i < 20; i++) {
    const t0 = performance.now();
    await gpu.sync();
    waitCost.push(performance.now() - t0);
  }
  const base = median(waitCost);
  const ms: number[] = [];
  for (const r of recs) {
    const samples: number[] = [];
    for (let k = 0; k < 2; k++) {
      const t0 = performance.now();
      for (let j = 0; j < reps; j++) dispatch(r.launch, r.buffers);
      await gpu.sync();
      samples.push((performance.now() - t0 - base) / reps);
    }
    ms.push(Math.max(0, Math.min(...samples)));
  }
  return { base, ms };
}

/** Adds ms to the (ms, count) entry of key. */
export function tally(map: Map<string, { ms: number; n: number }>, key: string, ms: number): void {
  const e = map.get(key) ?? { ms: 0, n: 0 };
  e.ms += ms;
  e.n++;
  map.set(key, e);
}
