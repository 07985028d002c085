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
 * Two forms of sumSquares with the same result bit for bit. Workgroup (g, k) of 256 lanes sums the
 * squares of elements g·256 + lane, + G·256, ... of tensor k, one running sum per lane, then:
 * - 'tree': the lanes meet in a tree in workgroup memory (lane l += lane l + s, s = 128, 64, ..., 1),
 *   one partial per workgroup. The form for GPUs.
 * - 'lanes': every lane writes its sum; a second dispatch (sumSquaresTreeLaunch) adds each
 *   workgroup's 256 sums in the same tree order, one invocation per workgroup, in registers. No
 *   workgroup memory and no barriers: on lavapipe every barrier is a switch between a workgroup's
 *   invocations, and over the critics' gradients (15 tensors, 130k elements) the tree dispatch took
 *   1.2-1.3 ms against 0.4 ms for the lanes one plus 0.2 ms for the tree step (best of 9, 2-core
 *   machine; over the policy's 15 largest, 1.7 against 1.1 + 0.2).
 */
export type SumSquaresForm = 'tree' | 'lanes';

/** Partials one workgroup of a sumSquares form writes. */
export function sumSquaresPartials(form: SumSquaresForm): number {
  return form === 'tree' ? 1 : ROW_WG;
}

/**
 * Sums of squares of up to n f32 tensors in one dispatch, for gradient norms (see SumSquaresForm):
 * workgroup (g, k)'s partials from out[((first + k)·G + g)·P] on (P = sumSquaresPartials(form)).
 * The caller sums the partials ('lanes': each workgroup's first, with sumSquaresTreeLaunch).
 * Storage: [x_0 .. x_{n-1}: read, out: read_write]. Dispatch: [G, n, 1]. Uniforms: G, first, then
 * the sizes.
 */
export function sumSquaresKernel(n: number, form: SumSquaresForm = 'tree'): Kernel {
  return cachedKernel(`sumSquares|${n}|${form}`, () => buildSumSquares(n, form));
}

function buildSumSquares(n: number, form: SumSquaresForm): Kernel {
  const wg = ROW_WG;
  const bindings = Array.from({ length: n }, (_, k) => `@group(0) @binding(${k + 1}) var<storage, read> x${k}: array<f32>;`);
  const loops = Array.from({ length: n }, (_, k) => `${k === 0 ? '' : ' else '}if (k == ${k}u) {
    for (var i = wid.x * ${wg}u + lid; i < size(${k}u); i = i + u.groups * ${wg}u) { let v = x${k}[i]; acc = acc + v * v; }
  }`);
  const store = form === 'lanes'
    ? `out[((u.first + k) * u.groups + wid.x) * ${wg}u + lid] = acc;`
    : `part[lid] = acc;
  workgroupBarrier();
  for (var s = ${wg / 2}u; s > 0u; s = s >> 1u) {
    if (lid < s) { part[lid] = part[lid] + part[lid + s]; }
    workgroupBarrier();
  }
  if (lid == 0u) { out[(u.first + k) * u.groups + wid.x] = part[0]; }`;
  const code = `struct U { groups: u32, first: u32, pad0: u32, pad1: u32, sizes: array<vec4<u32>, ${Math.ceil(n / 4)}> }
@group(0) @binding(0) var<uniform> u: U;
${bindings.join('\n')}
@group(0) @binding(${n + 1}) var<storage, read_write> out: array<f32>;
${form === 'tree' ? `var<workgroup> part: array<f32, ${wg}>;
` : ''}fn size(k: u32) -> u32 { return u.sizes[k / 4u][k % 4u]; }
@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let k = wid.y;
  var acc = 0.0;
  ${loops.join('')}
  ${store}
}`;
  return { name: `sumSquares[${n}${form === 'lanes' ? ',lanes' : ''}]`, code, storage: [...Array.from({ length: n }, () => 'read' as const), 'read_write'] };
}

/** One sumSquares launch over tensors of the given sizes, writing partials from tensor slot `first` on. */
export function sumSquaresLaunch(sizes: readonly number[], first: number, groups: number, form: SumSquaresForm = 'tree'): Launch {
  const words = new Uint32Array(4 + 4 * Math.ceil(sizes.length / 4));
  words[0] = groups;
  words[1] = first;
  words.set(sizes, 4);
  return { kernel: sumSquaresKernel(sizes.length, form), uniforms: words, workgroups: [groups, sizes.length, 1] };
}

const SUMSQ_TREE_WG = 64;

/**
 * The 'lanes' form's second step: out[t] = the tree sum ('tree' form's order) of lanes[t·256 ..
 * t·256 + 255], for t < count. Storage: [lanes: read, out: read_write]. Bit for bit the 'tree'
 * form's partials.
 */
export function sumSquaresTreeLaunch(count: number): Launch {
  return {
    kernel: cachedKernel('sumSquaresTree', () => ({
      name: 'sumSquaresTree',
      code: `struct U { count: u32, pad0: u32, pad1: u32, pad2: u32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> lanes: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
${flatIndexWGSL(SUMSQ_TREE_WG)}
@compute @workgroup_size(${SUMSQ_TREE_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let t = flatIndex(wid, nwg, lid);
  if (t >= u.count) { return; }
  var part: array<f32, ${ROW_WG}>;
  for (var l = 0u; l < ${ROW_WG}u; l = l + 1u) { part[l] = lanes[t * ${ROW_WG}u + l]; }
  for (var s = ${ROW_WG / 2}u; s > 0u; s = s >> 1u) {
    for (var l = 0u; l < s; l = l + 1u) { part[l] = part[l] + part[l + s]; }
  }
  out[t] = part[0];
}`,
      storage: ['read', 'read_write'],
    })),
    uniforms: packUniforms([['u32', count], ['u32', 0], ['u32', 0], ['u32', 0]]),
    workgroups: grid1d(count, SUMSQ_TREE_WG),
  };
}
