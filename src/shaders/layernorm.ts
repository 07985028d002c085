// LayerNorm over the last axis of a contiguous [rows, cols] view: the forward (saving mean and
// rstd), dx per row, and dgamma/dbeta as column sums over rows. Statistics are two-pass in f32
// (mean, then the mean of squared deviations), the same formula as the CPU reference.
//
// Dispatch geometry: forward and dx, one 64-invocation workgroup per row (rowGrid), or in the
// 'thread' variant one invocation per row (grid1d over rows, 64 per workgroup): on a software
// adapter every workgroup and barrier costs microseconds, so short rows are cheaper walked serially
// by one invocation. dgamma/dbeta, one invocation per column (grid1d over cols, 64 per workgroup).

import { flatIndexWGSL, grid1d, packUniforms, type Launch } from './kernel.js';
import { ROW_INDEX_WGSL, ROW_REDUCE_WGSL, rowGrid } from './rows.js';

const FORWARD_WGSL = /* wgsl */ `
struct Uniforms { rows: u32, cols: u32, eps: f32, pad: u32 }
@group(0) @binding(0) var<uniform> u: Uniforms;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read> beta: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<storage, read_write> mean: array<f32>;
@group(0) @binding(6) var<storage, read_write> rstd: array<f32>;
${ROW_REDUCE_WGSL}
@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let row = ${ROW_INDEX_WGSL};
  if (row >= u.rows) { return; } // uniform across the workgroup
  let base = row * u.cols;
  let n = f32(u.cols);
  var s = 0.0;
  for (var c = lid; c < u.cols; c = c + WG) { s = s + x[base + c]; }
  let mu = workgroupSum2(vec2<f32>(s, 0.0), lid).x / n;
  // Second pass over deviations: no cancellation, unlike E[x^2] - E[x]^2.
  var d2 = 0.0;
  for (var c = lid; c < u.cols; c = c + WG) {
    let d = x[base + c] - mu;
    d2 = d2 + d * d;
  }
  let rs = 1.0 / sqrt(workgroupSum2(vec2<f32>(d2, 0.0), lid).x / n + u.eps);
  for (var c = lid; c < u.cols; c = c + WG) {
    y[base + c] = (x[base + c] - mu) * rs * gamma[c] + beta[c];
  }
  if (lid == 0u) {
    mean[row] = mu;
    rstd[row] = rs;
  }
}
`;

const DX_WGSL = /* wgsl */ `
struct Uniforms { rows: u32, cols: u32, pad0: u32, pad1: u32 }
@group(0) @binding(0) var<uniform> u: Uniforms;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> gamma: array<f32>;
@group(0) @binding(4) var<storage, read> mean: array<f32>;
@group(0) @binding(5) var<storage, read> rstd: array<f32>;
@group(0) @binding(6) var<storage, read_write> dx: array<f32>;
${ROW_REDUCE_WGSL}
// dx = rstd / n * (n * g - sum(g) - xhat * sum(g * xhat)) with g = dy * gamma.
@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let row = ${ROW_INDEX_WGSL};
  if (row >= u.rows) { return; }
  let base = row * u.cols;
  let mu = mean[row];
  let rs = rstd[row];
  var sums = vec2<f32>(0.0);
  for (var c = lid; c < u.cols; c = c + WG) {
    let g = dy[base + c] * gamma[c];
    sums = sums + vec2<f32>(g, g * (x[base + c] - mu) * rs);
  }
  sums = workgroupSum2(sums, lid);
  let n = f32(u.cols);
  for (var c = lid; c < u.cols; c = c + WG) {
    let xhat = (x[base + c] - mu) * rs;
    dx[base + c] = rs / n * (n * dy[base + c] * gamma[c] - sums.x - xhat * sums.y);
  }
}
`;

/** 'workgroup': a workgroup per row (tree sums); 'thread': an invocation per row (serial sums). */
export type LayerNormVariant = 'workgroup' | 'thread';

const THREAD_WORKGROUP = 64;

// The 'thread' forward: the same two-pass statistics, summed serially by one invocation.
const FORWARD_THREAD_WGSL = /* wgsl */ `
struct Uniforms { rows: u32, cols: u32, eps: f32, pad: u32 }
@group(0) @binding(0) var<uniform> u: Uniforms;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read> beta: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<storage, read_write> mean: array<f32>;
@group(0) @binding(6) var<storage, read_write> rstd: array<f32>;
${flatIndexWGSL(THREAD_WORKGROUP)}
@compute @workgroup_size(${THREAD_WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let row = flatIndex(wid, nwg, lid);
  if (row >= u.rows) { return; }
  let base = row * u.cols;
  let n = f32(u.cols);
  var s = 0.0;
  for (var c = 0u; c < u.cols; c = c + 1u) { s = s + x[base + c]; }
  let mu = s / n;
  var d2 = 0.0;
  for (var c = 0u; c < u.cols; c = c + 1u) {
    let d = x[base + c] - mu;
    d2 = d2 + d * d;
  }
  let rs = 1.0 / sqrt(d2 / n + u.eps);
  for (var c = 0u; c < u.cols; c = c + 1u) {
    y[base + c] = (x[base + c] - mu) * rs * gamma[c] + beta[c];
  }
  mean[row] = mu;
  rstd[row] = rs;
}
`;

