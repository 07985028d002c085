// Elementwise WGSL kernels: unary math, broadcasting binary ops, where, cast and fill. The formulas
// mirror src/tensor/backends/cpu/scalar.ts; f32 only, with i32 where the engine uses integers.
// Dispatch geometry: gridStride over STRIDED_WG-wide workgroups (at most maxGroups; each invocation
// loops over elements i, i + groups·STRIDED_WG, ...).
//
// Accuracy (f32, bounds stated in the tests): add/sub/mul/compare/select agree bit for bit with the
// CPU; exp/log/tanh and friends to a few ulp; gelu's erf to about 5e-7 absolute (see HELPERS.erf).

import type { BinaryOp, UnaryOp } from '../tensor/backend.js';
import { cachedKernel, gridStride, gridStrideLoopWGSL, HARDWARE_MAX_GROUPS, type Kernel, type Launch, packUniforms } from './kernel.js';
import { needsExactDiv, offsetsWGSL, packStrided, STRIDED_WG, stridedStructWGSL } from './strided.js';

export type GpuDType = 'f32' | 'i32';

const MAIN = `@compute @workgroup_size(${STRIDED_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  ${gridStrideLoopWGSL(STRIDED_WG)} {`;

/**
 * The grid-stride entry taking four elements per step, their loads issued before any store: with
 * one load in flight per invocation a GPU's memory pipe stays mostly idle (on an H100 a
 * one-element loop streamed about 1.9 TB/s of its 3.35). `load(i, t)` declares element t's
 * inputs, `store(i, t)` writes its output; the tail takes one element at a time. Needs a uniform
 * `u.n` (the element count) and a gridStride(n, STRIDED_WG, ·) launch.
 */
export function unrolledMain(load: (i: string, t: number) => string, store: (i: string, t: number) => string): string {
  const at = (t: number) => (t === 0 ? 'i' : `i + ${t}u * stride`);
  const four = [0, 1, 2, 3];
  return `@compute @workgroup_size(${STRIDED_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let stride = nwg.x * ${STRIDED_WG}u;
  var i = wid.x * ${STRIDED_WG}u + lid;
  for (; i + 3u * stride < u.n; i = i + 4u * stride) {
    ${four.map((t) => load(at(t), t)).join('\n    ')}
    ${four.map((t) => store(at(t), t)).join('\n    ')}
  }
  for (; i < u.n; i = i + stride) {
    ${load('i', 0)}
    ${store('i', 0)}
  }
}`;
}

/** Shared f32 helpers, pasted only into kernels that call them (keeps printed WGSL short). */
const HELPERS: Record<string, string> = {
  // log1p for y >= 0 without a builtin: log(u)·y/(u−1) cancels the rounding of u = 1 + y (Goldberg).
  log1p: `fn log1p(y: f32) -> f32 {
  let u = 1.0 + y;
  if (u == 1.0) { return y; }
  return log(u) * y / (u - 1.0);
}`,
  softplus: `fn softplus(x: f32) -> f32 {
  if (x > 0.0) { return x + log1p(exp(-x)); }
  return log1p(exp(x));
}`,
  // Builtin tanh may overflow through exp for large |x| on some drivers; past 15 it is ±1 in f32.
  tanh: `fn tanhSafe(x: f32) -> f32 { return select(tanh(x), sign(x), abs(x) > 15.0); }`,
  // erf: Abramowitz–Stegun 7.1.26 is only 1.5e-7 absolute and loses relative accuracy near 0, so
  // |x| < 0.5 uses the Maclaurin series (to x^13) and larger |x| uses erfc = exp(−x²)·poly(t)
  // (A&S 7.1.26). Tested: |gpu − cpu| <= 5e-7 absolute over [−6, 6].
  erf: `fn erf(x: f32) -> f32 {
  let a = abs(x);
  if (a < 0.5) {
    let z = x * x;
    return x * (1.1283791671 + z * (-0.3761263890 + z * (0.1128379167 + z * (-0.0268661707 + z * (0.0052239775 + z * (-0.0008548327 + z * 0.0001205491))))));
  }
  let t = 1.0 / (1.0 + 0.3275911 * a);
  let p = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
  return sign(x) * (1.0 - p * exp(-a * a));
}`,
  // x^p as the CPU's x ** p: integer p keeps the sign of negative x; 0^0 = 1.
  pow: `fn powf(x: f32, p: f32) -> f32 {
  if (p == 0.0) { return 1.0; }
  if (p == 1.0) { return x; }
  if (p == 2.0) { return x * x; }
  let m = exp2(p * log2(abs(x)));
  if (x >= 0.0) { return m; }
  // A NaN literal is a WGSL compile error, so build it at run time.
  var nanBits = 0x7fc00000u;
  if (p != floor(p)) { return bitcast<f32>(nanBits); }
  return select(m, -m, fract(p * 0.5) != 0.0);
}`,
  sigmoid: `fn sigmoid(x: f32) -> f32 {
  if (x >= 0.0) { return 1.0 / (1.0 + exp(-x)); }
  let e = exp(x);
  return e / (1.0 + e);
}`,
};

