// How close our kernels come to the device's ceilings: the f32 matmul rate against the datasheet
// FP32 peak, and the memory-bound kernels (elementwise, softmax, layerNorm) against both the
// datasheet bandwidth and a plain vec4 WGSL copy measured in the same run (what any compute shader
// streams there; the driver's own buffer copy is reported too, but on Dawn's Vulkan backend on an
// H100 it ran at a third of the shader copy, so it is no ceiling). Each timing is
// the best of several rounds of `reps` calls recorded back to back and waited for once, so the
// per-submit round trip (tens of microseconds on a real GPU) is spread over the calls.
//
//   node dist/bench/gpuCeilings.js [--json PATH] [--peak-tflops X] [--peak-gbps Y] [--scale S]
//
// --scale divides the large sizes (for a trial run on a software adapter). Exits explicitly
// (Dawn keeps the process alive).

import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import { add, layerNorm, matmul, mul, ones, randn, setBackend, softmax, zeros, type Tensor } from '../src/tensor/index.js';
import { WebGPUBackend } from '../src/tensor/backends/webgpu/index.js';
import { chooseMatmulVariant } from '../src/shaders/matmul.js';
import { layerNormLaunch } from '../src/shaders/layernorm.js';
import { ROW_CACHE_MAX_COLS } from '../src/shaders/rows.js';
import { softmaxLaunch } from '../src/shaders/softmax.js';
import type { Kernel, Launch } from '../src/shaders/kernel.js';
import { Generator } from '../src/tensor/random/philox.js';

const { values } = parseArgs({
  options: {
    json: { type: 'string' },
    'peak-tflops': { type: 'string' },
    'peak-gbps': { type: 'string' },
    scale: { type: 'string', default: '1' },
  },
});
const scale = Number(values.scale);
const peakTflops = values['peak-tflops'] ? Number(values['peak-tflops']) : undefined;
const peakGbps = values['peak-gbps'] ? Number(values['peak-gbps']) : undefined;

const gpu = await WebGPUBackend.create();
setBackend(gpu);
const device = gpu.describe();
console.log(device);

/** Best milliseconds per call over `rounds` rounds of `reps` calls recorded back to back. */
async function best(call: () => void, reps: number, rounds = 5): Promise<number> {
  call();
  await gpu.sync();
  let min = Infinity;
  for (let r = 0; r < rounds; r++) {
    const t0 = performance.now();
    for (let j = 0; j < reps; j++) call();
    await gpu.sync();
    min = Math.min(min, (performance.now() - t0) / reps);
  }
  return min;
}

interface Row {
  name: string;
  params: Record<string, number | string>;
  best_ms: number;
  gflops?: number;
  gbps?: number;
  fraction_of_peak?: number;
  /** gbps over the vec4 WGSL copy's. */
  fraction_of_shader_copy?: number;
}
const rows: Row[] = [];

function report(r: Row): void {
  rows.push(r);
  const rate = r.gflops !== undefined ? `${(r.gflops / 1000).toFixed(2)} TFLOP/s` : `${r.gbps!.toFixed(0)} GB/s`;
  const frac = [r.fraction_of_peak !== undefined ? `${(100 * r.fraction_of_peak).toFixed(1)}% of peak` : '', r.fraction_of_shader_copy !== undefined ? `${(100 * r.fraction_of_shader_copy).toFixed(1)}% of a shader copy` : '']
    .filter(Boolean).join(', ');
  console.log(`${r.name.padEnd(22)} ${JSON.stringify(r.params).padEnd(40)} ${r.best_ms.toFixed(3).padStart(9)} ms  ${rate.padStart(16)}  ${frac}`);
}

// The driver's buffer copy (bytes read + bytes written).
const copyBytes = Math.floor((256 * 2 ** 20) / scale / 4) * 4;
const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
const src = gpu.device.createBuffer({ size: copyBytes, usage });
const dst = gpu.device.createBuffer({ size: copyBytes, usage });
const copyReps = 20;
let copyMs = Infinity;
for (let r = 0; r < 6; r++) {
  const enc = gpu.device.createCommandEncoder();
  for (let j = 0; j < copyReps; j++) enc.copyBufferToBuffer(src, 0, dst, 0, copyBytes);
  const t0 = performance.now();
  gpu.device.queue.submit([enc.finish()]);
  await gpu.device.queue.onSubmittedWorkDone();
  if (r > 0) copyMs = Math.min(copyMs, (performance.now() - t0) / copyReps);
}
src.destroy();
dst.destroy();
const copyGbps = (2 * copyBytes) / (copyMs * 1e6);
report({ name: 'driver_copy', params: { bytes: copyBytes }, best_ms: copyMs, gbps: copyGbps, fraction_of_peak: peakGbps ? copyGbps / peakGbps : undefined });

