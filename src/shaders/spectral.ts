// Spectral normalization kernels, each a single dispatch over a batch of small matrices:
// - powerIteration: v ← normalize(Wᵀu), then u ← normalize(W v), in place, for W [rows, cols]
//   row-major, with normalize(x) = x / max(‖x‖, eps) (torch.nn.functional.normalize).
// - spectralNormalize: optionally that iteration, then σ = uᵀ W v and W/σ, also writing σ and the u, v
//   it used (the backward's constants: later iterations overwrite u and v in place).
// - spectralNormalizeBackward: dW = (G − (Σ G∘W / σ) · u vᵀ) / σ, the gradient of W/σ through σ too.
// The composed forms cost a dozen dispatches each way; the critics' matrices are small, so one
// workgroup per matrix does it all.
//
// Dispatch geometry: one workgroup of 256 invocations per matrix of the batch (workgroup x = which
// one); each invocation owns columns (then rows, then elements) lid, lid + 256, ... and the sums
// are tree sums in workgroup memory.

import type { Launch } from './kernel.js';
import { packUniforms } from './kernel.js';

const WG = 256;

const COMMON_WGSL = /* wgsl */ `
struct Uniforms { rows: u32, cols: u32, eps: f32, iterate: u32 }
@group(0) @binding(0) var<uniform> p: Uniforms;
var<workgroup> red: array<f32, ${WG}>;

// Σ over the workgroup of every invocation's s, returned to all. Call from uniform control flow.
fn workgroupSum(s: f32, lid: u32) -> f32 {
  red[lid] = s;
  workgroupBarrier();
  for (var k = ${WG / 2}u; k > 0u; k = k >> 1u) {
    if (lid < k) { red[lid] = red[lid] + red[lid + k]; }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}
`;

// Needs bindings w (read), u and v (read_write).
const POWER_ITERATE_WGSL = /* wgsl */ `
// One power iteration on the matrix at wo and its vectors at uo, vo. Call from uniform control flow.
fn powerIterate(wo: u32, uo: u32, vo: u32, lid: u32) {
  // v = Wᵀ u, then v / max(‖v‖, eps).
  var ss = 0.0;
  for (var j = lid; j < p.cols; j = j + ${WG}u) {
    var acc = 0.0;
    for (var i = 0u; i < p.rows; i = i + 1u) { acc = acc + w[wo + i * p.cols + j] * u[uo + i]; }
    v[vo + j] = acc;
    ss = ss + acc * acc;
  }
  let nv = max(sqrt(workgroupSum(ss, lid)), p.eps);
  for (var j = lid; j < p.cols; j = j + ${WG}u) { v[vo + j] = v[vo + j] / nv; }
  // Every invocation reads all of v next: make the writes visible first.
  storageBarrier();
  workgroupBarrier();
  // u = W v, then u / max(‖u‖, eps).
  ss = 0.0;
  for (var i = lid; i < p.rows; i = i + ${WG}u) {
    var acc = 0.0;
    for (var j = 0u; j < p.cols; j = j + 1u) { acc = acc + w[wo + i * p.cols + j] * v[vo + j]; }
    u[uo + i] = acc;
    ss = ss + acc * acc;
  }
  let nu = max(sqrt(workgroupSum(ss, lid)), p.eps);
  for (var i = lid; i < p.rows; i = i + ${WG}u) { u[uo + i] = u[uo + i] / nu; }
  storageBarrier();
  workgroupBarrier();
}
`;

const POWER_ITERATION_WGSL = /* wgsl */ `${COMMON_WGSL}
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read_write> u: array<f32>;
@group(0) @binding(3) var<storage, read_write> v: array<f32>;
${POWER_ITERATE_WGSL}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  powerIterate(wid.x * p.rows * p.cols, wid.x * p.rows, wid.x * p.cols, lid);
}
`;

