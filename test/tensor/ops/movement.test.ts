// Movement ops (reshape, permute, transpose, slice, concat, stack, broadcastTo, unsqueeze, squeeze,
// clone): gradients by gradcheck over random shapes, and forward properties against index maths.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import * as T from '../../../src/tensor/index.js';
import { axisArb, broadcastPairArb, permutationArb, shapeArb, sizeOfShape, tensorArb, valuesArb } from '../../helpers/arbitraries.js';
import { gradProperty, input } from '../../helpers/gradients.js';

const RUNS = 30;

/** A shape of the same size: dims regrouped (adjacent merges after a shuffle), sometimes with a −1. */
const reshapeArb = tensorArb().chain(({ shape, data }) =>
  fc.tuple(permutationArb(shape.length), fc.array(fc.boolean(), { minLength: shape.length, maxLength: shape.length }), fc.boolean()).map(([perm, merge, useInfer]) => {
    const dims = perm.map((i) => shape[i]);
    const target: number[] = [];
    dims.forEach((d, i) => (merge[i] && target.length > 0 ? (target[target.length - 1] *= d) : target.push(d)));
    if (useInfer && target.length > 0) target[0] = -1;
    return { shape, data, target };
  }),
);

describe('movement ops: gradients', () => {
  it('gradient of reshape (any regrouping, with −1) matches central differences', async () => {
    await gradProperty(reshapeArb, ({ shape, data, target }) => ({ fn: (x) => T.reshape(x, target), inputs: [input(data, shape)] }), { numRuns: RUNS });
  });

  it('gradient of flatten matches central differences', async () => {
    await gradProperty(tensorArb(), ({ shape, data }) => ({ fn: T.flatten, inputs: [input(data, shape)] }), { numRuns: RUNS });
  });

  it('gradient of permute (random permutation) matches central differences', async () => {
    const arb = tensorArb().chain((t) => permutationArb(t.shape.length).map((perm) => ({ ...t, perm })));
    await gradProperty(arb, ({ shape, data, perm }) => ({ fn: (x) => T.permute(x, perm), inputs: [input(data, shape)] }), { numRuns: RUNS });
  });

  it('gradient of transpose (random pair of axes) matches central differences', async () => {
    const arb = tensorArb({ minRank: 1 }).chain((t) => fc.tuple(axisArb(t.shape.length), axisArb(t.shape.length)).map(([a, b]) => ({ ...t, a, b })));
    await gradProperty(arb, ({ shape, data, a, b }) => ({ fn: (x) => T.transpose(x, a, b), inputs: [input(data, shape)] }), { numRuns: RUNS });
  });

  it('gradient of slice (random axis, negative and out-of-range bounds) matches central differences', async () => {
    const arb = tensorArb({ minRank: 1 }).chain((t) =>
      axisArb(t.shape.length).chain((axis) => {
        const n = t.shape[axis < 0 ? axis + t.shape.length : axis];
        return fc.tuple(fc.integer({ min: -n - 1, max: n + 1 }), fc.integer({ min: -n - 1, max: n + 2 })).map(([start, end]) => ({ ...t, axis, start, end }));
      }),
    );
    await gradProperty(arb, ({ shape, data, axis, start, end }) => ({ fn: (x) => T.slice(x, axis, start, end), inputs: [input(data, shape)] }), { numRuns: RUNS });
  });

  it('gradient of concat (1-3 tensors differing along the axis) matches central differences for every input', async () => {
    const arb = shapeArb({ minRank: 1, maxSize: 24 }).chain((shape) =>
      fc.tuple(fc.integer({ min: 0, max: shape.length - 1 }), fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 1, maxLength: 3 })).chain(([axis, sizes]) => {
        const shapes = sizes.map((s) => shape.map((d, i) => (i === axis ? s : d)));
        return fc.tuple(...shapes.map((s) => valuesArb(sizeOfShape(s)))).map((datas) => ({ axis, shapes, datas }));
      }),
    );
    await gradProperty(arb, ({ axis, shapes, datas }) => ({
      fn: (...xs) => T.concat(xs, axis),
      inputs: shapes.map((s, i) => input(datas[i], s)),
    }), { numRuns: RUNS });
  });

  it('concatBroadcast equals concat of broadcastTo copies; its gradient matches central differences (repeated inputs summed)', async () => {
    // Leading dims (before the axis) lead; each input has them or is 1 in all of them.
    const arb = fc.tuple(fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 1, maxLength: 2 }), fc.array(fc.integer({ min: 1, max: 3 }), { maxLength: 2 }),
      fc.array(fc.record({ size: fc.integer({ min: 1, max: 3 }), shared: fc.boolean() }), { minLength: 1, maxLength: 3 })).chain(([lead, rest, ins]) => {
      // At least one input carries the leading dims (otherwise nothing says what they are).
      const shapes = ins.map((x, k) => [...(x.shared && k > 0 ? lead.map(() => 1) : lead), x.size, ...rest]);
      return fc.tuple(...shapes.map((sh) => valuesArb(sizeOfShape(sh)))).map((datas) => ({ axis: lead.length, lead, shapes, datas }));
    });
    await fc.assert(fc.property(arb, ({ axis, lead, shapes, datas }) => {
      T.tidy(() => {
        const xs = shapes.map((sh, i) => T.tensor(datas[i], sh, { dtype: 'f64' }));
        const want = T.concat(xs.map((x) => T.broadcastTo(x, [...lead, ...x.shape.slice(axis)])), axis);
        const got = T.concatBroadcast(xs, axis);
        expect(got.shape).toEqual(want.shape);
        expect([...got.dataSync()]).toEqual([...want.dataSync()]);
      });
    }), { numRuns: RUNS });
    await gradProperty(arb, ({ axis, shapes, datas }) => ({
      fn: (...xs) => T.concatBroadcast(xs, axis),
      inputs: shapes.map((s, i) => input(datas[i], s)),
    }), { numRuns: RUNS });
    expect(() => T.concatBroadcast([T.zeros([2, 1]), T.zeros([3, 1])], 1)).toThrowError(/concatBroadcast: shapes \[2, 1\], \[3, 1\]/);
  });

  it('gradient of stack (1-3 equal shapes, any new axis) matches central differences for every input', async () => {
    const arb = shapeArb({ maxRank: 3, maxSize: 24 }).chain((shape) =>
      fc.tuple(fc.integer({ min: 0, max: shape.length }), fc.integer({ min: 1, max: 3 })).chain(([axis, n]) =>
        fc.array(valuesArb(sizeOfShape(shape)), { minLength: n, maxLength: n }).map((datas) => ({ shape, axis, datas })),
      ),
    );
    await gradProperty(arb, ({ shape, axis, datas }) => ({ fn: (...xs) => T.stack(xs, axis), inputs: datas.map((d) => input(d, shape)) }), { numRuns: RUNS });
  });

  it('gradient of broadcastTo (size-1 and missing leading dims) matches central differences', async () => {
    const arb = broadcastPairArb({ maxSize: 36 }).chain(([a, , out]) => valuesArb(sizeOfShape(a)).map((data) => ({ a, out, data })));
    await gradProperty(arb, ({ a, out, data }) => ({ fn: (x) => T.broadcastTo(x, out), inputs: [input(data, a)] }), { numRuns: RUNS });
  });

  it('gradient of unsqueeze (any position) matches central differences', async () => {
    const arb = tensorArb().chain((t) => fc.integer({ min: -t.shape.length - 1, max: t.shape.length }).map((axis) => ({ ...t, axis })));
    await gradProperty(arb, ({ shape, data, axis }) => ({ fn: (x) => T.unsqueeze(x, axis), inputs: [input(data, shape)] }), { numRuns: RUNS });
  });

  it('gradient of squeeze (all size-1 dims, or one) matches central differences', async () => {
    const arb = tensorArb({ maxDim: 2 }).chain((t) => {
      const ones = t.shape.map((d, i) => (d === 1 ? i : -1)).filter((i) => i >= 0);
      return fc.option(fc.constantFrom(...(ones.length ? ones : [-1])), { nil: undefined }).map((axis) => ({ ...t, axis: ones.length ? axis : undefined }));
    });
    await gradProperty(arb, ({ shape, data, axis }) => ({ fn: (x) => T.squeeze(x, axis), inputs: [input(data, shape)] }), { numRuns: RUNS });
  });

  it('gradient of clone matches central differences', async () => {
    await gradProperty(tensorArb(), ({ shape, data }) => ({ fn: T.clone, inputs: [input(data, shape)] }), { numRuns: RUNS });
  });
});