const HELPER_DEPS: Record<string, string[]> = { softplus: ['log1p'] };

/** f32 expression of x (with params u.p0, u.p1) and the helpers it needs. */
function unaryExpr(op: UnaryOp): [string, string[]] {
  const S2PI = '0.7978845608028654';
  switch (op) {
    case 'neg': return ['-x', []];
    case 'exp': return ['exp(x)', []];
    case 'log': return ['log(x)', []];
    case 'sqrt': return ['sqrt(x)', []];
    case 'rsqrt': return ['1.0 / sqrt(x)', []];
    case 'abs': return ['abs(x)', []];
    case 'sign': return ['select(select(0.0, -1.0, x < 0.0), 1.0, x > 0.0)', []];
    case 'tanh': return ['tanhSafe(x)', ['tanh']];
    case 'sigmoid': return ['sigmoid(x)', ['sigmoid']];
    case 'relu': return ['select(0.0, x, x > 0.0)', []];
    case 'step': return ['select(0.0, 1.0, x > 0.0)', []];
    case 'gelu': return ['0.5 * x * (1.0 + erf(x * 0.7071067811865476))', ['erf']];
    case 'geluGrad': return ['0.5 * (1.0 + erf(x * 0.7071067811865476)) + x * exp(-0.5 * x * x) * 0.3989422804014327', ['erf']];
    case 'geluTanh': return [`0.5 * x * (1.0 + tanhSafe(${S2PI} * (x + 0.044715 * x * x * x)))`, ['tanh']];
    case 'geluTanhGrad': return [`geluTanhGrad(x)`, ['tanh', 'geluTanhGrad']];
    case 'softplus': return ['softplus(x)', ['softplus']];
    case 'logSigmoid': return ['-softplus(-x)', ['softplus']];
    case 'square': return ['x * x', []];
    case 'reciprocal': return ['1.0 / x', []];
    case 'powScalar': return ['powf(x, u.p0)', ['pow']];
    case 'affine': return ['u.p0 * x + u.p1', []];
    case 'clamp': return ['min(max(x, u.p0), u.p1)', []];
  }
}

HELPERS.geluTanhGrad = `fn geluTanhGrad(x: f32) -> f32 {
  let t = tanhSafe(0.7978845608028654 * (x + 0.044715 * x * x * x));
  return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * 0.7978845608028654 * (1.0 + 3.0 * 0.044715 * x * x);
}`;

/** The WGSL of the named f32 helpers (softplus, sigmoid, erf, tanhSafe, ...) and their dependencies, for kernels outside this file. */
export function wgslHelpers(names: readonly string[]): string {
  const out: string[] = [];
  const add = (n: string): void => {
    for (const d of HELPER_DEPS[n] ?? []) add(d);
    if (!out.includes(HELPERS[n])) out.push(HELPERS[n]);
  };
  names.forEach(add);
  return out.join('\n');
}

/**
 * WGSL `fn name(x: f32) -> f32` computing op exactly as the unary kernel does, after the helpers it
 * needs: for kernels that fuse an activation or its derivative into other work (dropout.ts).
 */
export function unaryFunctionWGSL(op: Exclude<UnaryOp, 'powScalar' | 'affine' | 'clamp'>, name: string): string {
  const [expr, deps] = unaryExpr(op);
  return `${wgslHelpers(deps)}\nfn ${name}(x: f32) -> f32 { return ${expr}; }`;
}

function uniformHeader(fields: string): string {
  return `struct U { ${fields} }\n@group(0) @binding(0) var<uniform> u: U;`;
}

/**
 * out[i] = op(x[i]). i32 inputs are computed in f32 and truncated (exact for |x| < 2^24). The vec4
 * form (n a multiple of 4) binds both as vec4 and applies op per lane: a quarter of the load
 * instructions, which is what kept a scalar elementwise kernel below a vec4 copy's bandwidth on a GPU.
 */
export function unaryKernel(op: UnaryOp, dtype: GpuDType, vec4 = false): Kernel {
  return cachedKernel(`unary|${op}|${dtype}|${vec4}`, () => buildUnary(op, dtype, vec4));
}

