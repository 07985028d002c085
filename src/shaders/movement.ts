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

/** Sources one concat dispatch reads at most (each a storage binding, plus the output). */
export const CONCAT_MAX_SOURCES = 8;

/**
 * Several contiguous sources side by side in one pass: the output is [outer, row] and source s,
 * viewed as [outer, width_s], fills columns [colBase + start_s, colBase + start_s + width_s) of
 * every row (starts relative to the group, start_S = the group's width). A source whose bit is set
 * in u.repeat is one [width_s] block repeated for every row (outer stride 0). Raw 32-bit words.
 */
const concatKernel = (sources: number): Kernel => cachedKernel(`concat|${sources}`, () => {
  const s = Array.from({ length: sources }, (_, k) => k);
  const pick = s.map((k) => {
    const start = `u.starts[${Math.floor(k / 4)}][${k % 4}]`;
    const width = `(u.starts[${Math.floor((k + 1) / 4)}][${(k + 1) % 4}] - ${start})`;
    const body = `dst[d] = src${k}[select(o * ${width}, 0u, (u.repeat & ${1 << k}u) != 0u) + p - ${start}];`;
    return k === sources - 1 ? `{ ${body} }` : `if (p < u.starts[${Math.floor((k + 1) / 4)}][${(k + 1) % 4}]) { ${body} }`;
  });
  return {
    name: `concat[${sources}]`,
    code: `struct U { n: u32, width: u32, row: u32, colBase: u32, starts: array<vec4<u32>, ${Math.ceil((sources + 1) / 4)}>, repeat: u32 }
@group(0) @binding(0) var<uniform> u: U;
${s.map((k) => `@group(0) @binding(${k + 1}) var<storage, read> src${k}: array<u32>;`).join('\n')}
@group(0) @binding(${sources + 1}) var<storage, read_write> dst: array<u32>;
@compute @workgroup_size(${STRIDED_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  ${gridStrideLoopWGSL(STRIDED_WG)} {
    let o = i / u.width;
    let p = i - o * u.width;
    let d = o * u.row + u.colBase + p;
    ${pick.join(' else ')}
  }
}`,
    storage: [...s.map(() => 'read' as const), 'read_write'],
  };
});

/**
 * One dispatch writing sources (widths[s] columns each, at most CONCAT_MAX_SOURCES) into columns
 * colBase.. of an [outer, row] output; buffers [...sources, dst]. shared[s]: source s is a single
 * [widths[s]] block used for every outer index.
 */
export function concatLaunch(outer: number, widths: readonly number[], row: number, colBase: number, maxGroups = HARDWARE_MAX_GROUPS, shared: readonly boolean[] = []): Launch {
  if (widths.length < 1 || widths.length > CONCAT_MAX_SOURCES) throw new RangeError(`concat: ${widths.length} sources in one dispatch (1 to ${CONCAT_MAX_SOURCES})`);
  const starts = [0];
  for (const w of widths) starts.push(starts[starts.length - 1] + w);
  const width = starts[widths.length];
  const n = outer * width;
  const words = Array.from({ length: 4 * Math.ceil((widths.length + 1) / 4) }, (_, k) => starts[k] ?? 0);
  const sharedBits = shared.reduce((bits, on, k) => (on ? bits | (1 << k) : bits), 0);
  return {
    kernel: concatKernel(widths.length),
    // The struct's last field (repeat) follows the starts array: pad to a 16-byte multiple.
    uniforms: Uint32Array.from([n, width, row, colBase, ...words, sharedBits, 0, 0, 0]),
    workgroups: gridStride(n, STRIDED_WG, maxGroups),
  };
}
