// fast-check generators shared by the tensor tests: shapes, broadcast-compatible shape pairs, axes
// and values that stay a margin away from an op's kinks (so finite differences are meaningful).

import fc from 'fast-check';

// Every property in these suites stops after 20 s, counting as a failure: shrinking a failing case
// through chained arbitraries can otherwise run for many minutes before reporting it.
fc.configureGlobal({ ...fc.readConfigureGlobal(), interruptAfterTimeLimit: 20_000, markInterruptAsFailure: true });

export type ShapeArr = number[];

export interface ShapeOptions {
  minRank?: number;
  maxRank?: number;
  /** Smallest dim (0 allows empty tensors). */
  minDim?: number;
  maxDim?: number;
  /** Largest element count: the biggest dims shrink until the shape fits (keeps gradchecks fast). */
  maxSize?: number;
}

export function sizeOfShape(shape: readonly number[]): number {
  return shape.reduce((p, d) => p * d, 1);
}

/** Shrinks the largest dim until the shape has at most maxSize elements (never below 1). */
function capSize(shape: number[], maxSize: number): number[] {
  const s = [...shape];
  while (sizeOfShape(s) > maxSize) {
    let big = 0;
    for (let i = 1; i < s.length; i++) if (s[i] > s[big]) big = i;
    if (s[big] <= 1) break;
    s[big]--;
  }
  return s;
}

/** Shapes of rank 0-4 with dims 1-5 (size-1 dims included) by default. */
export function shapeArb(opts: ShapeOptions = {}): fc.Arbitrary<ShapeArr> {
  const { minRank = 0, maxRank = 4, minDim = 1, maxDim = 5, maxSize = 64 } = opts;
  return fc.array(fc.integer({ min: minDim, max: maxDim }), { minLength: minRank, maxLength: maxRank }).map((s) => capSize(s, maxSize));
}

/** The broadcast of two compatible shapes (an independent statement of NumPy's rule). */
export function broadcastOf(a: readonly number[], b: readonly number[]): ShapeArr {
  const n = Math.max(a.length, b.length);
  const at = (s: readonly number[], i: number) => s[i - (n - s.length)] ?? 1;
  return Array.from({ length: n }, (_, i) => (at(a, i) === 1 ? at(b, i) : at(a, i)));
}

/**
 * Two shapes that broadcast to a common one: each drops some leading dims of the output and turns
 * some of the rest into 1. Returns [a, b, their broadcast shape].
 */
export function broadcastPairArb(opts: ShapeOptions = {}): fc.Arbitrary<[ShapeArr, ShapeArr, ShapeArr]> {
  return shapeArb(opts).chain((out) => {
    const side = fc.tuple(fc.integer({ min: 0, max: out.length }), fc.array(fc.boolean(), { minLength: out.length, maxLength: out.length }));
    return fc.tuple(side, side).map(([[dropA, onesA], [dropB, onesB]]) => {
      const make = (drop: number, ones: boolean[]) => out.slice(drop).map((d, i) => (ones[i + drop] ? 1 : d));
      const a = make(dropA, onesA);
      const b = make(dropB, onesB);
      return [a, b, broadcastOf(a, b)] as [ShapeArr, ShapeArr, ShapeArr];
    });
  });
}

export interface ValueOptions {
  min?: number;
  max?: number;
  /** Points where the op has a kink or a discontinuity; values stay `margin` away from them. */
  avoid?: readonly number[];
  margin?: number;
}

/** A finite double in [min, max] (default [-3, 3]) at least margin away from each avoided point. */
export function valueArb(opts: ValueOptions = {}): fc.Arbitrary<number> {
  const { min = -3, max = 3, avoid = [], margin = 1e-3 } = opts;
  return fc
    .double({ min, max, noNaN: true, noDefaultInfinity: true })
    .map((v) => (Object.is(v, -0) ? 0 : v))
    .filter((v) => avoid.every((k) => Math.abs(v - k) >= margin));
}

/** n values (see valueArb). */
export function valuesArb(n: number, opts: ValueOptions = {}): fc.Arbitrary<number[]> {
  return fc.array(valueArb(opts), { minLength: n, maxLength: n });
}

/** A shape with values for it. */
export function tensorArb(shape: ShapeOptions = {}, values: ValueOptions = {}): fc.Arbitrary<{ shape: ShapeArr; data: number[] }> {
  return shapeArb(shape).chain((s) => valuesArb(sizeOfShape(s), values).map((data) => ({ shape: s, data })));
}

/**
 * n pairwise distinct values on a grid of spacing `step` (default 0.01), so maxima and minima are
 * unique and a finite-difference step cannot reorder them.
 */
export function distinctValuesArb(n: number, step = 0.01, half = 400): fc.Arbitrary<number[]> {
  return fc.uniqueArray(fc.integer({ min: -half, max: half }), { minLength: n, maxLength: n }).map((v) => v.map((k) => k * step));
}

/** A (possibly empty) sorted set of distinct axes of a rank-r tensor, some given as negative indices. */
export function axesArb(rank: number): fc.Arbitrary<number[]> {
  if (rank === 0) return fc.constant([]);
  return fc
    .subarray([...Array(rank).keys()])
    .chain((axes) => fc.array(fc.boolean(), { minLength: axes.length, maxLength: axes.length }).map((neg) => axes.map((a, i) => (neg[i] ? a - rank : a))));
}

/** One axis of a rank-r tensor (r >= 1), possibly negative. */
export function axisArb(rank: number): fc.Arbitrary<number> {
  return fc.integer({ min: -rank, max: rank - 1 });
}

/** A random permutation of 0..n-1. */
export function permutationArb(n: number): fc.Arbitrary<number[]> {
  return fc.shuffledSubarray([...Array(n).keys()], { minLength: n, maxLength: n });
}

/** n integers in [0, hi) (e.g. class targets or embedding ids). */
export function indicesArb(n: number, hi: number): fc.Arbitrary<number[]> {
  return fc.array(fc.integer({ min: 0, max: hi - 1 }), { minLength: n, maxLength: n });
}
