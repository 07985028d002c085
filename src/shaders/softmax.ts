// Fused softmax / log-softmax over the last axis of a contiguous [rows, cols] view, forward and
// backward. The forward finds max and sum of exp in a single online pass, then writes the row.
//
// Dispatch geometry, by RowForm (rows.ts): 'workgroup', one 64-invocation workgroup per row, rows
// over x then y (rowGrid); 'invocation', one invocation per row, 64 rows per workgroup (grid1d).

import { packUniforms, type Launch } from './kernel.js';
import { LOWEST_F32, ONLINE_MAX_SUM_WGSL, ROW_INDEX_WGSL, ROW_REDUCE_WGSL, ROW_PER_INVOCATION_MAIN_WGSL, rowFormGrid, type RowForm } from './rows.js';

// Quiet NaN bits, passed as a uniform: a NaN constant in WGSL source is a compile error.
const NAN_BITS = 0x7fc00000;

const SOFTMAX_WGSL = /* wgsl */ `
struct Uniforms { rows: u32, cols: u32, log: u32, nanBits: u32 }
@group(0) @binding(0) var<uniform> u: Uniforms;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
${ROW_REDUCE_WGSL}
@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let row = ${ROW_INDEX_WGSL};
  if (row >= u.rows) { return; } // uniform across the workgroup
  let base = row * u.cols;
  var ms = vec2<f32>(${LOWEST_F32}, 0.0);
  // Four loads in flight per lane before any arithmetic (on a GPU the loop is otherwise bound by
  // one load's latency at a time), then the online update with their max.
  var c = lid;
  for (; c + 3u * WG < u.cols; c = c + 4u * WG) {
    let v = vec4<f32>(x[base + c], x[base + c + WG], x[base + c + 2u * WG], x[base + c + 3u * WG]);
    ms = onlineMaxSum4(ms, v);
  }
  for (; c < u.cols; c = c + WG) { ms = onlineMaxSum(ms, x[base + c]); }
  ms = workgroupMaxSum(ms, lid);
  // Normalize relative to the max, not through lse = max + log(sum): for scores near ±1e9 (masked
  // attention rows) max + log(sum) rounds back to max in f32 and the row would not sum to 1.
  let logSum = log(ms.y);
  let invSum = 1.0 / ms.y;
  // A row of only -inf has sum 0. The CPU then takes max = 0 and gets lse = -inf and NaN outputs;
  // write those NaNs explicitly rather than trust f32 inf arithmetic.
  let allMasked = ms.y == 0.0;
  for (c = lid; c < u.cols; c = c + WG) {
    let v = x[base + c];
    var y = select(exp(v - ms.x) * invSum, (v - ms.x) - logSum, u.log != 0u);
    if (allMasked) { y = bitcast<f32>(u.nanBits); }
    out[base + c] = y;
  }
}
`;

// One invocation per row: the same arithmetic as above, with the whole row in one lane.
const SOFTMAX_ROW_WGSL = /* wgsl */ `
struct Uniforms { rows: u32, cols: u32, log: u32, nanBits: u32 }
@group(0) @binding(0) var<uniform> u: Uniforms;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
${ONLINE_MAX_SUM_WGSL}
${ROW_PER_INVOCATION_MAIN_WGSL}
  var ms = vec2<f32>(${LOWEST_F32}, 0.0);
  for (var c = 0u; c < u.cols; c = c + 1u) { ms = onlineMaxSum(ms, x[base + c]); }
  let logSum = log(ms.y);
  let invSum = 1.0 / ms.y;
  let allMasked = ms.y == 0.0;
  for (var c = 0u; c < u.cols; c = c + 1u) {
    let v = x[base + c];
    var y = select(exp(v - ms.x) * invSum, (v - ms.x) - logSum, u.log != 0u);
    if (allMasked) { y = bitcast<f32>(u.nanBits); }
    out[base + c] = y;
  }
}
`;

const SOFTMAX_BACKWARD_WGSL = /* wgsl */ `
struct Uniforms { rows: u32, cols: u32, log: u32, pad: u32 }
@group(0) @binding(0) var<uniform> u: Uniforms;
@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;
${ROW_REDUCE_WGSL}
// softmax: dx = y * (dy - sum(dy * y)); log-softmax: dx = dy - exp(y) * sum(dy).
@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let row = ${ROW_INDEX_WGSL};
  if (row >= u.rows) { return; }
  let base = row * u.cols;
  let isLog = u.log != 0u;
  var dot = 0.0;
  for (var c = lid; c < u.cols; c = c + WG) {
    let g = dy[base + c];
    dot = dot + select(g * y[base + c], g, isLog);
  }
  dot = workgroupSum2(vec2<f32>(dot, 0.0), lid).x;
  for (var c = lid; c < u.cols; c = c + WG) {
    let g = dy[base + c];
    let v = y[base + c];
    dx[base + c] = select(v * (g - dot), g - exp(v) * dot, isLog);
  }
}
`;

const SOFTMAX_BACKWARD_ROW_WGSL = /* wgsl */ `
struct Uniforms { rows: u32, cols: u32, log: u32, pad: u32 }
@group(0) @binding(0) var<uniform> u: Uniforms;
@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;
${ROW_PER_INVOCATION_MAIN_WGSL}
  let isLog = u.log != 0u;
  var dot = 0.0;
  for (var c = 0u; c < u.cols; c = c + 1u) {
    let g = dy[base + c];
    dot = dot + select(g * y[base + c], g, isLog);
  }
  for (var c = 0u; c < u.cols; c = c + 1u) {
    let g = dy[base + c];
    let v = y[base + c];
    dx[base + c] = select(v * (g - dot), g - exp(v) * dot, isLog);
  }
}
`;

/** (log-)softmax of each row; storage [x: read, out: read_write]. */
export function softmaxLaunch(rows: number, cols: number, log: boolean, form: RowForm = 'workgroup'): Launch {
  const row = form === 'invocation';
  return {
    kernel: { name: row ? 'softmax[row]' : 'softmax', code: row ? SOFTMAX_ROW_WGSL : SOFTMAX_WGSL, storage: ['read', 'read_write'] },
    uniforms: packUniforms([['u32', rows], ['u32', cols], ['u32', log ? 1 : 0], ['u32', NAN_BITS]]),
    workgroups: rowFormGrid(rows, form),
  };
}

/** dx from y = (log-)softmax(x) and dy; storage [y: read, dy: read, dx: read_write]. */
export function softmaxBackwardLaunch(rows: number, cols: number, log: boolean, form: RowForm = 'workgroup'): Launch {
  const row = form === 'invocation';
  return {
    kernel: { name: row ? 'softmaxBackward[row]' : 'softmaxBackward', code: row ? SOFTMAX_BACKWARD_ROW_WGSL : SOFTMAX_BACKWARD_WGSL, storage: ['read', 'read', 'read_write'] },
    uniforms: packUniforms([['u32', rows], ['u32', cols], ['u32', log ? 1 : 0], ['u32', 0]]),
    workgroups: rowFormGrid(rows, form),
  };
}
