// Casts between float dtypes pass gradients; casts to i32 and detach() stop them.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import * as T from '../../../src/tensor/index.js';
import { shapeArb, sizeOfShape } from '../../helpers/arbitraries.js';
import { gradProperty, input } from '../../helpers/gradients.js';

// Values and step on a 1/64 grid are exact in f32, so the f32 round trip inside the function
// loses nothing and central differences of the f64 square after it stay exact.
const gridArb = shapeArb().chain((shape) =>
  fc.array(fc.integer({ min: -192, max: 192 }), { minLength: sizeOfShape(shape), maxLength: sizeOfShape(shape) }).map((k) => ({ shape, data: k.map((v) => v / 64) })),
);

describe('cast: gradients', () => {
  it('gradient of cast f64 → f32 → f64 matches central differences (grid values, eps 1/64 exact in f32)', async () => {
    await gradProperty(gridArb, ({ shape, data }) => ({
      fn: (x) => T.square(T.cast(T.cast(x, 'f32'), 'f64')),
      inputs: [input(data, shape)],
      eps: 1 / 64,
    }), { numRuns: 30 });
  });

  it('the gradient through f32 → f64 arrives in f32 with the f32 leaf\'s shape', () => {
    T.tidy(() => {
      const x = T.tensor([0.5, -1.25], [2], { dtype: 'f32', requiresGrad: true });
      T.sum(T.square(T.cast(x, 'f64'))).backward();
      expect(x.grad!.dtype).toBe('f32');
      expect(Array.from(x.grad!.dataSync())).toEqual([1, -2.5]);
    });
  });
});

describe('cast and detach: forward properties', () => {
  it('cast to i32 truncates toward zero and records no gradient', () => {
    T.tidy(() => {
      const x = T.tensor([1.7, -1.7, 0.2], [3], { dtype: 'f64', requiresGrad: true });
      const i = T.cast(x, 'i32');
      expect(Array.from(i.dataSync())).toEqual([1, -1, 0]);
      expect(i.requiresGrad).toBe(false);
    });
  });

  it('cast to the same dtype returns the tensor itself', () => {
    T.tidy(() => {
      const x = T.zeros([2], { dtype: 'f32' });
      expect(T.cast(x, 'f32')).toBe(x);
    });
  });

  it('f64 → f32 rounds to nearest f32 (Math.fround) for random values', () => {
    fc.assert(
      fc.property(fc.array(fc.double({ min: -1e6, max: 1e6, noNaN: true }), { minLength: 1, maxLength: 20 }), (vals) => {
        T.tidy(() => {
          const y = T.cast(T.tensor(vals, [vals.length], { dtype: 'f64' }), 'f32').dataSync();
          vals.forEach((v, i) => expect(y[i]).toBe(Math.fround(v)));
        });
      }),
    );
  });
});
