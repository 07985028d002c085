// Elementwise ops with NumPy broadcasting. Each op's forward (one backend kernel) sits beside its
// backward (a VJP written with these same ops).

import type { BinaryOp, UnaryOp } from '../backend.js';
import { record } from '../autograd.js';
import { broadcastShapes, broadcastStrides, shapesEqual } from '../shape.js';
import { Tensor } from '../tensor.js';
import { backendOf, requireFloat, wrap } from './core.js';
import { sum } from './reduce.js';
import { reshape } from './movement.js';

export type TensorLike = Tensor | number;

/** Sums a gradient over the dims that broadcasting expanded, giving it the input's shape. */
export function sumToShape(g: Tensor, shape: readonly number[]): Tensor {
  if (shapesEqual(g.shape, shape)) return g;
  const lead = g.rank - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < g.rank; i++) if (i < lead || (shape[i - lead] === 1 && g.shape[i] !== 1)) axes.push(i);
  return reshape(sum(g, axes, true), shape);
}

function asTensor(x: TensorLike, like: Tensor): Tensor {
  if (x instanceof Tensor) return x;
  return wrap(like.backend.upload(like.dtype, [x]), []);
}

function unary(op: UnaryOp, x: Tensor, backward: ((g: Tensor, y: Tensor) => Tensor) | null, params?: [number, number?]): Tensor {
  const y = wrap(x.backend.unary(op, x.storage, params), x.shape);
  if (!backward) return y;
  return record(op, y, [x], (g) => [backward(g, y)], [y]);
}

function binaryRaw(op: BinaryOp, a: Tensor, b: Tensor): Tensor {
  const backend = backendOf(op, [a, b]);
  const out = broadcastShapes(op, a.shape, b.shape);
  return wrap(backend.binary(op, a.storage, b.storage, out, broadcastStrides(a.shape, out), broadcastStrides(b.shape, out)), out);
}

// ---- unary ----

export const neg = (x: Tensor): Tensor => unary('neg', x, (g) => neg(g));
export const exp = (x: Tensor): Tensor => unary('exp', x, (g, y) => mul(g, y));
export const log = (x: Tensor): Tensor => unary('log', x, (g) => div(g, x));
export const sqrt = (x: Tensor): Tensor => unary('sqrt', x, (g, y) => div(mul(g, 0.5), y));
export const rsqrt = (x: Tensor): Tensor => unary('rsqrt', x, (g, y) => mul(mul(g, pow(y, 3)), -0.5));
export const abs = (x: Tensor): Tensor => unary('abs', x, (g) => mul(g, sign(x)));
export const sign = (x: Tensor): Tensor => unary('sign', x, null);
export const tanh = (x: Tensor): Tensor => unary('tanh', x, (g, y) => mul(g, sub(1, square(y))));
export const sigmoid = (x: Tensor): Tensor => unary('sigmoid', x, (g, y) => mul(g, mul(y, sub(1, y))));
export const relu = (x: Tensor): Tensor => unary('relu', x, (g) => mul(g, unary('step', x, null)));
export const softplus = (x: Tensor): Tensor => unary('softplus', x, (g) => mul(g, sigmoid(x)));
/** log σ(x), stable for large |x|. */
export const logSigmoid = (x: Tensor): Tensor => unary('logSigmoid', x, (g) => mul(g, sigmoid(neg(x))));
export const square = (x: Tensor): Tensor => unary('square', x, (g) => mul(g, mul(x, 2)));
export const reciprocal = (x: Tensor): Tensor => unary('reciprocal', x, (g, y) => neg(mul(g, square(y))));

/** GELU, exact erf form by default, or the tanh approximation (GPT-2's). */
export function gelu(x: Tensor, approximate: 'none' | 'tanh' = 'none'): Tensor {
  requireFloat('gelu', x);
  return unary(approximate === 'tanh' ? 'geluTanh' : 'gelu', x, (g) => geluBackwardOf(x, g, approximate));
}

/**
 * gelu's backward, g · gelu'(x), in one pass (rather than gelu'(x) and then a product), recording
 * nothing: also the backward of ops that apply a GELU in a fused kernel (matmulT's epilogue).
 */
export function geluBackwardOf(x: Tensor, g: Tensor, approximate: 'none' | 'tanh'): Tensor {
  return binaryRaw(approximate === 'tanh' ? 'geluTanhBackward' : 'geluBackward', x, g);
}

/** x ** p for a scalar exponent. */
export function pow(x: Tensor, p: number): Tensor {
  return unary('powScalar', x, (g) => mul(g, mul(pow(x, p - 1), p)), [p]);
}

/** min(max(x, lo), hi); the gradient passes where lo <= x <= hi. */
export function clamp(x: Tensor, lo = -Infinity, hi = Infinity): Tensor {
  return unary('clamp', x, (g) => mul(g, mul(ge(x, lo), le(x, hi))), [lo, hi]);
}

/** a·x + b in one kernel. */
export function affine(x: Tensor, a: number, b: number): Tensor {
  return unary('affine', x, (g) => mul(g, a), [a, b]);
}

// ---- binary ----

