// Gather and its transpose along one axis of an [outer, dim, inner] view: indexSelect (embedding
// lookup) and indexAdd (its gradient). indexAdd gathers instead of scattering, so it needs no float
// atomics (WGSL has none) and sums each output in index order: results are deterministic.
//
// Dispatch geometry: one invocation per output element, grid1d with 256 per workgroup.

import { flatIndexWGSL, grid1d, packUniforms, type Launch } from './kernel.js';

const WORKGROUP = 256;
const NAN_BITS = 0x7fc00000;

const HEADER = /* wgsl */ `
struct Uniforms { outer: u32, dim: u32, inner: u32, nIdx: u32, total: u32, nanBits: u32, pad0: u32, pad1: u32 }
@group(0) @binding(0) var<uniform> u: Uniforms;
`;

const SELECT_WGSL = /* wgsl */ `${HEADER}
// Values move as raw 32-bit words, so one pipeline gathers f32 and i32 alike, bit for bit.
@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read> idx: array<i32>;
@group(0) @binding(3) var<storage, read_write> out: array<u32>;

${flatIndexWGSL(WORKGROUP)}

// out[o, j, i] = x[o, idx[j], i]. The CPU throws on an index outside [0, dim); a kernel cannot, so
// it writes the bits of NaN there, which at least poisons an f32 loss instead of reading another row.
@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let e = flatIndex(wid, nwg, lid);
  if (e >= u.total) { return; }
  let i = e % u.inner;
  let j = (e / u.inner) % u.nIdx;
  let o = e / (u.inner * u.nIdx);
  let d = idx[j];
  var v = u.nanBits;
  if (d >= 0 && u32(d) < u.dim) { v = x[(o * u.dim + u32(d)) * u.inner + i]; }
  out[e] = v;
}
`;

const ADD_WGSL = /* wgsl */ `${HEADER}
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read> idx: array<i32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

${flatIndexWGSL(WORKGROUP)}

// out[o, d, i] = sum over j with idx[j] == d of src[o, j, i]: every output scans all nIdx indices,
// so the cost is O(outer * dim * inner * nIdx) compares but only nIdx * inner * outer loads of src.
// Indices outside [0, dim) match nothing and are dropped.
@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let e = flatIndex(wid, nwg, lid);
  if (e >= u.total) { return; }
  let i = e % u.inner;
  let d = i32((e / u.inner) % u.dim);
  let o = e / (u.inner * u.dim);
  var acc = 0.0;
  for (var j = 0u; j < u.nIdx; j = j + 1u) {
    if (idx[j] == d) { acc = acc + src[(o * u.nIdx + j) * u.inner + i]; }
  }
  out[e] = acc;
}
`;

function launch(name: string, code: string, total: number, outer: number, dim: number, inner: number, nIdx: number): Launch {
  return {
    kernel: { name, code, storage: ['read', 'read', 'read_write'] },
    uniforms: packUniforms([
      ['u32', outer], ['u32', dim], ['u32', inner], ['u32', nIdx], ['u32', total], ['u32', NAN_BITS], ['u32', 0], ['u32', 0],
    ]),
    workgroups: grid1d(total, WORKGROUP),
  };
}

/** out [outer, nIdx, inner] = x [outer, dim, inner] at idx (f32 or i32 words); storage [x: read, idx (i32): read, out: read_write]. */
export function indexSelectLaunch(outer: number, dim: number, inner: number, nIdx: number): Launch {
  return launch('indexSelect', SELECT_WGSL, outer * nIdx * inner, outer, dim, inner, nIdx);
}

/**
 * out [outer, dim, inner] = zeros with src [outer, nIdx, inner] added at idx (every element of out
 * is written); storage [src: read, idx (i32): read, out: read_write].
 */
export function indexAddLaunch(outer: number, dim: number, inner: number, nIdx: number): Launch {
  return launch('indexAdd', ADD_WGSL, outer * dim * inner, outer, dim, inner, nIdx);
}