function buildUnary(op: UnaryOp, dtype: GpuDType, vec4: boolean): Kernel {
  const [expr, deps] = unaryExpr(op);
  const elem = vec4 ? `vec4<${dtype}>` : dtype;
  const code = `${uniformHeader('n: u32, p0: f32, p1: f32, pad: u32')}
@group(0) @binding(1) var<storage, read> xs: array<${elem}>;
@group(0) @binding(2) var<storage, read_write> out: array<${elem}>;
${wgslHelpers(deps)}
fn f(x: f32) -> ${dtype} { return ${dtype}(${expr}); }
${vec4 ? `fn f4(v: vec4<${dtype}>) -> vec4<${dtype}> { return vec4<${dtype}>(f(f32(v.x)), f(f32(v.y)), f(f32(v.z)), f(f32(v.w))); }` : ''}
${unrolledMain((i, t) => (vec4 ? `let x${t} = xs[${i}];` : `let x${t} = f32(xs[${i}]);`), (i, t) => `out[${i}] = ${vec4 ? 'f4' : 'f'}(x${t});`)}`;
  return { name: `unary[${op},${dtype}${vec4 ? ',vec4' : ''}]`, code, storage: ['read', 'read_write'] };
}

/** u.n counts vec4s in the vec4 form (used when n is a multiple of 4). */
export function unaryLaunch(op: UnaryOp, dtype: GpuDType, n: number, p0 = 0, p1 = 0, maxGroups = HARDWARE_MAX_GROUPS): Launch {
  const vec4 = n > 0 && n % 4 === 0;
  const units = vec4 ? n / 4 : n;
  return {
    kernel: unaryKernel(op, dtype, vec4),
    uniforms: packUniforms([['u32', units], ['f32', p0], ['f32', p1], ['u32', 0]]),
    workgroups: gridStride(units, STRIDED_WG, maxGroups),
  };
}

function binaryExpr(op: BinaryOp, dtype: GpuDType): [string, string[]] {
  const one = dtype === 'f32' ? '1.0' : '1';
  const zero = dtype === 'f32' ? '0.0' : '0';
  const cmp = (c: string): [string, string[]] => [`select(${zero}, ${one}, ${c})`, []];
  switch (op) {
    case 'add': return ['a + b', []];
    case 'sub': return ['a - b', []];
    case 'mul': return ['a * b', []];
    // i32: truncating division as the CPU's trunc(a / b); x / 0 gives 0 (the CPU's ToInt32(±Inf)).
    case 'div': return dtype === 'f32' ? ['a / b', []] : ['select(a / b, 0, b == 0)', []];
    case 'maximum': return dtype === 'f32' ? ['select(b, a, a >= b || a != a)', []] : ['max(a, b)', []];
    case 'minimum': return dtype === 'f32' ? ['select(b, a, a <= b || a != a)', []] : ['min(a, b)', []];
    // i32: exp2/log2 land just below exact integer powers, so round them (negative powers truncate to 0 or ±1).
    case 'pow': return dtype === 'f32' ? ['powf(a, b)', ['pow']] : ['i32(select(trunc(powf(f32(a), f32(b))), round(powf(f32(a), f32(b))), b >= 0))', ['pow']];
    case 'eq': return cmp('a == b');
    case 'ne': return cmp('a != b');
    case 'lt': return cmp('a < b');
    case 'le': return cmp('a <= b');
    case 'gt': return cmp('a > b');
    case 'ge': return cmp('a >= b');
    case 'geluBackward': return ['b * (0.5 * (1.0 + erf(a * 0.7071067811865476)) + a * exp(-0.5 * a * a) * 0.3989422804014327)', ['erf']];
    case 'geluTanhBackward': return ['b * geluTanhGrad(a)', ['tanh', 'geluTanhGrad']];
  }
}

/** out[i] = op(a[·], b[·]) with a and b read through broadcast strides over u.shape. */
export function binaryKernel(op: BinaryOp, dtype: GpuDType, rank: number, exact = false): Kernel {
  return cachedKernel(`binary|${op}|${dtype}|${rank}|${exact}`, () => buildBinary(op, dtype, rank, exact));
}

function buildBinary(op: BinaryOp, dtype: GpuDType, rank: number, exact: boolean): Kernel {
  const [expr, deps] = binaryExpr(op, dtype);
  const code = `${stridedStructWGSL(['n', 'rank', 'pad0', 'pad1'], ['sa', 'sb'])}
@group(0) @binding(1) var<storage, read> as_: array<${dtype}>;
@group(0) @binding(2) var<storage, read> bs: array<${dtype}>;
@group(0) @binding(3) var<storage, read_write> out: array<${dtype}>;
${wgslHelpers(deps)}
${offsetsWGSL(['sa', 'sb'], exact, rank)}
fn f(a: ${dtype}, b: ${dtype}) -> ${dtype} { return ${expr}; }
${unrolledMain((i, t) => `let o${t} = offsets(${i}); let a${t} = as_[o${t}.x]; let b${t} = bs[o${t}.y];`, (i, t) => `out[${i}] = f(a${t}, b${t});`)}`;
  return { name: `binary[${op},${dtype},r${rank}${exact ? ',exactDiv' : ''}]`, code, storage: ['read', 'read', 'read_write'] };
}

