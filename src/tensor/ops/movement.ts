// Movement ops: reshape is a view (shared storage); permute, slice, concat and broadcastTo copy
// through strides into a new contiguous tensor.

import { record } from '../autograd.js';
import { broadcastShapes, broadcastStrides, contiguousStrides, fmtShape, normAxis, type Shape, ShapeError, shapesEqual, sizeOf } from '../shape.js';
import { Tensor } from '../tensor.js';
import { backendOf, wrap } from './core.js';
import { sumToShape } from './elementwise.js';

/** A view with a new shape (one dim may be −1). Shares storage; no copy. */
export function reshape(x: Tensor, shape: Shape): Tensor {
  const s = [...shape];
  const neg = s.indexOf(-1);
  if (neg >= 0) {
    const rest = sizeOf(s.filter((_, i) => i !== neg));
    if (rest === 0 || x.size % rest !== 0) throw new ShapeError('reshape', `cannot infer -1 reshaping ${fmtShape(x.shape)} to ${fmtShape(shape)}`);
    s[neg] = x.size / rest;
  }
  if (s.some((d) => !Number.isInteger(d) || d < 0) || sizeOf(s) !== x.size) {
    throw new ShapeError('reshape', `cannot reshape ${fmtShape(x.shape)} (${x.size} elements) to ${fmtShape(shape)}`);
  }
  if (shapesEqual(s, x.shape)) return x;
  const out = new Tensor(x.storage, s, x);
  return record('reshape', out, [x], (g) => [reshape(g, x.shape)]);
}

export function flatten(x: Tensor): Tensor {
  return reshape(x, [x.size]);
}

/** Inserts a size-1 dim at axis. */
export function unsqueeze(x: Tensor, axis: number): Tensor {
  const a = normAxis('unsqueeze', axis, x.rank + 1);
  const s = [...x.shape];
  s.splice(a, 0, 1);
  return reshape(x, s);
}

/** Removes size-1 dims (all, or the given one). */
export function squeeze(x: Tensor, axis?: number): Tensor {
  if (axis === undefined) return reshape(x, x.shape.filter((d) => d !== 1));
  const a = normAxis('squeeze', axis, x.rank);
  if (x.shape[a] !== 1) throw new ShapeError('squeeze', `dim ${axis} of ${fmtShape(x.shape)} is not 1`);
  return reshape(x, x.shape.filter((_, i) => i !== a));
}

/** Copies x into a new contiguous tensor of outShape, reading x through the given strides. */
function stridedCopy(x: Tensor, outShape: readonly number[], strides: readonly number[], offset: number): Tensor {
  const b = x.backend;
  const out = b.alloc(x.dtype, sizeOf(outShape));
  b.copy(x.storage, out, outShape, strides, offset, contiguousStrides(outShape), 0);
  return wrap(out, outShape);
}

/** Reorders dims: out.shape[i] = x.shape[axes[i]]. */
export function permute(x: Tensor, axes: readonly number[]): Tensor {
  if (axes.length !== x.rank) throw new ShapeError('permute', `${axes.length} axes given for ${fmtShape(x.shape)}`);
  const ax = axes.map((a) => normAxis('permute', a, x.rank));
  if (new Set(ax).size !== ax.length) throw new ShapeError('permute', `axes [${axes.join(', ')}] are not a permutation`);
  if (ax.every((a, i) => a === i)) return x;
  const src = x.strides;
  const out = stridedCopy(x, ax.map((a) => x.shape[a]), ax.map((a) => src[a]), 0);
  const inverse = new Array<number>(ax.length);
  ax.forEach((a, i) => (inverse[a] = i));
  return record('permute', out, [x], (g) => [permute(g, inverse)]);
}

/** Swaps two dims (default: the last two). */
export function transpose(x: Tensor, a = -2, b = -1): Tensor {
  const axes = [...Array(x.rank).keys()];
  const i = normAxis('transpose', a, x.rank);
  const j = normAxis('transpose', b, x.rank);
  [axes[i], axes[j]] = [axes[j], axes[i]];
  return permute(x, axes);
}

/** Elements start..end−1 along axis (negative indices count from the end, as in Python). */
export function slice(x: Tensor, axis: number, start: number, end = Infinity): Tensor {
  const a = normAxis('slice', axis, x.rank);
  const n = x.shape[a];
  const lo = Math.min(Math.max(start < 0 ? start + n : start, 0), n);
  const hi = Math.min(Math.max(end < 0 ? end + n : end, lo), n);
  if (lo === 0 && hi === n) return x;
  const shape = [...x.shape];
  shape[a] = hi - lo;
  const strides = x.strides;
  const out = stridedCopy(x, shape, strides, lo * strides[a]);
  return record('slice', out, [x], (g) => [padAxis(g, a, lo, n - hi)]);
}

/** Zero-pads along one axis (the transpose of slice). */
function padAxis(g: Tensor, axis: number, before: number, after: number): Tensor {
  const shape = [...g.shape];
  shape[axis] += before + after;
  const b = g.backend;
  const out = b.alloc(g.dtype, sizeOf(shape));
  b.fill(out, 0);
  const dst = contiguousStrides(shape);
  b.copy(g.storage, out, g.shape, g.strides, 0, dst, before * dst[axis]);
  return wrap(out, shape);
}

