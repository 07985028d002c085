// Movement kernel: the strided copy behind permute, slice, concat, pad and broadcastTo.
// Dispatch geometry: gridStride over STRIDED_WG-wide workgroups (at most maxGroups, each looping).

import { cachedKernel, gridStride, gridStrideLoopWGSL, HARDWARE_MAX_GROUPS, type Kernel, type Launch } from './kernel.js';
import { needsExactDiv, offsetsWGSL, packStrided, STRIDED_WG, stridedStructWGSL } from './strided.js';

// Raw 32-bit words, so f32 and i32 share the pipeline.
const copyKernel = (exact: boolean, rank: number): Kernel => cachedKernel(`copy|${exact}|${rank}`, () => ({
  name: `copy[r${rank}${exact ? ',exactDiv' : ''}]`,
  code: `${stridedStructWGSL(['n', 'rank', 'srcOffset', 'dstOffset'], ['ss', 'sd'])}
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<u32>;
${offsetsWGSL(['ss', 'sd'], exact, rank)}
@compute @workgroup_size(${STRIDED_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  ${gridStrideLoopWGSL(STRIDED_WG)} {
    let o = offsets(i);
    dst[u.dstOffset + o.y] = src[u.srcOffset + o.x];
  }
}`,
  storage: ['read', 'read_write'],
}));

/** dst[dstOffset + Σ i·dstStrides] = src[srcOffset + Σ i·srcStrides]; shape and strides collapsed by the caller. */
export function copyLaunch(shape: readonly number[], srcStrides: readonly number[], srcOffset: number, dstStrides: readonly number[], dstOffset: number,
  maxGroups = HARDWARE_MAX_GROUPS): Launch {
  const n = shape.reduce((p, d) => p * d, 1);
  return {
    kernel: copyKernel(needsExactDiv(n), shape.length),
    uniforms: packStrided([n, shape.length, srcOffset, dstOffset], shape, [srcStrides, dstStrides]),
    workgroups: gridStride(n, STRIDED_WG, maxGroups),
  };
}
