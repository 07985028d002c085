// Reductions over random axis sets, with and without keepdim: gradients by gradcheck, plus
// forward properties (stability of logsumexp, agreement with a plain-loop reference).

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import * as T from '../../../src/tensor/index.js';
import { axesArb, distinctValuesArb, shapeArb, sizeOfShape, valuesArb } from '../../helpers/arbitraries.js';
import { expectAllClose, gradProperty, input, read } from '../../helpers/gradients.js';

const RUNS = 30;

/** A shape, an axis set (undefined = all axes) and keepdim. */
const reduceCaseArb = shapeArb().chain((shape) =>
  fc.tuple(fc.option(axesArb(shape.length), { nil: undefined }), fc.boolean()).map(([axes, keepdim]) => ({ shape, axes, keepdim })),
);

const withValues = reduceCaseArb.chain((c) => valuesArb(sizeOfShape(c.shape)).map((data) => ({ ...c, data })));
// max/min: distinct values so the arg-extremum is unique and stable under the finite-difference step
const withDistinct = reduceCaseArb.chain((c) => distinctValuesArb(sizeOfShape(c.shape)).map((data) => ({ ...c, data })));

describe('reductions: gradients over random axes, with and without keepdim', () => {
  const smooth = [
    ['sum', T.sum],
    ['mean', T.mean],
    ['logsumexp', T.logsumexp],
  ] as const;
  for (const [name, op] of smooth) {
    it(`gradient of ${name} matches float64 central differences (atol 1e-6, rtol 1e-5)`, async () => {
      await gradProperty(withValues, ({ shape, data, axes, keepdim }) => ({ fn: (x) => op(x, axes, keepdim), inputs: [input(data, shape)] }), { numRuns: RUNS });
    });
  }

  for (const [name, op] of [['max', T.max], ['min', T.min]] as const) {
    it(`gradient of ${name} (unique extrema) matches central differences`, async () => {
      await gradProperty(withDistinct, ({ shape, data, axes, keepdim }) => ({ fn: (x) => op(x, axes, keepdim), inputs: [input(data, shape)] }), { numRuns: RUNS });
    });
  }

  it('gradient of variance (correction 0 and 1) matches central differences', async () => {
    const arb = withValues.chain((c) => {
      const n = (c.axes ?? [...c.shape.keys()]).reduce((p, a) => p * c.shape[a < 0 ? a + c.shape.length : a], 1);
      return fc.constantFrom(...(n > 1 ? [0, 1] : [0])).map((correction) => ({ ...c, correction }));
    });
    await gradProperty(arb, ({ shape, data, axes, keepdim, correction }) => ({
      fn: (x) => T.variance(x, axes, { correction, keepdim }),
      inputs: [input(data, shape)],
    }), { numRuns: RUNS });
  });

  it('max splits the gradient equally among tied maxima', () => {
    T.tidy(() => {
      const x = T.tensor([1, 3, 3, 2], [4], { dtype: 'f64', requiresGrad: true });
      T.max(x).backward();
      expect(Array.from(x.grad!.dataSync())).toEqual([0, 0.5, 0.5, 0]);
    });
  });
});

