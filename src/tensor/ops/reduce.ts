// Reductions over any set of axes, with keepdim. sum, mean (a scaled sum), max and min are kernels;
// logsumexp and var are compositions.

import type { ReduceOp } from '../backend.js';
import { noGrad, record } from '../autograd.js';
import { broadcastStrides, normAxes } from '../shape.js';
import type { Tensor } from '../tensor.js';
import { isFloat } from '../dtype.js';
import { backendOf, wrap } from './core.js';
import { add, div, eq, exp, log, mul, sub, square, where } from './elementwise.js';
import { broadcastTo, reshape } from './movement.js';

export type Axes = number | readonly number[] | undefined;

function reduceRaw(op: ReduceOp, x: Tensor, axes: number[], keepdim: boolean, scale?: number): { out: Tensor; keptShape: number[] } {
  const keptShape = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
  const finalShape = keepdim ? keptShape : x.shape.filter((_, i) => !axes.includes(i));
  return { out: wrap(x.backend.reduce(op, x.storage, x.shape, axes, scale), finalShape), keptShape };
}

/** Sum over axes (all when omitted). */
export function sum(x: Tensor, axes?: Axes, keepdim = false): Tensor {
  const ax = normAxes('sum', axes, x.rank);
  const { out, keptShape } = reduceRaw('sum', x, ax, keepdim);
  return record('sum', out, [x], (g) => [broadcastTo(reshape(g, keptShape), x.shape)]);
}

/** Mean over axes (all when omitted): one kernel, the sum times 1/n (equal to sum then multiply). */
export function mean(x: Tensor, axes?: Axes, keepdim = false): Tensor {
  const ax = normAxes('mean', axes, x.rank);
  const n = ax.reduce((p, a) => p * x.shape[a], 1);
  if (!isFloat(x.dtype)) return mul(sum(x, ax, keepdim), 1 / n);
  const { out, keptShape } = reduceRaw('sum', x, ax, keepdim, 1 / n);
  return record('mean', out, [x], (g) => {
    if (g.size === x.size) return [reshape(mul(g, 1 / n), x.shape)];
    // One pass: g read through broadcast strides times a one-element 1/n (not a scale, then a copy).
    const b = x.backend;
    const s = b.upload(x.dtype, [1 / n]);
    const d = b.binary('mul', g.storage, s, x.shape, broadcastStrides(keptShape, x.shape), x.shape.map(() => 0));
    b.free(s);
    return [wrap(d, x.shape)];
  });
}

function extremum(op: 'max' | 'min', x: Tensor, axes: Axes, keepdim: boolean): Tensor {
  const ax = normAxes(op, axes, x.rank);
  const { out, keptShape } = reduceRaw(op, x, ax, keepdim);
  return record(op, out, [x], (g) => {
    // The gradient is shared equally among tied extrema.
    const y = reshape(out, keptShape);
    const mask = eq(x, y);
    const count = sum(mask, ax, true);
    return [mul(div(reshape(g, keptShape), count), mask)];
  }, [out]);
}

export function max(x: Tensor, axes?: Axes, keepdim = false): Tensor {
  return extremum('max', x, axes, keepdim);
}

export function min(x: Tensor, axes?: Axes, keepdim = false): Tensor {
  return extremum('min', x, axes, keepdim);
}

/** log Σ exp(x), stable at any magnitude (shifts by the max, which needs no gradient). */
export function logsumexp(x: Tensor, axes?: Axes, keepdim = false): Tensor {
  const ax = normAxes('logsumexp', axes, x.rank);
  const m = noGrad(() => {
    const raw = reduceRaw('max', x, ax, true).out;
    // An all −∞ slice would give −∞ − (−∞) = NaN: shift by 0 there instead.
    return where(eq(raw, -Infinity), 0, raw);
  });
  const shiftedSum = sum(exp(sub(x, m)), ax, true);
  const out = add(log(shiftedSum), m);
  return keepdim ? out : reshape(out, x.shape.filter((_, i) => !ax.includes(i)));
}

export interface VarOptions {
  /** Subtracted from the count in the denominator: 1 (default, as PyTorch) is unbiased, 0 is the population variance. */
  correction?: number;
  keepdim?: boolean;
}

export function variance(x: Tensor, axes?: Axes, opts: VarOptions = {}): Tensor {
  const ax = normAxes('var', axes, x.rank);
  const n = ax.reduce((p, a) => p * x.shape[a], 1);
  const correction = opts.correction ?? 1;
  const mu = mean(x, ax, true);
  return mul(sum(square(sub(x, mu)), ax, opts.keepdim ?? false), 1 / Math.max(n - correction, 0));
}

/**
 * Σ x² over every element of every tensor, as a scalar: a global L2 norm's square in one or a few
 * kernels however many tensors there are (the backend's sumSquares). Records no gradient: it is
 * meant for gradient norms, computed under noGrad.
 */
export function sumOfSquares(xs: readonly Tensor[]): Tensor {
  if (xs.length === 0) throw new Error('sumOfSquares: no tensors');
  const backend = backendOf('sumOfSquares', xs);
  return wrap(backend.sumSquares(xs.map((x) => x.storage)), []);
}