const NORMALIZE_WGSL = /* wgsl */ `${COMMON_WGSL}
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read_write> u: array<f32>;
@group(0) @binding(3) var<storage, read_write> v: array<f32>;
@group(0) @binding(4) var<storage, read_write> wn: array<f32>;
@group(0) @binding(5) var<storage, read_write> sigma: array<f32>;
@group(0) @binding(6) var<storage, read_write> uv: array<f32>;
${POWER_ITERATE_WGSL}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let wo = wid.x * p.rows * p.cols;
  let uo = wid.x * p.rows;
  let vo = wid.x * p.cols;
  if (p.iterate != 0u) { powerIterate(wo, uo, vo, lid); }
  // σ = Σ_i u_i (W v)_i.
  var part = 0.0;
  for (var i = lid; i < p.rows; i = i + ${WG}u) {
    var acc = 0.0;
    for (var j = 0u; j < p.cols; j = j + 1u) { acc = acc + w[wo + i * p.cols + j] * v[vo + j]; }
    part = part + u[uo + i] * acc;
  }
  let s = workgroupSum(part, lid);
  for (var k = lid; k < p.rows * p.cols; k = k + ${WG}u) { wn[wo + k] = w[wo + k] / s; }
  let n = p.rows + p.cols;
  for (var i = lid; i < p.rows; i = i + ${WG}u) { uv[wid.x * n + i] = u[uo + i]; }
  for (var j = lid; j < p.cols; j = j + ${WG}u) { uv[wid.x * n + p.rows + j] = v[vo + j]; }
  if (lid == 0u) { sigma[wid.x] = s; }
}
`;

const NORMALIZE_BACKWARD_WGSL = /* wgsl */ `${COMMON_WGSL}
@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> uv: array<f32>;
@group(0) @binding(4) var<storage, read> sigma: array<f32>;
@group(0) @binding(5) var<storage, read_write> dw: array<f32>;

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let size = p.rows * p.cols;
  let wo = wid.x * size;
  let n = p.rows + p.cols;
  var part = 0.0;
  for (var k = lid; k < size; k = k + ${WG}u) { part = part + g[wo + k] * w[wo + k]; }
  let s = sigma[wid.x];
  // dL/dσ · σ = −Σ G∘W / σ.
  let c = workgroupSum(part, lid) / s;
  for (var k = lid; k < size; k = k + ${WG}u) {
    let i = k / p.cols;
    let j = k - i * p.cols;
    dw[wo + k] = (g[wo + k] - c * uv[wid.x * n + i] * uv[wid.x * n + p.rows + j]) / s;
  }
}
`;

const uniforms = (rows: number, cols: number, eps: number, iterate: boolean) => packUniforms([['u32', rows], ['u32', cols], ['f32', eps], ['u32', iterate ? 1 : 0]]);

/**
 * One power iteration in place for each of batch matrices (w [batch, rows, cols], u [batch, rows],
 * v [batch, cols]); storage [w: read, u: read_write, v: read_write].
 */
export function powerIterationLaunch(rows: number, cols: number, eps: number, batch = 1): Launch {
  return {
    kernel: { name: 'powerIteration', code: POWER_ITERATION_WGSL, storage: ['read', 'read_write', 'read_write'] },
    uniforms: uniforms(rows, cols, eps, true),
    workgroups: [batch, 1, 1],
  };
}

/**
 * W/σ per matrix, after a power iteration when iterate; storage [w: read; u, v, wn [batch, rows,
 * cols], sigma [batch], uv [batch, rows + cols]: read_write].
 */
export function spectralNormalizeLaunch(rows: number, cols: number, eps: number, batch: number, iterate: boolean): Launch {
  return {
    kernel: { name: 'spectralNormalize', code: NORMALIZE_WGSL, storage: ['read', 'read_write', 'read_write', 'read_write', 'read_write', 'read_write'] },
    uniforms: uniforms(rows, cols, eps, iterate),
    workgroups: [batch, 1, 1],
  };
}

/** dW per matrix; storage [g, w, uv, sigma: read; dw: read_write]. */
export function spectralNormalizeBackwardLaunch(rows: number, cols: number, batch: number): Launch {
  return {
    kernel: { name: 'spectralNormalizeBackward', code: NORMALIZE_BACKWARD_WGSL, storage: ['read', 'read', 'read', 'read', 'read_write'] },
    uniforms: uniforms(rows, cols, 0, false),
    workgroups: [batch, 1, 1],
  };
}
