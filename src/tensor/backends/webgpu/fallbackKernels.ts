// Simple, correct WGSL kernels for the contract's heavy methods (matmul, indexing, fused rows,
// random, AdamW): one invocation per output element or per row, no workgroup memory. They follow
// the builder convention of webgpu/index.ts, so the tuned builders in src/shaders replace them
// one by one without touching the backend.

import type { AdamWParams, MatmulParams } from '../../backend.js';
import { flatIndexWGSL, grid1d, type Kernel, type Launch, packUniforms } from '../../../shaders/kernel.js';
import { philoxWGSL } from '../../../shaders/philox.js';
import { collapseDims, MAX_RANK } from '../../../shaders/strided.js';
import { splitOffset } from '../../random/philox.js';

const WG = 64;

/** A kernel whose body runs for flat index i < u.n (the uniform struct must have `n`). */
function flatKernel(name: string, uniforms: string, bindings: readonly [string, 'read' | 'read_write', string][], body: string, extra = ''): Kernel {
  const decls = bindings.map(([v, access, ty], i) => `@group(0) @binding(${i + 1}) var<storage, ${access}> ${v}: array<${ty}>;`);
  const code = `struct U { ${uniforms} }
@group(0) @binding(0) var<uniform> u: U;
${decls.join('\n')}
// An infinite literal is a WGSL compile error, so −∞ is built at run time.
fn negInf() -> f32 { var bits = 0xff800000u; return bitcast<f32>(bits); }
${extra}
${flatIndexWGSL(WG)}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = flatIndex(wid, nwg, lid);
  if (i >= u.n) { return; }
${body}
}`;
  return { name, code, storage: bindings.map((b) => b[1]) };
}

const matmulKernel = flatKernel('matmul[naive]',
  'n: u32, m: u32, nn: u32, k: u32, transA: u32, transB: u32, batchRank: u32, pad: u32, batchShape: array<vec4<u32>, 2>, aStride: array<vec4<u32>, 2>, bStride: array<vec4<u32>, 2>',
  [['a', 'read', 'f32'], ['b', 'read', 'f32'], ['out', 'read_write', 'f32']],
  `  let mn = u.m * u.nn;
  var rem = i / mn;
  let row = (i % mn) / u.nn;
  let col = i % u.nn;
  var ao = 0u;
  var bo = 0u;
  for (var d = i32(u.batchRank) - 1; d >= 0; d = d - 1) {
    let q = u32(d) >> 2u;
    let r = u32(d) & 3u;
    let size = u.batchShape[q][r];
    ao = ao + (rem % size) * u.aStride[q][r];
    bo = bo + (rem % size) * u.bStride[q][r];
    rem = rem / size;
  }
  // (stride along k, fixed offset) for each operand, so the loop has no branches.
  let aStep = select(1u, u.m, u.transA != 0u);
  let aBase = ao + select(row * u.k, row, u.transA != 0u);
  let bStep = select(u.nn, 1u, u.transB != 0u);
  let bBase = bo + select(col, col * u.k, u.transB != 0u);
  var acc = 0.0;
  for (var kk = 0u; kk < u.k; kk = kk + 1u) { acc = acc + a[aBase + kk * aStep] * b[bBase + kk * bStep]; }
  out[i] = acc;`);

/** Storage [a, b, out]; out is [batch..., m, n]. */
export function matmulLaunch(p: MatmulParams): Launch {
  const batch = collapseDims(p.batchShape, [p.aBatchStrides, p.bBatchStrides]);
  if (batch.shape.length > MAX_RANK) throw new RangeError(`matmul supports ${MAX_RANK} batch dims after merging`);
  const n = batch.shape.reduce((q, d) => q * d, 1) * p.m * p.n;
  const words = new Uint32Array(8 + 3 * MAX_RANK);
  words.set([n, p.m, p.n, p.k, p.transA ? 1 : 0, p.transB ? 1 : 0, batch.shape.length, 0]);
  words.set(batch.shape, 8);
  words.set(batch.strides[0], 8 + MAX_RANK);
  words.set(batch.strides[1], 8 + 2 * MAX_RANK);
  return { kernel: matmulKernel, uniforms: words, workgroups: grid1d(n, WG) };
}