/** Flat index → multi-index for a row-major shape. */
function unravel(i: number, shape: readonly number[]): number[] {
  const out = new Array<number>(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) {
    out[d] = i % shape[d];
    i = Math.floor(i / shape[d]);
  }
  return out;
}
function ravel(idx: readonly number[], shape: readonly number[]): number {
  return idx.reduce((o, v, d) => o * shape[d] + v, 0);
}

describe('movement ops: forward properties', () => {
  it('permute moves element x[i] to out[i permuted], and the inverse permutation restores x', () => {
    fc.assert(
      fc.property(tensorArb().chain((t) => permutationArb(t.shape.length).map((perm) => ({ ...t, perm }))), ({ shape, data, perm }) => {
        T.tidy(() => {
          const y = T.permute(T.tensor(data, shape, { dtype: 'f64' }), perm);
          expect(y.shape).toEqual(perm.map((p) => shape[p]));
          const yd = y.dataSync();
          for (let j = 0; j < yd.length; j++) {
            const oi = unravel(j, y.shape);
            const xi = new Array<number>(shape.length);
            perm.forEach((p, k) => (xi[p] = oi[k]));
            expect(yd[j]).toBe(data[ravel(xi, shape)]);
          }
        });
      }),
      { numRuns: 50 },
    );
  });

  it('concat then slice recovers each part; reshape is a view that shares storage', () => {
    T.tidy(() => {
      const a = T.tensor([1, 2, 3, 4], [2, 2], { dtype: 'f64' });
      const b = T.tensor([5, 6], [2, 1], { dtype: 'f64' });
      const c = T.concat([a, b], 1);
      expect(Array.from(c.dataSync())).toEqual([1, 2, 5, 3, 4, 6]);
      expect(Array.from(T.slice(c, 1, 2).dataSync())).toEqual([5, 6]);
      const before = T.cpu.memory().liveBytes;
      const r = T.reshape(c, [3, 2]);
      expect(T.cpu.memory().liveBytes).toBe(before);
      c.dispose();
      expect(Array.from(r.dataSync())).toEqual([1, 2, 5, 3, 4, 6]); // the view keeps the storage alive
    });
  });

  it('movement ops work on empty tensors (a size-0 dim)', () => {
    T.tidy(() => {
      const x = T.zeros([2, 0, 3], { dtype: 'f64' });
      expect(T.permute(x, [2, 0, 1]).shape).toEqual([3, 2, 0]);
      expect(T.reshape(x, [0, 5]).shape).toEqual([0, 5]);
      expect(T.concat([x, T.ones([2, 1, 3], { dtype: 'f64' })], 1).shape).toEqual([2, 1, 3]);
      expect(T.slice(T.ones([4], { dtype: 'f64' }), 0, 2, 2).shape).toEqual([0]);
    });
  });

  it('reshape to a different element count throws a ShapeError naming reshape and both shapes', () => {
    T.tidy(() => {
      const x = T.zeros([2, 3]);
      expect(() => T.reshape(x, [4, 2])).toThrowError(/reshape: cannot reshape \[2, 3\] \(6 elements\) to \[4, 2\]/);
      expect(() => T.reshape(x, [4, 2])).toThrowError(T.ShapeError);
    });
  });

  it('concat of tensors with different dtypes throws naming each shape and dtype', () => {
    T.tidy(() => {
      expect(() => T.concat([T.zeros([2]), T.tensor([1, 2], [2], { dtype: 'i32' })])).toThrowError(/concat: dtype mismatch: \[2\] f32 vs \[2\] i32/);
    });
  });

  it('broadcastTo an incompatible shape throws naming the op and both shapes', () => {
    T.tidy(() => {
      expect(() => T.broadcastTo(T.zeros([3]), [2, 4])).toThrowError(/broadcastTo: .*\[3\].*\[2, 4\]/);
    });
  });
});
