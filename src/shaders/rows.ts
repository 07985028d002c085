// Shared pieces of the row kernels (softmax, layerNorm, cross-entropy): the two ways of mapping rows
// onto invocations, the row grid, workgroup tree reductions, and the online max/sum that gives a
// row's log-sum-exp in one pass.

import { flatIndexWGSL, grid1d } from './kernel.js';

/**
 * How a row kernel maps rows onto invocations.
 * - 'workgroup': one ROW_WORKGROUP-invocation workgroup per row; lanes stride over the columns and partial
 *   results meet in a tree reduction in workgroup memory. The form for GPUs: coalesced loads, and
 *   thousands of workgroups keep the machine full.
 * - 'invocation': one invocation per row, 64 rows per workgroup, no workgroup memory and no
 *   barriers. On lavapipe a workgroup costs microseconds of scheduling and every barrier a switch
 *   between the workgroup's invocations, so this form is what a CPU driver wants. Measured on the
 *   2-core lavapipe machine, layerNorm forward: [1024, 128] 6.4 -> 0.5 ms, [4096, 1024] 46 -> 16 ms.
 */
export type RowForm = 'workgroup' | 'invocation';

/**
 * The row form for an adapter and a row count: 'invocation' on a software (CPU) adapter once the
 * rows fill a workgroup, else 'workgroup' (a GPU; or a few long rows, which one lane each would
 * walk alone while the SIMD unit's other lanes idle).
 */
export function rowFormFor(adapterIsSoftware: boolean, rows: number): RowForm {
  return adapterIsSoftware && rows >= ROWS_PER_INVOCATION_GROUP ? 'invocation' : 'workgroup';
}

/** Rows per workgroup in the 'invocation' form. */
export const ROWS_PER_INVOCATION_GROUP = 64;

/**
 * WGSL: the entry point of an 'invocation'-form row kernel up to the row's first element: `row`
 * (this invocation's row; past u.rows it returns) and `base` (row * u.cols). The kernel's uniform
 * struct needs `rows` and `cols`; the caller writes the body and the closing brace.
 */
export const ROW_PER_INVOCATION_MAIN_WGSL = `${flatIndexWGSL(ROWS_PER_INVOCATION_GROUP)}
@compute @workgroup_size(${ROWS_PER_INVOCATION_GROUP})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let row = flatIndex(wid, nwg, lid);
  if (row >= u.rows) { return; }
  let base = row * u.cols;`;

/** Workgroup counts of a row kernel in either form (index rows with ROW_INDEX_WGSL or flatIndex). */
export function rowFormGrid(rows: number, form: RowForm): [number, number, number] {
  return form === 'workgroup' ? rowGrid(rows) : grid1d(rows, ROWS_PER_INVOCATION_GROUP);
}

/**
 * Invocations per row in the 'workgroup' form (GPUs; lavapipe uses it only for fewer rows than fill
 * one 'invocation' workgroup). Measured on an H100 (2026-11-28, bench/gpuCeilings.ts, rows of 1024,
 * 256 MiB, two-read forms): softmax 58% / 68% / 63% of the memory bandwidth at 64 / 128 / 256
 * lanes, layerNorm 59% / 67% / 57%.
 */
export const ROW_WORKGROUP = 128;

/**
 * Longest row the cached row kernels hold (softmax and layerNorm forward, 'workgroup' form): K = 32
 * values per lane.
 */
export const ROW_CACHE_MAX_COLS = 32 * ROW_WORKGROUP;

/** Values per lane for a cached row of cols: a power of two from 4, so few pipelines serve all widths. */
export function rowCacheSize(cols: number): number {
  if (!(cols >= 1 && cols <= ROW_CACHE_MAX_COLS)) throw new RangeError(`row cache: ${cols} columns (1 to ${ROW_CACHE_MAX_COLS})`);
  let k = 4;
  while (k * ROW_WORKGROUP < cols) k *= 2;
  return k;
}

/**
 * WGSL: the entry point of a cached-row kernel ('workgroup' form, rows of up to K·WG elements) up
 * to the row's values: `row` (past u.rows it returns), `base` (row * u.cols) and `xs`, lane lid's
 * elements lid + j·WG of row `row` of x (0 past the row's end), every load issued before any
 * arithmetic. Needs ROW_REDUCE_WGSL (WG), x and a uniform struct with `rows` and `cols`; the caller
 * writes the body and the closing brace.
 */