// The 'thread' dx: the same formula as DX_WGSL with serial row sums.
const DX_THREAD_WGSL = /* wgsl */ `
struct Uniforms { rows: u32, cols: u32, pad0: u32, pad1: u32 }
@group(0) @binding(0) var<uniform> u: Uniforms;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> gamma: array<f32>;
@group(0) @binding(4) var<storage, read> mean: array<f32>;
@group(0) @binding(5) var<storage, read> rstd: array<f32>;
@group(0) @binding(6) var<storage, read_write> dx: array<f32>;
${flatIndexWGSL(THREAD_WORKGROUP)}
@compute @workgroup_size(${THREAD_WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let row = flatIndex(wid, nwg, lid);
  if (row >= u.rows) { return; }
  let base = row * u.cols;
  let mu = mean[row];
  let rs = rstd[row];
  var sums = vec2<f32>(0.0);
  for (var c = 0u; c < u.cols; c = c + 1u) {
    let g = dy[base + c] * gamma[c];
    sums = sums + vec2<f32>(g, g * (x[base + c] - mu) * rs);
  }
  let n = f32(u.cols);
  for (var c = 0u; c < u.cols; c = c + 1u) {
    let xhat = (x[base + c] - mu) * rs;
    dx[base + c] = rs / n * (n * dy[base + c] * gamma[c] - sums.x - xhat * sums.y);
  }
}
`;

const PARAM_GRAD_WORKGROUP = 64;

const PARAM_GRAD_WGSL = /* wgsl */ `
struct Uniforms { rows: u32, cols: u32, pad0: u32, pad1: u32 }
@group(0) @binding(0) var<uniform> u: Uniforms;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> mean: array<f32>;
@group(0) @binding(4) var<storage, read> rstd: array<f32>;
@group(0) @binding(5) var<storage, read_write> dgamma: array<f32>;
@group(0) @binding(6) var<storage, read_write> dbeta: array<f32>;

${flatIndexWGSL(PARAM_GRAD_WORKGROUP)}

// One column per invocation, summing down the rows: neighbouring invocations read neighbouring
// words of each row. O(rows) serial work per column; fine while rows is a batch of tokens.
@compute @workgroup_size(${PARAM_GRAD_WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let c = flatIndex(wid, nwg, lid);
  if (c >= u.cols) { return; }
  var dg = 0.0;
  var db = 0.0;
  for (var r = 0u; r < u.rows; r = r + 1u) {
    let g = dy[r * u.cols + c];
    dg = dg + g * (x[r * u.cols + c] - mean[r]) * rstd[r];
    db = db + g;
  }
  dgamma[c] = dg;
  dbeta[c] = db;
}
`;

/** Storage [x, gamma, beta: read; y, mean, rstd: read_write]; mean and rstd are per row. */
export function layerNormLaunch(rows: number, cols: number, eps: number, variant: LayerNormVariant = 'workgroup'): Launch {
  const thread = variant === 'thread';
  return {
    kernel: { name: thread ? 'layerNorm[thread]' : 'layerNorm', code: thread ? FORWARD_THREAD_WGSL : FORWARD_WGSL, storage: ['read', 'read', 'read', 'read_write', 'read_write', 'read_write'] },
    uniforms: packUniforms([['u32', rows], ['u32', cols], ['f32', eps], ['u32', 0]]),
    workgroups: thread ? grid1d(rows, THREAD_WORKGROUP) : rowGrid(rows),
  };
}

/**
 * Two launches, independent of each other: dx with storage [dy, x, gamma, mean, rstd: read;
 * dx: read_write], and dgamma/dbeta with storage [dy, x, mean, rstd: read; dgamma, dbeta: read_write].
 */
export function layerNormBackwardLaunches(rows: number, cols: number, variant: LayerNormVariant = 'workgroup'): { dx: Launch; params: Launch } {
  const uniforms = packUniforms([['u32', rows], ['u32', cols], ['u32', 0], ['u32', 0]]);
  const thread = variant === 'thread';
  return {
    dx: {
      kernel: { name: thread ? 'layerNormBackward[dx,thread]' : 'layerNormBackward[dx]', code: thread ? DX_THREAD_WGSL : DX_WGSL, storage: ['read', 'read', 'read', 'read', 'read', 'read_write'] },
      uniforms,
      workgroups: thread ? grid1d(rows, THREAD_WORKGROUP) : rowGrid(rows),
    },
    params: {
      kernel: { name: 'layerNormBackward[dgamma,dbeta]', code: PARAM_GRAD_WGSL, storage: ['read', 'read', 'read', 'read', 'read_write', 'read_write'] },
      uniforms,
      workgroups: grid1d(cols, PARAM_GRAD_WORKGROUP),
    },
  };
}
