// Movement kernel: the strided copy behind permute, slice, concat, pad and broadcastTo.
// Dispatch geometry: one invocation per element of the copied shape, grid1d over STRIDED_WG.

import { flatIndexWGSL, grid1d, type Kernel, type Launch } from './kernel.js';
import { offsetsWGSL, packStrided, STRIDED_WG, stridedStructWGSL } from './strided.js';

// Raw 32-bit words, so f32 and i32 share the pipeline.
const copyKernel: Kernel = {
  name: 'copy',
  code: `${stridedStructWGSL(['n', 'rank', 'srcOffset', 'dstOffset'], ['ss', 'sd'])}
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<u32>;
${offsetsWGSL(['ss', 'sd'])}
${flatIndexWGSL(STRIDED_WG)}
@compute @workgroup_size(${STRIDED_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = flatIndex(wid, nwg, lid);
  if (i >= u.n) { return; }
  let o = offsets(i);
  dst[u.dstOffset + o.y] = src[u.srcOffset + o.x];
}`,
  storage: ['read', 'read_write'],
};

/** dst[dstOffset + Σ i·dstStrides] = src[srcOffset + Σ i·srcStrides]; shape and strides collapsed by the caller. */
export function copyLaunch(shape: readonly number[], srcStrides: readonly number[], srcOffset: number, dstStrides: readonly number[], dstOffset: number): Launch {
  const n = shape.reduce((p, d) => p * d, 1);
  return {
    kernel: copyKernel,
    uniforms: packStrided([n, shape.length, srcOffset, dstOffset], shape, [srcStrides, dstStrides]),
    workgroups: grid1d(n, STRIDED_WG),
  };
}
