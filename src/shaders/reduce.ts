// Reduction kernels (sum, max, min) over any set of axes of a contiguous tensor.
// - rows: x viewed as [rows, cols] reducing cols (the last axes): one workgroup of ROW_WG per row,
//   a strided loop then a tree in workgroup memory. Dispatch: grid1d(rows, 1).
// - generic: any axes; one invocation per output element looping over the reduced elements.
//   Dispatch: grid1d(nOut, STRIDED_WG).
// max/min propagate NaN as the CPU does. f32 sums are accumulated in a different order from the
// CPU, so they agree to rounding (about n·ulp·max|x|), not bit for bit.

import type { ReduceOp } from '../tensor/backend.js';
import type { GpuDType } from './elementwise.js';
import { cachedKernel, flatIndexWGSL, grid1d, packUniforms, type Kernel, type Launch } from './kernel.js';
import { MAX_RANK, STRIDED_WG } from './strided.js';

const ROW_WG = 256;

function init(op: ReduceOp, dtype: GpuDType): string {
  if (op === 'sum') return dtype === 'f32' ? '0.0' : '0';
  if (dtype === 'f32') return op === 'max' ? 'negInf()' : '-negInf()';
  return op === 'max' ? 'i32(-2147483647 - 1)' : '2147483647';
}

/** WGSL `combine(acc, v)`. */
function combineWGSL(op: ReduceOp, dtype: GpuDType): string {
  // An infinite literal is a WGSL compile error, so build it at run time.
  const inf = 'fn negInf() -> f32 { var bits = 0xff800000u; return bitcast<f32>(bits); }\n';
  const body = op === 'sum' ? 'acc + v' : op === 'max' ? 'select(acc, v, v > acc || v != v)' : 'select(acc, v, v < acc || v != v)';
  return `${dtype === 'f32' ? inf : ''}fn combine(acc: ${dtype}, v: ${dtype}) -> ${dtype} { return ${body}; }`;
}

export function reduceRowsKernel(op: ReduceOp, dtype: GpuDType): Kernel {
  return cachedKernel(`reduceRows|${op}|${dtype}`, () => buildReduceRows(op, dtype));
}

function buildReduceRows(op: ReduceOp, dtype: GpuDType): Kernel {
  const code = `struct U { rows: u32, cols: u32, scale: f32, pad1: u32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> xs: array<${dtype}>;
@group(0) @binding(2) var<storage, read_write> out: array<${dtype}>;
var<workgroup> part: array<${dtype}, ${ROW_WG}>;
${combineWGSL(op, dtype)}
@compute @workgroup_size(${ROW_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = wid.y * nwg.x + wid.x;
  var acc: ${dtype} = ${init(op, dtype)};
  if (row < u.rows) {
    let base = row * u.cols;
    for (var c = lid; c < u.cols; c = c + ${ROW_WG}u) { acc = combine(acc, xs[base + c]); }
  }
  part[lid] = acc;
  workgroupBarrier();
  for (var s = ${ROW_WG / 2}u; s > 0u; s = s >> 1u) {
    if (lid < s) { part[lid] = combine(part[lid], part[lid + s]); }
    workgroupBarrier();
  }
  if (lid == 0u && row < u.rows) { out[row] = ${dtype === 'f32' ? 'part[0] * u.scale' : 'part[0]'}; }
}`;
  return { name: `reduceRows[${op},${dtype}]`, code, storage: ['read', 'read_write'] };
}

/** scale multiplies each f32 result (1 by default: exact), so a mean is one pass. */
export function reduceRowsLaunch(op: ReduceOp, dtype: GpuDType, rows: number, cols: number, scale = 1): Launch {
  return { kernel: reduceRowsKernel(op, dtype), uniforms: packUniforms([['u32', rows], ['u32', cols], ['f32', scale], ['u32', 0]]), workgroups: grid1d(rows, 1) };
}

export function reduceGenericKernel(op: ReduceOp, dtype: GpuDType): Kernel {
  return cachedKernel(`reduceGeneric|${op}|${dtype}`, () => buildReduceGeneric(op, dtype));
}