export function cachedRowMainWGSL(k: number): string {
  return `const K = ${k}u;
${ROW_WORKGROUP_MAIN_WGSL}
  var xs: array<f32, ${k}>;
  for (var j = 0u; j < K; j = j + 1u) {
    let c = lid + j * WG;
    xs[j] = select(0.0, x[base + min(c, u.cols - 1u)], c < u.cols);
  }`;
}

/** Workgroup counts for one workgroup per row; rows past 65535 spill into y (see ROW_INDEX_WGSL). */
export function rowGrid(rows: number): [number, number, number] {
  return grid1d(rows, 1);
}

/** The row of this workgroup for a rowGrid dispatch (uniform across the workgroup). */
export const ROW_INDEX_WGSL = 'wid.y * nwg.x + wid.x';

/**
 * WGSL: the entry point of a 'workgroup'-form row kernel up to the row's first element: `row` (the
 * workgroup's row; past u.rows it returns) and `base` (row * u.cols); lanes `lid` < WG. Needs
 * ROW_REDUCE_WGSL (WG) and a uniform struct with `rows` and `cols`; the caller writes the body and
 * the closing brace.
 */
export const ROW_WORKGROUP_MAIN_WGSL = `@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let row = ${ROW_INDEX_WGSL};
  if (row >= u.rows) { return; } // uniform across the workgroup
  let base = row * u.cols;`;

/** Most negative finite f32: the starting max, so exp(old - new) never sees -inf - -inf. */
export const LOWEST_F32 = '-3.4028234663852886e38';

/** WGSL: online softmax statistics, (max, sum of exp(x - max)) updated with one more x. */
export const ONLINE_MAX_SUM_WGSL = /* wgsl */ `
fn onlineMaxSum(ms: vec2<f32>, x: f32) -> vec2<f32> {
  if (x > ms.x) { return vec2<f32>(x, ms.y * exp(ms.x - x) + 1.0); }
  return vec2<f32>(ms.x, ms.y + exp(x - ms.x));
}

// The same with four more values at once: one rescale of the running sum, to their joint max.
fn onlineMaxSum4(ms: vec2<f32>, v: vec4<f32>) -> vec2<f32> {
  let m = max(ms.x, max(max(v.x, v.y), max(v.z, v.w)));
  let e = exp(v - vec4<f32>(m));
  return vec2<f32>(m, ms.y * exp(ms.x - m) + (e.x + e.y) + (e.z + e.w));
}
`;

export const ROW_REDUCE_WGSL = /* wgsl */ `
const WG = ${ROW_WORKGROUP}u;
var<workgroup> redA: array<f32, ${ROW_WORKGROUP}>;
var<workgroup> redB: array<f32, ${ROW_WORKGROUP}>;

// Sums of (v.x, v.y) over the workgroup, returned to every invocation. Call from uniform control flow.
fn workgroupSum2(v: vec2<f32>, lid: u32) -> vec2<f32> {
  redA[lid] = v.x;
  redB[lid] = v.y;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s >> 1u) {
    if (lid < s) {
      redA[lid] = redA[lid] + redA[lid + s];
      redB[lid] = redB[lid] + redB[lid + s];
    }
    workgroupBarrier();
  }
  let r = vec2<f32>(redA[0], redB[0]);
  workgroupBarrier(); // everyone has read the result before the buffers are reused
  return r;
}

${ONLINE_MAX_SUM_WGSL}

// Merges per-invocation (max, sum) pairs over the workgroup, rescaling each sum to the larger max.
fn workgroupMaxSum(ms: vec2<f32>, lid: u32) -> vec2<f32> {
  redA[lid] = ms.x;
  redB[lid] = ms.y;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s >> 1u) {
    if (lid < s) {
      let m1 = redA[lid];
      let m2 = redA[lid + s];
      let m = max(m1, m2);
      redB[lid] = redB[lid] * exp(m1 - m) + redB[lid + s] * exp(m2 - m);
      redA[lid] = m;
    }
    workgroupBarrier();
  }
  let r = vec2<f32>(redA[0], redB[0]);
  workgroupBarrier();
  return r;
}
`;