/** shape and strides should already be collapsed (collapseDims). */
export function binaryLaunch(op: BinaryOp, dtype: GpuDType, shape: readonly number[], aStrides: readonly number[], bStrides: readonly number[],
  maxGroups = HARDWARE_MAX_GROUPS): Launch {
  const n = shape.reduce((p, d) => p * d, 1);
  return { kernel: binaryKernel(op, dtype, shape.length, needsExactDiv(n)), uniforms: packStrided([n, shape.length, 0, 0], shape, [aStrides, bStrides]), workgroups: gridStride(n, STRIDED_WG, maxGroups) };
}

/** out = cond != 0 ? a : b. a and b move as raw 32-bit words, so one kernel serves f32 and i32 values. */
export function whereKernel(condDtype: GpuDType, rank: number, exact = false): Kernel {
  return cachedKernel(`where|${condDtype}|${rank}|${exact}`, () => buildWhere(condDtype, rank, exact));
}

function buildWhere(condDtype: GpuDType, rank: number, exact: boolean): Kernel {
  const zero = condDtype === 'f32' ? '0.0' : '0';
  const code = `${stridedStructWGSL(['n', 'rank', 'pad0', 'pad1'], ['sc', 'sa', 'sb'])}
@group(0) @binding(1) var<storage, read> cs: array<${condDtype}>;
@group(0) @binding(2) var<storage, read> as_: array<u32>;
@group(0) @binding(3) var<storage, read> bs: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<u32>;
${offsetsWGSL(['sc', 'sa', 'sb'], exact, rank)}
${MAIN}
    let o = offsets(i);
    out[i] = select(bs[o.z], as_[o.y], cs[o.x] != ${zero});
  }
}`;
  return { name: `where[cond ${condDtype},r${rank}${exact ? ',exactDiv' : ''}]`, code, storage: ['read', 'read', 'read', 'read_write'] };
}

export function whereLaunch(condDtype: GpuDType, shape: readonly number[], cStrides: readonly number[], aStrides: readonly number[], bStrides: readonly number[],
  maxGroups = HARDWARE_MAX_GROUPS): Launch {
  const n = shape.reduce((p, d) => p * d, 1);
  return { kernel: whereKernel(condDtype, shape.length, needsExactDiv(n)), uniforms: packStrided([n, shape.length, 0, 0], shape, [cStrides, aStrides, bStrides]), workgroups: gridStride(n, STRIDED_WG, maxGroups) };
}

/** f32 → i32 truncates toward zero (saturating, where the CPU wraps); i32 → f32 rounds to nearest. */
export function castLaunch(from: GpuDType, to: GpuDType, n: number, maxGroups = HARDWARE_MAX_GROUPS): Launch {
  return {
    kernel: cachedKernel(`cast|${from}|${to}`, () => castKernel(from, to)),
    uniforms: packUniforms([['u32', n]]),
    workgroups: gridStride(n, STRIDED_WG, maxGroups),
  };
}

function castKernel(from: GpuDType, to: GpuDType): Kernel {
  const code = `${uniformHeader('n: u32, pad0: u32, pad1: u32, pad2: u32')}
@group(0) @binding(1) var<storage, read> xs: array<${from}>;
@group(0) @binding(2) var<storage, read_write> out: array<${to}>;
${MAIN}
    out[i] = ${to}(xs[i]);
  }
}`;
  return { name: `cast[${from}->${to}]`, code, storage: ['read', 'read_write'] };
}

/** out[i] = bits: the value's 32-bit pattern (f32 or i32) is prepared on the host. */
export function fillLaunch(n: number, bits: number, maxGroups = HARDWARE_MAX_GROUPS): Launch {
  const code = `${uniformHeader('n: u32, bits: u32, pad1: u32, pad2: u32')}
@group(0) @binding(1) var<storage, read_write> out: array<u32>;
${MAIN}
    out[i] = u.bits;
  }
}`;
  return {
    kernel: { name: 'fill', code, storage: ['read_write'] },
    uniforms: packUniforms([['u32', n], ['u32', bits]]),
    workgroups: gridStride(n, STRIDED_WG, maxGroups),
  };
}
