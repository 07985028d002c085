// The Tensor object: creation, data access, disposal errors that name the tensor, shape errors that
// name the op and shapes, and seeded random creation.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import * as T from '../../src/tensor/index.js';
import { shapeArb, sizeOfShape } from '../helpers/arbitraries.js';

describe('Tensor', () => {
  it('tensor() infers shapes from nested arrays and round-trips through toArray', async () => {
    await fc.assert(
      fc.asyncProperty(shapeArb({ minDim: 0 }), async (shape) => {
        const data = Array.from({ length: sizeOfShape(shape) }, (_, i) => i);
        const t = T.tensor(data, shape, { dtype: 'f64' });
        const nested = await t.toArray();
        const again = T.tensor(nested, shape.some((d) => d === 0) ? shape : undefined, { dtype: 'f64' });
        expect(again.shape).toEqual(shape);
        expect(Array.from(again.dataSync())).toEqual(data);
        t.dispose();
        again.dispose();
      }),
      { numRuns: 50 },
    );
  });

  it('disposing a tensor then using it throws an error naming the tensor', () => {
    const t = T.ones([2, 3], { name: 'wq' });
    t.dispose();
    expect(t.isDisposed).toBe(true);
    expect(() => T.exp(t)).toThrowError(/tensor 'wq' \[2, 3\] f32 was disposed/);
    expect(() => t.dataSync()).toThrowError(/was disposed/);
    const u = T.ones([1]);
    u.dispose();
    expect(() => T.add(u, u)).toThrowError(new RegExp(`tensor #${u.id} \\[1\\] f32 was disposed`));
    t.dispose(); // a second dispose is a no-op
  });

  it('disposal is reference-counted across reshape views and updates the backend\'s live bytes', () => {
    const before = T.cpu.memory();
    const t = T.zeros([4, 2], { dtype: 'f64' });
    expect(T.cpu.memory().liveBytes).toBe(before.liveBytes + 64);
    const v = T.reshape(t, [8]);
    t.dispose();
    expect(T.cpu.memory().liveBytes).toBe(before.liveBytes + 64);
    v.dispose();
    expect(T.cpu.memory()).toMatchObject({ liveBytes: before.liveBytes, liveBuffers: before.liveBuffers });
  });

  it('errors name the op and the shapes: broadcast failure, matmul, reshape, layerNorm, gatherLogProbs', () => {
    T.tidy(() => {
      expect(() => T.add(T.zeros([2, 3]), T.zeros([4]))).toThrowError(/add: shapes \[2, 3\] and \[4\] cannot be broadcast/);
      expect(() => T.matmul(T.zeros([2, 3]), T.zeros([2, 3]))).toThrowError(/matmul: inner dims differ: \[2, 3\] @ \[2, 3\]/);
      expect(() => T.reshape(T.zeros([5]), [2, 2])).toThrowError(/reshape: cannot reshape \[5\]/);
      expect(() => T.layerNorm(T.zeros([2, 3]), T.ones([4]), T.zeros([4]))).toThrowError(/layerNorm: gamma \[4\]/);
      expect(() => T.gatherLogProbs(T.zeros([2, 3]), T.zeros([3], { dtype: 'i32' }))).toThrowError(/gatherLogProbs: targets \[3\]/);
      expect(() => T.mul(T.zeros([2]), T.zeros([2], { dtype: 'f64' }))).toThrowError(/mul: dtype mismatch/);
      expect(() => T.tensor([1, 2, 3], [2, 2])).toThrowError(/tensor: 3 values do not fill shape \[2, 2\]/);
    });
  });

  it('item and itemSync read one-element tensors and reject others naming the shape', async () => {
    const s = T.scalar(2.5, { dtype: 'f64' });
    expect(await s.item()).toBe(2.5);
    expect(() => T.zeros([2]).itemSync()).toThrowError(/item: .*\[2\]/);
    s.dispose();
  });
});

describe('seeded random creation', () => {
  it('randn and rand are reproducible by generator seed and by manualSeed', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 31 }), shapeArb({ minRank: 1 }), (seed, shape) => {
        T.tidy(() => {
          for (const f of [T.randn, T.rand]) {
            const a = f(shape, { generator: new T.Generator(seed) }).dataSync();
            const b = f(shape, { generator: new T.Generator(seed) }).dataSync();
            expect(Array.from(a)).toEqual(Array.from(b));
            T.manualSeed(seed);
            const c = f(shape).dataSync();
            T.manualSeed(seed);
            expect(Array.from(f(shape).dataSync())).toEqual(Array.from(c));
            expect(Array.from(c)).toEqual(Array.from(a));
          }
        });
      }),
      { numRuns: 30 },
    );
  });

  it('successive draws from one generator differ, and f32 draws equal the f64 draws rounded', () => {
    T.tidy(() => {
      const g = new T.Generator(11);
      const a = T.randn([100], { generator: g, dtype: 'f64' }).dataSync();
      const b = T.randn([100], { generator: g, dtype: 'f64' }).dataSync();
      expect(Array.from(a)).not.toEqual(Array.from(b));
      const a32 = T.randn([100], { generator: new T.Generator(11), dtype: 'f32' }).dataSync();
      a.forEach((v, i) => expect(Math.abs(a32[i] - v)).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(v))));
    });
  });

  it('rand lies in [0, 1) and randn has mean ≈ 0 and variance ≈ 1 (20 000 draws)', () => {
    T.tidy(() => {
      const u = T.rand([20000], { generator: new T.Generator(5), dtype: 'f64' }).dataSync();
      expect(u.every((v) => v >= 0 && v < 1)).toBe(true);
      const n = T.randn([20000], { generator: new T.Generator(5), dtype: 'f64' });
      expect(Math.abs(T.mean(n).itemSync())).toBeLessThan(0.03);
      expect(Math.abs(T.variance(n).itemSync() - 1)).toBeLessThan(0.05);
    });
  });
});