// Values move as raw words so one pipeline serves f32 and i32; an out-of-range index reads as 0
// (the GPU cannot throw; the CPU raises a RangeError).
const indexSelectKernel = flatKernel('indexSelect[naive]', 'n: u32, dim: u32, inner: u32, nIdx: u32',
  [['x', 'read', 'u32'], ['idx', 'read', 'i32'], ['out', 'read_write', 'u32']],
  `  let inner = i % u.inner;
  let j = (i / u.inner) % u.nIdx;
  let o = i / (u.inner * u.nIdx);
  let id = idx[j];
  if (id < 0 || u32(id) >= u.dim) { out[i] = 0u; return; }
  out[i] = x[(o * u.dim + u32(id)) * u.inner + inner];`);

/** Storage [x, idx (i32), out]. */
export function indexSelectLaunch(outer: number, dim: number, inner: number, nIdx: number): Launch {
  const n = outer * nIdx * inner;
  return { kernel: indexSelectKernel, uniforms: packUniforms([['u32', n], ['u32', dim], ['u32', inner], ['u32', nIdx]]), workgroups: grid1d(n, WG) };
}

// One invocation per output element scans all indices: no atomics needed, O(nIdx) per element.
const indexAddKernel = flatKernel('indexAdd[naive]', 'n: u32, dim: u32, inner: u32, nIdx: u32',
  [['src', 'read', 'f32'], ['idx', 'read', 'i32'], ['out', 'read_write', 'f32']],
  `  let inner = i % u.inner;
  let d = (i / u.inner) % u.dim;
  let o = i / (u.inner * u.dim);
  var acc = 0.0;
  for (var j = 0u; j < u.nIdx; j = j + 1u) {
    if (idx[j] == i32(d)) { acc = acc + src[(o * u.nIdx + j) * u.inner + inner]; }
  }
  out[i] = acc;`);

/** Storage [src, idx (i32), out]; every out element is written. */
export function indexAddLaunch(outer: number, dim: number, inner: number, nIdx: number): Launch {
  const n = outer * dim * inner;
  return { kernel: indexAddKernel, uniforms: packUniforms([['u32', n], ['u32', dim], ['u32', inner], ['u32', nIdx]]), workgroups: grid1d(n, WG) };
}

const rowMax = (v: string, base: string): string => `  var mx = negInf();
  for (var c = 0u; c < u.cols; c = c + 1u) { mx = max(mx, ${v}[${base} + c]); }`;

const softmaxKernel = flatKernel('softmax[naive]', 'n: u32, cols: u32, log: u32, pad: u32',
  [['x', 'read', 'f32'], ['y', 'read_write', 'f32']],
  `  let base = i * u.cols;
${rowMax('x', 'base')}
  if (mx == negInf()) { mx = 0.0; }
  var s = 0.0;
  for (var c = 0u; c < u.cols; c = c + 1u) { s = s + exp(x[base + c] - mx); }
  let lse = mx + log(s);
  for (var c = 0u; c < u.cols; c = c + 1u) {
    let z = x[base + c] - lse;
    y[base + c] = select(exp(z), z, u.log != 0u);
  }`);

/** Storage [x, y]; one invocation per row. */
export function softmaxLaunch(rows: number, cols: number, log: boolean): Launch {
  return { kernel: softmaxKernel, uniforms: packUniforms([['u32', rows], ['u32', cols], ['u32', log ? 1 : 0]]), workgroups: grid1d(rows, WG) };
}

const softmaxBackwardKernel = flatKernel('softmaxBackward[naive]', 'n: u32, cols: u32, log: u32, pad: u32',
  [['y', 'read', 'f32'], ['dy', 'read', 'f32'], ['dx', 'read_write', 'f32']],
  `  let base = i * u.cols;
  let isLog = u.log != 0u;
  var dot = 0.0;
  for (var c = 0u; c < u.cols; c = c + 1u) { dot = dot + select(dy[base + c] * y[base + c], dy[base + c], isLog); }
  for (var c = 0u; c < u.cols; c = c + 1u) {
    let g = dy[base + c];
    let v = y[base + c];
    dx[base + c] = select(v * (g - dot), g - exp(v) * dot, isLog);
  }`);

/** Storage [y, dy, dx]. */
export function softmaxBackwardLaunch(rows: number, cols: number, log: boolean): Launch {
  return { kernel: softmaxBackwardKernel, uniforms: packUniforms([['u32', rows], ['u32', cols], ['u32', log ? 1 : 0]]), workgroups: grid1d(rows, WG) };
}