function buildReduceGeneric(op: ReduceOp, dtype: GpuDType): Kernel {
  // Kept dims map an output index to x's base offset; reduced dims enumerate the slice.
  const code = `struct U { nOut: u32, nRed: u32, keptRank: u32, redRank: u32, scale: f32, pad0: u32, pad1: u32, pad2: u32,
  keptShape: array<vec4<u32>, 2>, keptStride: array<vec4<u32>, 2>, redShape: array<vec4<u32>, 2>, redStride: array<vec4<u32>, 2> }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> xs: array<${dtype}>;
@group(0) @binding(2) var<storage, read_write> out: array<${dtype}>;
${combineWGSL(op, dtype)}
${flatIndexWGSL(STRIDED_WG)}
@compute @workgroup_size(${STRIDED_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let o = flatIndex(wid, nwg, lid);
  if (o >= u.nOut) { return; }
  var rem = o;
  var base = 0u;
  for (var d = i32(u.keptRank) - 1; d >= 0; d = d - 1) {
    let size = u.keptShape[u32(d) >> 2u][u32(d) & 3u];
    base = base + (rem % size) * u.keptStride[u32(d) >> 2u][u32(d) & 3u];
    rem = rem / size;
  }
  var acc: ${dtype} = ${init(op, dtype)};
  if (u.redRank == 1u) {
    // One reduced dim (the usual case once dims are collapsed, e.g. a bias gradient summing rows):
    // a plain strided walk, no division per element.
    let stride = u.redStride[0].x;
    var off = base;
    for (var r = 0u; r < u.nRed; r = r + 1u) {
      acc = combine(acc, xs[off]);
      off = off + stride;
    }
  } else {
    for (var r = 0u; r < u.nRed; r = r + 1u) {
      var rr = r;
      var off = base;
      for (var d = i32(u.redRank) - 1; d >= 0; d = d - 1) {
        let size = u.redShape[u32(d) >> 2u][u32(d) & 3u];
        off = off + (rr % size) * u.redStride[u32(d) >> 2u][u32(d) & 3u];
        rr = rr / size;
      }
      acc = combine(acc, xs[off]);
    }
  }
  out[o] = ${dtype === 'f32' ? 'acc * u.scale' : 'acc'};
}`;
  return { name: `reduce[${op},${dtype}]`, code, storage: ['read', 'read_write'] };
}

/** Kept and reduced dims (shape and x strides each), already collapsed, each of rank <= MAX_RANK. */
export function reduceGenericLaunch(op: ReduceOp, dtype: GpuDType, kept: { shape: number[]; strides: number[] }, red: { shape: number[]; strides: number[] }, scale = 1): Launch {
  if (kept.shape.length > MAX_RANK || red.shape.length > MAX_RANK) throw new RangeError(`reduce supports up to ${MAX_RANK} kept and reduced dims after merging`);
  const nOut = kept.shape.reduce((p, d) => p * d, 1);
  const nRed = red.shape.reduce((p, d) => p * d, 1);
  const words = new Uint32Array(8 + 4 * MAX_RANK);
  words.set([nOut, nRed, kept.shape.length, red.shape.length]);
  words[4] = new Uint32Array(new Float32Array([scale]).buffer)[0];
  words.set(kept.shape, 8);
  words.set(kept.strides, 8 + MAX_RANK);
  words.set(red.shape, 8 + 2 * MAX_RANK);
  words.set(red.strides, 8 + 3 * MAX_RANK);
  return { kernel: reduceGenericKernel(op, dtype), uniforms: words, workgroups: grid1d(nOut, STRIDED_WG) };
}

/**
 * Sums of squares of up to n f32 tensors in one dispatch, for gradient norms: workgroup (g, k)
 * sums the squares of elements g, g + G·256, ... of tensor k (a strided loop, then a tree in
 * workgroup memory) into out[(first + k)·G + g]. The caller sums the partials (one reduce over all
 * of them). Storage: [x_0 .. x_{n-1}: read, out: read_write]. Dispatch: [G, n, 1].
 * Uniforms: G, first, then the sizes.
 */
export function sumSquaresKernel(n: number): Kernel {
  return cachedKernel(`sumSquares|${n}`, () => buildSumSquares(n));
}

function buildSumSquares(n: number): Kernel {
  const bindings = Array.from({ length: n }, (_, k) => `@group(0) @binding(${k + 1}) var<storage, read> x${k}: array<f32>;`);
  const loops = Array.from({ length: n }, (_, k) => `${k === 0 ? '' : ' else '}if (k == ${k}u) {
    for (var i = wid.x * ${ROW_WG}u + lid; i < size(${k}u); i = i + u.groups * ${ROW_WG}u) { let v = x${k}[i]; acc = acc + v * v; }
  }`);
  const code = `struct U { groups: u32, first: u32, pad0: u32, pad1: u32, sizes: array<vec4<u32>, ${Math.ceil(n / 4)}> }
@group(0) @binding(0) var<uniform> u: U;
${bindings.join('\n')}
@group(0) @binding(${n + 1}) var<storage, read_write> out: array<f32>;
var<workgroup> part: array<f32, ${ROW_WG}>;
fn size(k: u32) -> u32 { return u.sizes[k / 4u][k % 4u]; }
@compute @workgroup_size(${ROW_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let k = wid.y;
  var acc = 0.0;
  ${loops.join('')}
  part[lid] = acc;
  workgroupBarrier();
  for (var s = ${ROW_WG / 2}u; s > 0u; s = s >> 1u) {
    if (lid < s) { part[lid] = part[lid] + part[lid + s]; }
    workgroupBarrier();
  }
  if (lid == 0u) { out[(u.first + k) * u.groups + wid.x] = part[0]; }
}`;
  return { name: `sumSquares[${n}]`, code, storage: [...Array.from({ length: n }, () => 'read' as const), 'read_write'] };
}

/** One sumSquares launch over tensors of the given sizes, writing partials from slot `first` on. */
export function sumSquaresLaunch(sizes: readonly number[], first: number, groups: number): Launch {
  const words = new Uint32Array(4 + 4 * Math.ceil(sizes.length / 4));
  words[0] = groups;
  words[1] = first;
  words.set(sizes, 4);
  return { kernel: sumSquaresKernel(sizes.length), uniforms: words, workgroups: [groups, sizes.length, 1] };
}