export function add(a: TensorLike, b: TensorLike): Tensor {
  if (typeof b === 'number') return affine(a as Tensor, 1, b);
  if (typeof a === 'number') return affine(b, 1, a);
  const y = binaryRaw('add', a, b);
  // Only the inputs that need a gradient get one: a frozen bias costs no reduction.
  return record('add', y, [a, b], (g, needs) => [needs[0] ? sumToShape(g, a.shape) : null, needs[1] ? sumToShape(g, b.shape) : null]);
}

export function sub(a: TensorLike, b: TensorLike): Tensor {
  if (typeof b === 'number') return affine(a as Tensor, 1, -b);
  if (typeof a === 'number') return affine(b, -1, a);
  const y = binaryRaw('sub', a, b);
  return record('sub', y, [a, b], (g, needs) => [needs[0] ? sumToShape(g, a.shape) : null, needs[1] ? sumToShape(neg(g), b.shape) : null]);
}

export function mul(a: TensorLike, b: TensorLike): Tensor {
  if (typeof b === 'number') return affine(a as Tensor, b, 0);
  if (typeof a === 'number') return affine(b, a, 0);
  const y = binaryRaw('mul', a, b);
  return record('mul', y, [a, b], (g, needs) => [
    needs[0] ? sumToShape(mul(g, b), a.shape) : null,
    needs[1] ? sumToShape(mul(g, a), b.shape) : null,
  ]);
}

export function div(a: TensorLike, b: TensorLike): Tensor {
  if (typeof b === 'number') return affine(a as Tensor, 1 / b, 0);
  const at = asTensor(a, b);
  const y = binaryRaw('div', at, b);
  return record('div', y, [at, b], (g, needs) => [
    needs[0] ? sumToShape(div(g, b), at.shape) : null,
    needs[1] ? sumToShape(neg(div(mul(g, y), b)), b.shape) : null,
  ], [y]);
}

/** Elementwise maximum; at ties the gradient goes to a. */
export function maximum(a: TensorLike, b: TensorLike): Tensor {
  const [x, y] = a instanceof Tensor ? [a, asTensor(b, a)] : [asTensor(a, b as Tensor), b as Tensor];
  const out = binaryRaw('maximum', x, y);
  return record('maximum', out, [x, y], (g, needs) => {
    const m = ge(x, y);
    return [needs[0] ? sumToShape(mul(g, m), x.shape) : null, needs[1] ? sumToShape(mul(g, sub(1, m)), y.shape) : null];
  });
}

/** Elementwise minimum; at ties the gradient goes to a. */
export function minimum(a: TensorLike, b: TensorLike): Tensor {
  const [x, y] = a instanceof Tensor ? [a, asTensor(b, a)] : [asTensor(a, b as Tensor), b as Tensor];
  const out = binaryRaw('minimum', x, y);
  return record('minimum', out, [x, y], (g, needs) => {
    const m = le(x, y);
    return [needs[0] ? sumToShape(mul(g, m), x.shape) : null, needs[1] ? sumToShape(mul(g, sub(1, m)), y.shape) : null];
  });
}

// ---- comparisons: masks of 0/1 in the input dtype, no gradient ----

function compare(op: BinaryOp, a: TensorLike, b: TensorLike): Tensor {
  const [x, y] = a instanceof Tensor ? [a, asTensor(b, a)] : [asTensor(a, b as Tensor), b as Tensor];
  return binaryRaw(op, x, y);
}

export const eq = (a: TensorLike, b: TensorLike): Tensor => compare('eq', a, b);
export const ne = (a: TensorLike, b: TensorLike): Tensor => compare('ne', a, b);
export const lt = (a: TensorLike, b: TensorLike): Tensor => compare('lt', a, b);
export const le = (a: TensorLike, b: TensorLike): Tensor => compare('le', a, b);
export const gt = (a: TensorLike, b: TensorLike): Tensor => compare('gt', a, b);
export const ge = (a: TensorLike, b: TensorLike): Tensor => compare('ge', a, b);

/** cond != 0 ? a : b, broadcasting all three. cond may be a mask of any dtype. */
export function where(cond: Tensor, a: TensorLike, b: TensorLike): Tensor {
  const like = a instanceof Tensor ? a : b instanceof Tensor ? b : null;
  if (!like) throw new Error('where: at least one of a, b must be a tensor');
  const x = asTensor(a, like);
  const y = asTensor(b, like);
  const backend = backendOf('where', [x, y]);
  backendOf('where', [cond, x], false);
  const out = broadcastShapes('where', broadcastShapes('where', cond.shape, x.shape), y.shape);
  const res = wrap(backend.where(cond.storage, x.storage, y.storage, out, broadcastStrides(cond.shape, out),
    broadcastStrides(x.shape, out), broadcastStrides(y.shape, out)), out);
  return record('where', res, [x, y], (g, needs) => {
    const zero = wrap(backend.upload(g.dtype, [0]), []);
    return [
      needs[0] ? sumToShape(where(cond, g, zero), x.shape) : null,
      needs[1] ? sumToShape(where(cond, zero, g), y.shape) : null,
    ];
  });
}