const layerNormKernel = flatKernel('layerNorm[naive]', 'n: u32, cols: u32, eps: f32, pad: u32',
  [['x', 'read', 'f32'], ['gamma', 'read', 'f32'], ['beta', 'read', 'f32'], ['y', 'read_write', 'f32'], ['mean', 'read_write', 'f32'], ['rstd', 'read_write', 'f32']],
  `  let base = i * u.cols;
  var mu = 0.0;
  for (var c = 0u; c < u.cols; c = c + 1u) { mu = mu + x[base + c]; }
  mu = mu / f32(u.cols);
  var v = 0.0;
  for (var c = 0u; c < u.cols; c = c + 1u) { let d = x[base + c] - mu; v = v + d * d; }
  let rs = 1.0 / sqrt(v / f32(u.cols) + u.eps);
  mean[i] = mu;
  rstd[i] = rs;
  for (var c = 0u; c < u.cols; c = c + 1u) { y[base + c] = (x[base + c] - mu) * rs * gamma[c] + beta[c]; }`);

/** Storage [x, gamma, beta, y, mean, rstd]. */
export function layerNormLaunch(rows: number, cols: number, eps: number): Launch {
  return { kernel: layerNormKernel, uniforms: packUniforms([['u32', rows], ['u32', cols], ['f32', eps]]), workgroups: grid1d(rows, WG) };
}

const LN_BWD_BINDINGS: [string, 'read' | 'read_write', string][] = [
  ['dy', 'read', 'f32'], ['x', 'read', 'f32'], ['gamma', 'read', 'f32'], ['mean', 'read', 'f32'], ['rstd', 'read', 'f32'],
  ['dx', 'read_write', 'f32'], ['dgamma', 'read_write', 'f32'], ['dbeta', 'read_write', 'f32'],
];

// Pass 1: dx, one invocation per row (n = rows).
const layerNormDxKernel = flatKernel('layerNormBackward.dx[naive]', 'n: u32, cols: u32, rows: u32, pad: u32', LN_BWD_BINDINGS,
  `  let base = i * u.cols;
  let m = mean[i];
  let r = rstd[i];
  var sumG = 0.0;
  var sumGX = 0.0;
  for (var c = 0u; c < u.cols; c = c + 1u) {
    let g = dy[base + c] * gamma[c];
    sumG = sumG + g;
    sumGX = sumGX + g * (x[base + c] - m) * r;
  }
  let fc = f32(u.cols);
  for (var c = 0u; c < u.cols; c = c + 1u) {
    let xhat = (x[base + c] - m) * r;
    dx[base + c] = (r / fc) * (fc * dy[base + c] * gamma[c] - sumG - xhat * sumGX);
  }`);

// Pass 2: dgamma and dbeta, one invocation per column summing over rows (n = cols).
const layerNormDgammaKernel = flatKernel('layerNormBackward.dgamma[naive]', 'n: u32, cols: u32, rows: u32, pad: u32', LN_BWD_BINDINGS,
  `  var dg = 0.0;
  var db = 0.0;
  for (var r = 0u; r < u.rows; r = r + 1u) {
    let g = dy[r * u.cols + i];
    dg = dg + g * (x[r * u.cols + i] - mean[r]) * rstd[r];
    db = db + g;
  }
  dgamma[i] = dg;
  dbeta[i] = db;`);

/** Storage [dy, x, gamma, mean, rstd, dx, dgamma, dbeta]; the launches run in order on the same buffers. */
export function layerNormBackwardLaunches(rows: number, cols: number): Launch[] {
  return [
    { kernel: layerNormDxKernel, uniforms: packUniforms([['u32', rows], ['u32', cols], ['u32', rows]]), workgroups: grid1d(rows, WG) },
    { kernel: layerNormDgammaKernel, uniforms: packUniforms([['u32', cols], ['u32', cols], ['u32', rows]]), workgroups: grid1d(cols, WG) },
  ];
}

