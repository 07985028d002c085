// Interleaved A/B timing of every matmul variant (and f16 operands) on chosen shapes, on the
// backend's device: node dist/bench/abMatmul.js [shape ...], a shape being MxNxK with optional
// suffixes tA / tB (transposes), e.g. 1024x1024x1024 1024x4096x128tB 128x512x1024tA.
// Prints best-of-N milliseconds and GFLOP/s per variant. Exits explicitly (Dawn keeps the process alive).

import { WebGPUBackend } from '../src/tensor/backends/webgpu/index.js';
import { MATMUL_VARIANT_FEATURE, MATMUL_VARIANTS, matmulLaunch, matmulLayout, matmulWorkgroupBytes, layoutName, supportsOperandType, type MatmulOperandType } from '../src/shaders/matmul.js';
import type { MatmulParams } from '../src/tensor/backend.js';
import { abTime, type Variant } from './abKernels.js';

const shapes = process.argv.slice(2).length > 0 ? process.argv.slice(2) : ['256x256x256', '512x512x512', '1024x1024x1024'];
const only = process.env.VARIANTS?.split(',');
const types: MatmulOperandType[] = process.env.F16 === '1' ? ['f32', 'f16'] : ['f32'];
const gpu = await WebGPUBackend.create();
console.log(gpu.describe());
for (const s of shapes) {
  const m0 = /^(\d+)x(\d+)x(\d+)(tA)?(tB)?$/.exec(s);
  if (!m0) throw new Error(`bad shape ${s}`);
  const [m, n, k] = [Number(m0[1]), Number(m0[2]), Number(m0[3])];
  const p: MatmulParams = { batchShape: [], aBatchStrides: [], bBatchStrides: [], m, n, k, transA: !!m0[4], transB: !!m0[5] };
  const a = gpu.upload('f32', Float32Array.from({ length: m * k }, (_, i) => ((i * 7) % 13) / 13));
  const b = gpu.upload('f32', Float32Array.from({ length: k * n }, (_, i) => ((i * 5) % 11) / 11));
  const out = gpu.alloc('f32', m * n);
  const vs: Variant[] = [];
  for (const t of types) {
    for (const v of MATMUL_VARIANTS) {
      if (only && !only.includes(v)) continue;
      const f = MATMUL_VARIANT_FEATURE[v];
      if (f && !gpu.device.features.has(f)) continue;
      if (matmulWorkgroupBytes(v) > gpu.device.limits.maxComputeWorkgroupStorageSize) continue;
      if (!supportsOperandType(v, t)) continue;
      if (t === 'f16' && !gpu.device.features.has('shader-f16')) continue;
      vs.push({ name: `${v}${t === 'f16' ? '/f16' : ''}`, launch: matmulLaunch(p, v, t), buffers: [a, b, out] });
    }
  }
  const flops = 2 * m * n * k;
  // Several dispatches per submit on a real GPU (its round trip is long next to a kernel), one on lavapipe.
  const reps = gpu.isSoftwareAdapter ? (flops > 1e9 ? 1 : flops > 1e8 ? 2 : 10) : flops > 1e10 ? 3 : 10;
  const best = await abTime(gpu, vs, Number(process.env.ROUNDS ?? 5), reps);
  const layout = layoutName(matmulLayout(p, 'register4x4'));
  console.log(`${s} (${layout}):`);
  for (const [name, ms] of [...best].sort((x, y) => x[1] - y[1])) console.log(`  ${name.padEnd(18)} ${ms.toFixed(2).padStart(9)} ms  ${(flops / ms / 1e6).toFixed(2).padStart(6)} GFLOP/s`);
}
process.exit(0);