/** Joins tensors along an existing axis. */
export function concat(xs: readonly Tensor[], axis = 0): Tensor {
  if (xs.length === 0) throw new ShapeError('concat', 'no tensors given');
  const b = backendOf('concat', xs);
  const a = normAxis('concat', axis, xs[0].rank);
  for (const x of xs) {
    if (x.rank !== xs[0].rank || x.shape.some((d, i) => i !== a && d !== xs[0].shape[i])) {
      throw new ShapeError('concat', `shapes ${xs.map((t) => fmtShape(t.shape)).join(', ')} differ outside axis ${axis}`);
    }
  }
  const shape = [...xs[0].shape];
  shape[a] = xs.reduce((s, x) => s + x.shape[a], 0);
  const out = b.alloc(xs[0].dtype, sizeOf(shape));
  const dst = contiguousStrides(shape);
  if (b.concatInto && xs.length > 1) {
    // Each source is an [outer, its width] block of the [outer, row] output: few dispatches for many sources.
    const outer = shape.slice(0, a).reduce((p, d) => p * d, 1);
    b.concatInto(xs.map((x) => x.storage), out, outer, xs.map((x) => x.shape[a] * dst[a]));
  } else {
    let at = 0;
    for (const x of xs) {
      b.copy(x.storage, out, x.shape, x.strides, 0, dst, at * dst[a]);
      at += x.shape[a];
    }
  }
  const res = wrap(out, shape);
  return record('concat', res, xs, (g) => {
    let from = 0;
    return xs.map((x) => {
      const part = slice(g, a, from, from + x.shape[a]);
      from += x.shape[a];
      return part;
    });
  });
}

/**
 * concat along `axis` where an input may be 1 in every dim before the axis while the others are
 * not: that input is one block repeated for each leading index, as broadcastTo would repeat it,
 * but read in place (no broadcast copy; one pass where the backend writes several sources at once).
 * The dims after the axis must match. A repeated input's gradient is summed over its repetitions.
 */
export function concatBroadcast(xs: readonly Tensor[], axis = 0): Tensor {
  if (xs.length === 0) throw new ShapeError('concatBroadcast', 'no tensors given');
  const b = backendOf('concatBroadcast', xs);
  const a = normAxis('concatBroadcast', axis, xs[0].rank);
  const lead = xs.find((x) => x.shape.slice(0, a).some((d) => d !== 1))?.shape.slice(0, a) ?? xs[0].shape.slice(0, a);
  const shared = xs.map((x) => a > 0 && x.shape.slice(0, a).every((d) => d === 1) && lead.some((d) => d !== 1));
  for (const x of xs) {
    const leadOk = shapesEqual(x.shape.slice(0, a), lead) || x.shape.slice(0, a).every((d) => d === 1);
    if (x.rank !== xs[0].rank || !leadOk || x.shape.some((d, i) => i > a && d !== xs[0].shape[i])) {
      throw new ShapeError('concatBroadcast', `shapes ${xs.map((t) => fmtShape(t.shape)).join(', ')}: dims after axis ${axis} must match and dims before it match or be all 1`);
    }
  }
  if (!b.concatInto || !shared.some(Boolean)) return concat(xs.map((x, k) => (shared[k] ? broadcastTo(x, [...lead, ...x.shape.slice(a)]) : x)), a);
  const shape = [...lead, xs.reduce((t, x) => t + x.shape[a], 0), ...xs[0].shape.slice(a + 1)];
  const out = b.alloc(xs[0].dtype, sizeOf(shape));
  const inner = sizeOf(shape.slice(a + 1));
  b.concatInto(xs.map((x) => x.storage), out, sizeOf(lead), xs.map((x) => x.shape[a] * inner), shared);
  const res = wrap(out, shape);
  return record('concatBroadcast', res, xs, (g) => {
    let from = 0;
    return xs.map((x, k) => {
      const part = slice(g, a, from, from + x.shape[a]);
      from += x.shape[a];
      return shared[k] ? sumToShape(part, x.shape) : part;
    });
  });
}

/** Joins tensors of equal shape along a new axis. */
export function stack(xs: readonly Tensor[], axis = 0): Tensor {
  if (xs.length === 0) throw new ShapeError('stack', 'no tensors given');
  const a = normAxis('stack', axis, xs[0].rank + 1);
  for (const x of xs) if (!shapesEqual(x.shape, xs[0].shape)) throw new ShapeError('stack', `shapes differ: ${xs.map((t) => fmtShape(t.shape)).join(', ')}`);
  return concat(xs.map((x) => unsqueeze(x, a)), a);
}

/** Expands size-1 (and missing leading) dims to shape, as a copy. */
export function broadcastTo(x: Tensor, shape: Shape): Tensor {
  const target = broadcastShapes('broadcastTo', x.shape, shape);
  if (!shapesEqual(target, shape)) throw new ShapeError('broadcastTo', `cannot broadcast ${fmtShape(x.shape)} to ${fmtShape(shape)}`);
  if (shapesEqual(x.shape, shape)) return x;
  const out = stridedCopy(x, shape, broadcastStrides(x.shape, shape), 0);
  return record('broadcastTo', out, [x], (g) => [sumToShape(g, x.shape)]);
}

/** A contiguous copy with its own storage and no graph. */
export function clone(x: Tensor): Tensor {
  const out = stridedCopy(x, x.shape, x.strides, 0);
  return record('clone', out, [x], (g) => [g]);
}
