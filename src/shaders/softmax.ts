// Fused softmax / log-softmax over the last axis of a contiguous [rows, cols] view, forward and
// backward. The forward finds max and sum of exp in a single online pass, then writes the row.
//
// Dispatch geometry, by RowForm (rows.ts): 'workgroup', one ROW_WORKGROUP-invocation workgroup per
// row, rows over x then y (rowGrid); 'invocation', one invocation per row, 64 rows per workgroup
// (grid1d). The forward's 'workgroup' form has a cached variant for rows of up to ROW_CACHE_MAX_COLS
// elements: the row is kept in registers between the statistics and the output pass, so it is read
// from memory once. No adapter gets it from the backend: on the H100 it was slower than reading the
// row twice (48-57% of the bandwidth against 58-68%, bench/results/2026-11-28*-h100-ceilings.json).

import { packUniforms, type Launch } from './kernel.js';
import { LOWEST_F32, ONLINE_MAX_SUM_WGSL, ROW_REDUCE_WGSL, ROW_PER_INVOCATION_MAIN_WGSL, ROW_WORKGROUP_MAIN_WGSL, cachedRowMainWGSL, rowCacheSize, rowFormGrid, type RowForm } from './rows.js';

// Quiet NaN bits, passed as a uniform: a NaN constant in WGSL source is a compile error.
const NAN_BITS = 0x7fc00000;

const SOFTMAX_WGSL = /* wgsl */ `
struct Uniforms { rows: u32, cols: u32, log: u32, nanBits: u32 }
@group(0) @binding(0) var<uniform> u: Uniforms;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
${ROW_REDUCE_WGSL}
${ROW_WORKGROUP_MAIN_WGSL}
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

/**
 * The 'workgroup' form holding its row in registers: lane lid keeps elements lid + j·WG (j < K) in
 * a private array, so the row is read from memory once instead of twice (statistics, then the
 * output pass), for rows of up to K·WG elements. The statistics visit the values in the same groups
 * and order as SOFTMAX_WGSL, so both give the same bits.
 */
function softmaxCachedWGSL(k: number): string {
  return /* wgsl */ `
struct Uniforms { rows: u32, cols: u32, log: u32, nanBits: u32 }
@group(0) @binding(0) var<uniform> u: Uniforms;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
${ROW_REDUCE_WGSL}
${cachedRowMainWGSL(k)}
  var ms = vec2<f32>(${LOWEST_F32}, 0.0);
  var j = 0u;
  for (; j + 3u < K && lid + (j + 3u) * WG < u.cols; j = j + 4u) {
    ms = onlineMaxSum4(ms, vec4<f32>(xs[j], xs[j + 1u], xs[j + 2u], xs[j + 3u]));
  }
  for (; j < K && lid + j * WG < u.cols; j = j + 1u) { ms = onlineMaxSum(ms, xs[j]); }
  ms = workgroupMaxSum(ms, lid);
  let logSum = log(ms.y);
  let invSum = 1.0 / ms.y;
  let allMasked = ms.y == 0.0;
  for (j = 0u; j < K; j = j + 1u) {
    let c = lid + j * WG;
    if (c < u.cols) {
      let v = xs[j];
      var y = select(exp(v - ms.x) * invSum, (v - ms.x) - logSum, u.log != 0u);
      if (allMasked) { y = bitcast<f32>(u.nanBits); }
      out[base + c] = y;
    }
  }
}
`;
}

const SOFTMAX_CACHED_SOURCES = new Map<number, string>();

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
${ROW_WORKGROUP_MAIN_WGSL}
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

/**
 * (log-)softmax of each row; storage [x: read, out: read_write]. With `cached` (the 'workgroup'
 * form, cols <= ROW_CACHE_MAX_COLS) each workgroup holds its row in registers and reads it once.
 */
export function softmaxLaunch(rows: number, cols: number, log: boolean, form: RowForm = 'workgroup', cached = false): Launch {
  const row = form === 'invocation';
  if (cached && row) throw new Error('softmax: the cached form is a workgroup-per-row form');
  let kernel = { name: row ? 'softmax[row]' : 'softmax', code: row ? SOFTMAX_ROW_WGSL : SOFTMAX_WGSL, storage: ['read' as const, 'read_write' as const] };
  if (cached) {
    const k = rowCacheSize(cols);
    let code = SOFTMAX_CACHED_SOURCES.get(k);
    if (!code) SOFTMAX_CACHED_SOURCES.set(k, (code = softmaxCachedWGSL(k)));
    kernel = { name: `softmax[cached ${k}]`, code, storage: ['read', 'read_write'] };
  }
  return {
    kernel,
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