const gatherLogProbsKernel = flatKernel('gatherLogProbs[naive]', 'n: u32, cols: u32, pad0: u32, pad1: u32',
  [['logits', 'read', 'f32'], ['targets', 'read', 'i32'], ['logp', 'read_write', 'f32'], ['lse', 'read_write', 'f32']],
  `  let base = i * u.cols;
${rowMax('logits', 'base')}
  var s = 0.0;
  for (var c = 0u; c < u.cols; c = c + 1u) { s = s + exp(logits[base + c] - mx); }
  let l = mx + log(s);
  lse[i] = l;
  let t = targets[i];
  logp[i] = select(0.0, logits[base + u32(max(t, 0))] - l, t >= 0 && u32(t) < u.cols);`);

/** Storage [logits, targets (i32), logp, lse]; one invocation per row. */
export function gatherLogProbsLaunch(rows: number, cols: number): Launch {
  return { kernel: gatherLogProbsKernel, uniforms: packUniforms([['u32', rows], ['u32', cols]]), workgroups: grid1d(rows, WG) };
}

const gatherLogProbsBackwardKernel = flatKernel('gatherLogProbsBackward[naive]', 'n: u32, cols: u32, pad0: u32, pad1: u32',
  [['dlogp', 'read', 'f32'], ['logits', 'read', 'f32'], ['lse', 'read', 'f32'], ['targets', 'read', 'i32'], ['dlogits', 'read_write', 'f32']],
  `  let r = i / u.cols;
  let c = i % u.cols;
  let t = targets[r];
  if (t < 0) { dlogits[i] = 0.0; return; }
  let g = dlogp[r];
  dlogits[i] = -g * exp(logits[i] - lse[r]) + select(0.0, g, u32(t) == c);`);

/** Storage [dlogp, logits, lse, targets (i32), dlogits]; one invocation per element. */
export function gatherLogProbsBackwardLaunch(rows: number, cols: number): Launch {
  const n = rows * cols;
  return { kernel: gatherLogProbsBackwardKernel, uniforms: packUniforms([['u32', n], ['u32', cols]]), workgroups: grid1d(n, WG) };
}

const randomKernel = flatKernel('random[philox]', 'n: u32, normal: u32, k0: u32, k1: u32, offLo: u32, offHi: u32, pad0: u32, pad1: u32',
  [['out', 'read_write', 'f32']],
  `  let key = vec2<u32>(u.k0, u.k1);
  if (u.normal != 0u) { out[i] = philoxNormal(key, u.offLo, u.offHi, i); } else { out[i] = philoxUniform(key, u.offLo, u.offHi, i); }`,
  philoxWGSL);

/** Storage [out]; element i uses stream position offset + i under key (see random/philox.ts). */
export function randomLaunch(kind: 'uniform' | 'normal', size: number, key: readonly [number, number], offset: number): Launch {
  const [lo, hi] = splitOffset(offset);
  return {
    kernel: randomKernel,
    uniforms: packUniforms([['u32', size], ['u32', kind === 'normal' ? 1 : 0], ['u32', key[0]], ['u32', key[1]], ['u32', lo], ['u32', hi]]),
    workgroups: grid1d(size, WG),
  };
}

const adamwKernel = flatKernel('adamw', 'n: u32, lr: f32, beta1: f32, beta2: f32, eps: f32, decay: f32, bc1: f32, bc2: f32',
  [['param', 'read_write', 'f32'], ['grad', 'read', 'f32'], ['m', 'read_write', 'f32'], ['v', 'read_write', 'f32']],
  `  let g = grad[i];
  let mi = u.beta1 * m[i] + (1.0 - u.beta1) * g;
  let vi = u.beta2 * v[i] + (1.0 - u.beta2) * g * g;
  m[i] = mi;
  v[i] = vi;
  param[i] = param[i] * u.decay - u.lr * (mi / u.bc1 / (sqrt(vi / u.bc2) + u.eps));`);

/** Storage [param, grad, m, v]; param, m and v are updated in place. Bias corrections are computed on the host in f64. */
export function adamwLaunch(size: number, p: AdamWParams): Launch {
  return {
    kernel: adamwKernel,
    uniforms: packUniforms([
      ['u32', size], ['f32', p.lr], ['f32', p.beta1], ['f32', p.beta2], ['f32', p.eps],
      ['f32', 1 - p.lr * p.weightDecay], ['f32', 1 - p.beta1 ** p.step], ['f32', 1 - p.beta2 ** p.step],
    ]),
    workgroups: grid1d(size, WG),
  };
}
