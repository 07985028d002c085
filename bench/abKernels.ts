// A/B timing of kernel variants in one process, interleaved, reporting the minimum per variant:
// the machine is shared, so only same-process, alternating, best-of-N comparisons mean anything.
// Run: node dist/bench/abKernels.js (after `npx tsc -p tsconfig.json --outDir dist`).

import { WebGPUBackend } from '../src/tensor/backends/webgpu/index.js';
import type { Storage } from '../src/tensor/backend.js';
import type { Launch } from '../src/shaders/kernel.js';

export interface Variant { name: string; launch: Launch; buffers: Storage[] }

/** Best-of-rounds milliseconds per dispatch of each variant (reps dispatches per submit). */
export async function abTime(gpu: WebGPUBackend, variants: Variant[], rounds = 7, reps = 5): Promise<Map<string, number>> {
  const best = new Map<string, number>(variants.map((v) => [v.name, Infinity]));
  for (const v of variants) { gpu.runKernel(v.launch, v.buffers.slice(0, -1), v.buffers.slice(-1)); }
  await gpu.sync();
  for (let r = 0; r < rounds; r++) {
    for (const v of variants) {
      const t0 = performance.now();
      for (let j = 0; j < reps; j++) gpu.runKernel(v.launch, v.buffers.slice(0, -1), v.buffers.slice(-1));
      await gpu.sync();
      best.set(v.name, Math.min(best.get(v.name)!, (performance.now() - t0) / reps));
    }
  }
  return best;
}

export function report(title: string, best: Map<string, number>): void {
  console.log(`${title}: ${[...best].map(([n, ms]) => `${n} ${ms.toFixed(2)} ms`).join(' | ')}`);
}
