// Shared pieces of the one-workgroup-per-row kernels (softmax, layerNorm, cross-entropy): the row
// grid, workgroup tree reductions, and the online max/sum that gives a row's log-sum-exp in one pass.

import { grid1d } from './kernel.js';

/** Invocations per row. 64 keeps barriers cheap on lavapipe and still fills a warp-sized unit. */
export const ROW_WORKGROUP = 64;

/** Workgroup counts for one workgroup per row; rows past 65535 spill into y (see ROW_INDEX_WGSL). */
export function rowGrid(rows: number): [number, number, number] {
  return grid1d(rows, 1);
}

/** The row of this workgroup for a rowGrid dispatch (uniform across the workgroup). */
export const ROW_INDEX_WGSL = 'wid.y * nwg.x + wid.x';

/** Most negative finite f32: the starting max, so exp(old - new) never sees -inf - -inf. */
export const LOWEST_F32 = '-3.4028234663852886e38';

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

// Online softmax statistics: (max, sum of exp(x - max)) for one more x.
fn onlineMaxSum(ms: vec2<f32>, x: f32) -> vec2<f32> {
  if (x > ms.x) { return vec2<f32>(x, ms.y * exp(ms.x - x) + 1.0); }
  return vec2<f32>(ms.x, ms.y + exp(x - ms.x));
}

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
