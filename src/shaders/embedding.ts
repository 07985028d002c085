// Gather and its transpose along one axis of an [outer, dim, inner] view: indexSelect (embedding
// lookup) and indexAdd (its gradient). indexAdd gathers instead of scattering, so it needs no float
// atomics (WGSL has none) and sums each output in index order: results are deterministic and equal
// to the CPU's bit for bit.
//
// Dispatch geometry: indexSelect, one invocation per output element (grid1d, 256 per workgroup);
// indexAdd, one invocation per (o, d, chunk of up to 256 columns) (grid1d, 64 per workgroup).

import { flatIndexWGSL, grid1d, packUniforms, type Launch } from './kernel.js';

const WORKGROUP = 256;
const NAN_BITS = 0x7fc00000;

const HEADER = /* wgsl */ `
struct Uniforms { outer: u32, dim: u32, inner: u32, nIdx: u32, total: u32, nanBits: u32, chunks: u32, pad: u32 }
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

const ADD_WORKGROUP = 64;
/** Columns per indexAdd invocation: a whole embedding row in practice, split only for very wide rows. */
const ADD_CHUNK = 256;

const ADD_WGSL = /* wgsl */ `${HEADER}
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read> idx: array<i32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

${flatIndexWGSL(ADD_WORKGROUP)}

// out[o, d, c0..c1) = sum over j (ascending) with idx[j] == d of src[o, j, c0..c1). Each invocation
// scans the nIdx indices once for its row and adds only the matching source rows, so the cost is
// outer * dim * nIdx compares plus outer * nIdx * inner adds, not a compare per output element
// (for a GPT's embedding gradient, vocab 4096 x 128 columns x 1024 tokens on lavapipe: ~30 ms
// instead of ~3 s). Indices outside [0, dim) match nothing and are dropped.
@compute @workgroup_size(${ADD_WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let e = flatIndex(wid, nwg, lid);
  if (e >= u.total) { return; }
  let nChunks = u.chunks; // column chunks per row
  let chunk = e % nChunks;
  let d = (e / nChunks) % u.dim;
  let o = e / (nChunks * u.dim);
  let c0 = chunk * ${ADD_CHUNK}u;
  let c1 = min(c0 + ${ADD_CHUNK}u, u.inner);
  let ob = (o * u.dim + d) * u.inner;
  for (var c = c0; c < c1; c = c + 1u) { out[ob + c] = 0.0; }
  for (var j = 0u; j < u.nIdx; j = j + 1u) {
    if (idx[j] == i32(d)) {
      let sb = (o * u.nIdx + j) * u.inner;
      for (var c = c0; c < c1; c = c + 1u) { out[ob + c] = out[ob + c] + src[sb + c]; }
    }
  }
}
`;

// chunks: indexAdd's column chunks per row (unused by indexSelect).
function launch(name: string, code: string, total: number, wg: number, outer: number, dim: number, inner: number, nIdx: number, chunks = 0): Launch {
  return {
    kernel: { name, code, storage: ['read', 'read', 'read_write'] },
    uniforms: packUniforms([
      ['u32', outer], ['u32', dim], ['u32', inner], ['u32', nIdx], ['u32', total], ['u32', NAN_BITS], ['u32', chunks], ['u32', 0],
    ]),
    workgroups: grid1d(total, wg),
  };
}

/** out [outer, nIdx, inner] = x [outer, dim, inner] at idx (f32 or i32 words); storage [x: read, idx (i32): read, out: read_write]. */
export function indexSelectLaunch(outer: number, dim: number, inner: number, nIdx: number): Launch {
  return launch('indexSelect', SELECT_WGSL, outer * nIdx * inner, WORKGROUP, outer, dim, inner, nIdx);
}

/**
 * out [outer, dim, inner] = zeros with src [outer, nIdx, inner] added at idx (every element of out
 * is written); storage [src: read, idx (i32): read, out: read_write].
 */
export function indexAddLaunch(outer: number, dim: number, inner: number, nIdx: number): Launch {
  const chunks = Math.max(1, Math.ceil(inner / ADD_CHUNK));
  // inner = 0 leaves nothing to write; total 0 makes every invocation exit at once.
  return launch('indexAdd', ADD_WGSL, inner === 0 ? 0 : outer * dim * chunks, ADD_WORKGROUP, outer, dim, inner, nIdx, chunks);
}