// A plain WGSL vec4 copy (grid-stride, four loads in flight per invocation): what a compute
// shader can stream on this device, the fair ceiling for our kernels.
let shaderCopyGbps: number;
{
  const n4 = copyBytes / 16;
  const kernel: Kernel = {
    name: 'ceiling[copyVec4]',
    storage: ['read', 'read_write'],
    code: /* wgsl */ `
struct U { n: u32, p0: u32, p1: u32, p2: u32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> xs: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> out: array<vec4<f32>>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let stride = nwg.x * 256u;
  var i = wid.x * 256u + lid;
  for (; i + 3u * stride < u.n; i = i + 4u * stride) {
    let a = xs[i]; let b = xs[i + stride]; let c = xs[i + 2u * stride]; let d = xs[i + 3u * stride];
    out[i] = a; out[i + stride] = b; out[i + 2u * stride] = c; out[i + 3u * stride] = d;
  }
  for (; i < u.n; i = i + stride) { out[i] = xs[i]; }
}`,
  };
  const launch: Launch = { kernel, uniforms: new Uint32Array([n4, 0, 0, 0]), workgroups: [Math.min(4096, Math.ceil(n4 / 256)), 1, 1] };
  const a = gpu.alloc('f32', copyBytes / 4);
  const b = gpu.alloc('f32', copyBytes / 4);
  const ms = await best(() => gpu.runKernel(launch, [a], [b]), 20);
  shaderCopyGbps = (2 * copyBytes) / (ms * 1e6);
  report({ name: 'wgsl_copy_vec4', params: { bytes: copyBytes }, best_ms: ms, gbps: shaderCopyGbps, fraction_of_peak: peakGbps ? shaderCopyGbps / peakGbps : undefined });
  gpu.free(a);
  gpu.free(b);
}

const gen = new Generator(11);
const dispose = (t: Tensor) => t.dispose();

function bandwidth(name: string, params: Row['params'], bytes: number, ms: number): void {
  const gbps = bytes / (ms * 1e6);
  report({ name, params, best_ms: ms, gbps, fraction_of_peak: peakGbps ? gbps / peakGbps : undefined, fraction_of_shader_copy: gbps / shaderCopyGbps });
}

// Memory-bound kernels on a large tensor (256 MiB) and on the bench's [4096, 1024].
for (const [rowsN, cols] of [[Math.max(64, Math.floor(65536 / scale)), 1024], [4096, 1024]] as const) {
  const n = rowsN * cols;
  const reps = n >= 2 ** 24 ? 10 : 50;
  const x = randn([rowsN, cols], { generator: gen });
  const y = randn([rowsN, cols], { generator: gen });
  const gamma = ones([cols]);
  const beta = zeros([cols]);
  const params = { rows: rowsN, cols };
  bandwidth('unary_scale', params, 2 * 4 * n, await best(() => dispose(mul(x, 2)), reps));
  bandwidth('binary_add', params, 3 * 4 * n, await best(() => dispose(add(x, y)), reps));
  bandwidth('softmax', params, 2 * 4 * n, await best(() => dispose(softmax(x)), reps));
  // layerNorm also writes the row mean and rstd (8 bytes a row) for its backward.
  bandwidth('layernorm', params, 2 * 4 * n + 8 * rowsN, await best(() => dispose(layerNorm(x, gamma, beta, 1e-5)), reps));
  // The same kernels as bare dispatches in each workgroup-per-row form, cached (the row read once,
  // kept in registers, rows of up to ROW_CACHE_MAX_COLS) and not (read twice; what the backend
  // picks on a GPU). The op rows above also allocate their outputs.
  if (cols <= ROW_CACHE_MAX_COLS) {
    const out = gpu.alloc('f32', n);
    const stats = [gpu.alloc('f32', rowsN), gpu.alloc('f32', rowsN)];
    for (const cached of [true, false]) {
      const form = cached ? 'cached' : 'uncached';
      bandwidth(`softmax_${form}`, params, 2 * 4 * n, await best(() => gpu.runKernel(softmaxLaunch(rowsN, cols, false, 'workgroup', cached), [x.storage], [out]), reps));
      const ln = layerNormLaunch(rowsN, cols, 1e-5, 'workgroup', 1, cached);
      bandwidth(`layernorm_${form}`, params, 2 * 4 * n + 8 * rowsN, await best(() => gpu.runKernel(ln, [x.storage, gamma.storage, beta.storage], [out, ...stats]), reps));
    }
    for (const b of [out, ...stats]) gpu.free(b);
  }
  for (const t of [x, y, gamma, beta]) t.dispose();
}

// f32 matmul through the op (the static rule's variant), square sizes.
for (const n0 of [1024, 2048, 4096]) {
  const n = Math.max(64, Math.floor(n0 / Math.sqrt(scale)));
  const a = randn([n, n], { generator: gen });
  const b = randn([n, n], { generator: gen });
  const flops = 2 * n ** 3;
  const ms = await best(() => dispose(matmul(a, b)), n >= 4096 ? 5 : 10);
  const gflops = flops / (ms * 1e6);
  const variant = chooseMatmulVariant({ batchShape: [], aBatchStrides: [], bBatchStrides: [], m: n, n, k: n, transA: false, transB: false }, gpu.isSoftwareAdapter, gpu.device.features.has('subgroups'));
  report({ name: 'matmul_f32', params: { n, variant }, best_ms: ms, gflops, fraction_of_peak: peakTflops ? gflops / (peakTflops * 1000) : undefined });
  a.dispose();
  b.dispose();
}

if (values.json) {
  mkdirSync(dirname(values.json), { recursive: true });
  const out = { device, date: new Date().toISOString(), node: process.version, peak_tflops: peakTflops, peak_gbps: peakGbps, rows };
  writeFileSync(values.json, `${JSON.stringify(out, null, 2)}\n`);
  console.log(`wrote ${values.json}`);
}
process.exit(0);
