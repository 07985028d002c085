// indexSelect and embedding: gradients (a scatter-add, repeats included) by gradcheck; forward
// against direct indexing; out-of-range indices rejected with the op and shapes named.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import * as T from '../../../src/tensor/index.js';
import { axisArb, indicesArb, shapeArb, sizeOfShape, tensorArb, valuesArb } from '../../helpers/arbitraries.js';
import { gradProperty, input, ints } from '../../helpers/gradients.js';

const RUNS = 30;

const indexSelectArb = tensorArb({ minRank: 1 }).chain((t) =>
  axisArb(t.shape.length).chain((axis) => {
    const dim = t.shape[axis < 0 ? axis + t.shape.length : axis];
    return fc.integer({ min: 0, max: 6 }).chain((n) => indicesArb(n, dim).map((idx) => ({ ...t, axis, idx })));
  }),
);

const embeddingArb = fc.tuple(fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 4 }), shapeArb({ maxRank: 2, maxDim: 4 })).chain(([V, D, idShape]) =>
  fc.tuple(valuesArb(V * D), indicesArb(sizeOfShape(idShape), V)).map(([w, ids]) => ({ V, D, idShape, w, ids })),
);

describe('indexing: gradients', () => {
  it('gradient of indexSelect (any axis, repeated indices) matches central differences', async () => {
    await gradProperty(indexSelectArb, ({ shape, data, axis, idx }) => ({
      fn: (x, i) => T.indexSelect(x, axis, i),
      inputs: [input(data, shape), ints(idx, [idx.length])],
    }), { numRuns: RUNS });
  });

  it('gradient of embedding (ids of rank 0-2) matches central differences', async () => {
    await gradProperty(embeddingArb, ({ V, D, idShape, w, ids }) => ({
      fn: (weight, i) => T.embedding(weight, i),
      inputs: [input(w, [V, D]), ints(ids, idShape)],
    }), { numRuns: RUNS });
  });
});

describe('indexing: forward properties', () => {
  it('embedding(W, ids)[..., :] is row ids[...] of W', () => {
    fc.assert(
      fc.property(embeddingArb, ({ V, D, idShape, w, ids }) => {
        T.tidy(() => {
          const y = T.embedding(T.tensor(w, [V, D], { dtype: 'f64' }), T.tensor(ids, idShape, { dtype: 'i32' }));
          expect(y.shape).toEqual([...idShape, D]);
          const yd = y.dataSync();
          ids.forEach((id, p) => {
            for (let d = 0; d < D; d++) expect(yd[p * D + d]).toBe(w[id * D + d]);
          });
        });
      }),
      { numRuns: 50 },
    );
  });

  it('an out-of-range index throws naming indexSelect, the index and the valid range', () => {
    T.tidy(() => {
      const x = T.zeros([3, 2]);
      expect(() => T.indexSelect(x, 0, T.tensor([0, 3], [2], { dtype: 'i32' }))).toThrowError(/indexSelect: .*3.*\[0, 3\)/);
      expect(() => T.indexSelect(x, 0, T.tensor([-1], [1], { dtype: 'i32' }))).toThrowError(/indexSelect/);
      expect(() => T.embedding(T.zeros([4, 2]), T.tensor([4], [1], { dtype: 'i32' }))).toThrowError(/indexSelect: .*\[4, 2\]/);
    });
  });

  it('float indices are rejected with the op named', () => {
    T.tidy(() => {
      expect(() => T.indexSelect(T.zeros([3]), 0, T.tensor([0], [1]))).toThrowError(/indexSelect: expects i32/);
    });
  });
});