/** Reference reduction with plain loops: returns the keepdim-shaped result. */
function reduceRef(data: number[], shape: number[], axes: number[], f: (vals: number[]) => number): number[] {
  const outShape = shape.map((d, i) => (axes.includes(i) ? 1 : d));
  const groups: number[][] = Array.from({ length: sizeOfShape(outShape) }, () => []);
  const idx = shape.map(() => 0);
  for (let i = 0; i < data.length; i++) {
    let o = 0;
    for (let d = 0; d < shape.length; d++) o = o * outShape[d] + (axes.includes(d) ? 0 : idx[d]);
    groups[o].push(data[i]);
    for (let d = shape.length - 1; d >= 0; d--) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
  return groups.map(f);
}

describe('reductions: forward properties', () => {
  it('sum, mean, max, min, logsumexp and variance agree with a plain-loop reference and have the right shape', () => {
    const refs = {
      sum: (v: number[]) => v.reduce((a, b) => a + b, 0),
      mean: (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length,
      max: (v: number[]) => Math.max(...v),
      min: (v: number[]) => Math.min(...v),
      logsumexp: (v: number[]) => Math.log(v.reduce((a, b) => a + Math.exp(b), 0)),
    };
    fc.assert(
      fc.property(withValues, fc.constantFrom(...(Object.keys(refs) as (keyof typeof refs)[])), ({ shape, data, axes, keepdim }, name) => {
        T.tidy(() => {
          const ax = (axes ?? [...shape.keys()]).map((a) => (a < 0 ? a + shape.length : a));
          const y = T[name](T.tensor(data, shape, { dtype: 'f64' }), axes, keepdim);
          expect(y.shape).toEqual(keepdim ? shape.map((d, i) => (ax.includes(i) ? 1 : d)) : shape.filter((_, i) => !ax.includes(i)));
          expectAllClose(y.dataSync(), reduceRef(data, shape, ax, refs[name]), 1e-12, 1e-12, name);
        });
      }),
      { numRuns: 100 },
    );
  });

  it('logsumexp is finite and exact at ±1e4 (no overflow or underflow)', () => {
    fc.assert(
      fc.property(fc.constantFrom(1e4, -1e4), valuesArb(6), (big, offsets) => {
        T.tidy(() => {
          const vals = offsets.map((o) => big + o);
          const got = T.logsumexp(T.tensor(vals, [2, 3], { dtype: 'f64' }), 1).dataSync();
          for (let r = 0; r < 2; r++) {
            const row = offsets.slice(3 * r, 3 * r + 3);
            const m = Math.max(...row);
            const want = big + m + Math.log(row.reduce((a, o) => a + Math.exp(o - m), 0));
            expect(Number.isFinite(got[r])).toBe(true);
            expect(Math.abs(got[r] - want)).toBeLessThanOrEqual(1e-12 * Math.abs(want));
          }
          // f32 too: the shift keeps exp in range
          const f = T.logsumexp(T.tensor(vals, [6], { dtype: 'f32' })).itemSync();
          expect(Number.isFinite(f)).toBe(true);
        });
      }),
      { numRuns: 30 },
    );
  });

  it('f32 reductions agree with f64 within f32 tolerance', async () => {
    const ops = { sum: T.sum, mean: T.mean, max: T.max, min: T.min, logsumexp: T.logsumexp } as const;
    await fc.assert(
      fc.asyncProperty(withValues, fc.constantFrom(...(Object.keys(ops) as (keyof typeof ops)[])), async ({ shape, data, axes, keepdim }, name) => {
        const [lo, hi] = T.tidy(() => [ops[name](T.tensor(data, shape, { dtype: 'f32' }), axes, keepdim), ops[name](T.tensor(data, shape, { dtype: 'f64' }), axes, keepdim)]);
        // sums of up to 64 values of magnitude ≤ 3 lose at most ~64·3·2⁻²⁴ ≈ 1e-5 in f32
        expectAllClose(await read(lo), await read(hi), 2e-5, 1e-5, `${name} f32 vs f64`);
        lo.dispose();
        hi.dispose();
      }),
      { numRuns: 50 },
    );
  });

  it('logsumexp of an all −∞ slice is −∞, not NaN', () => {
    T.tidy(() => {
      expect(T.logsumexp(T.tensor([-Infinity, -Infinity], [2], { dtype: 'f64' })).itemSync()).toBe(-Infinity);
    });
  });

  it('variance with correction 1 equals the unbiased sample variance', () => {
    T.tidy(() => {
      expect(T.variance(T.tensor([1, 2, 3, 4], [4], { dtype: 'f64' })).itemSync()).toBeCloseTo(5 / 3, 14);
      expect(T.variance(T.tensor([1, 2, 3, 4], [4], { dtype: 'f64' }), undefined, { correction: 0 }).itemSync()).toBeCloseTo(1.25, 14);
    });
  });

  it('reductions accept an empty axis (a size-0 dim): sum is 0, max is −∞', () => {
    T.tidy(() => {
      const x = T.zeros([2, 0, 3], { dtype: 'f64' });
      expect(Array.from(T.sum(x, 1).dataSync())).toEqual([0, 0, 0, 0, 0, 0]);
      expect(T.max(x, [1]).shape).toEqual([2, 3]);
      expect(T.max(x, [1]).dataSync()[0]).toBe(-Infinity);
    });
  });
});
