// One power iteration of spectral normalization in a single dispatch: v ← normalize(Wᵀu), then
// u ← normalize(W v), in place, for W [rows, cols] row-major, with normalize(x) = x / max(‖x‖, eps)
// (torch.nn.functional.normalize). The composed form costs a dozen dispatches (two matrix-vector
// products, two norms of several ops each, two copies); the critics' matrices are small, so one
// workgroup does it all.
//
// Dispatch geometry: one workgroup of 256 invocations per matrix of the batch (workgroup x = which
// one); each invocation owns columns (then rows) lid, lid + 256, ... and the norms are tree sums in
// workgroup memory.

import type { Launch } from './kernel.js';
import { packUniforms } from './kernel.js';

const WG = 256;

const POWER_ITERATION_WGSL = /* wgsl */ `
struct Uniforms { rows: u32, cols: u32, eps: f32, pad: u32 }
@group(0) @binding(0) var<uniform> p: Uniforms;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read_write> u: array<f32>;
@group(0) @binding(3) var<storage, read_write> v: array<f32>;
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

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  // This workgroup's matrix and vectors.
  let wo = wid.x * p.rows * p.cols;
  let uo = wid.x * p.rows;
  let vo = wid.x * p.cols;
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
}
`;

/**
 * One power iteration in place for each of batch matrices (w [batch, rows, cols], u [batch, rows],
 * v [batch, cols]); storage [w: read, u: read_write, v: read_write].
 */
export function powerIterationLaunch(rows: number, cols: number, eps: number, batch = 1): Launch {
  return {
    kernel: { name: 'powerIteration', code: POWER_ITERATION_WGSL, storage: ['read', 'read_write', 'read_write'] },
    uniforms: packUniforms([['u32', rows], ['u32', cols], ['f32', eps], ['u32', 0]]),
    workgroups: [batch, 1, 1],
  };
}
