// The grid-stride elementwise entry takes four elements per step and the rest one at a time: with
// a few workgroups over many elements both paths run, and every element is written exactly once,
// for unary and broadcasting binary kernels, f32 and i32, at sizes around the unrolled step.

import fc from 'fast-check';
import { afterAll, describe, it } from 'vitest';
import { binaryLaunch, unaryLaunch } from '../../src/shaders/elementwise.js';
import { expectClose, nanFilled, openHarness, seededFloats } from '../helpers/kernelHarness.js';

const h = await openHarness('elementwise WGSL tests');
afterAll(() => h?.destroy());

describe.skipIf(!h)('elementwise grid-stride loop', () => {
  it('unary affine writes p0·x + p1 to every element, for any size and grid', async () => {
    await fc.assert(fc.asyncProperty(fc.integer({ min: 1, max: 5000 }), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 0, max: 1000 }), async (n, groups, seed) => {
      const x = seededFloats(n, seed, 10);
      const [, out] = await h!.run(unaryLaunch('affine', 'f32', n, 1.5, -2, groups), [x, nanFilled(n)]);
      const want = x.map((v) => Math.fround(Math.fround(1.5 * v) - 2));
      expectClose(`affine n=${n} groups=${groups}`, out!, want, (w) => 1e-6 * (1 + Math.abs(w)));
    }), { numRuns: 20 });
  });

  it('binary add broadcasts a row over a matrix (f32) and subtracts i32, for any size and grid', async () => {
    await fc.assert(fc.asyncProperty(fc.integer({ min: 1, max: 90 }), fc.integer({ min: 1, max: 70 }), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 0, max: 1000 }), async (rows, cols, groups, seed) => {
      const n = rows * cols;
      const a = seededFloats(n, seed, 10);
      const b = seededFloats(cols, seed + 1, 10);
      const [, , out] = await h!.run(binaryLaunch('add', 'f32', [rows, cols], [cols, 1], [0, 1], groups), [a, b, nanFilled(n)]);
      expectClose(`add ${rows}x${cols} groups=${groups}`, out!, a.map((v, i) => Math.fround(v + b[i % cols]!)), () => 0);
      const ai = Int32Array.from(a, (v) => Math.round(v * 100));
      const bi = Int32Array.from(b, (v) => Math.round(v * 100));
      const [, , outI] = await h!.run(binaryLaunch('sub', 'i32', [rows, cols], [cols, 1], [0, 1], groups), [ai, bi, new Int32Array(n).fill(-999999)]);
      expectClose(`sub i32 ${rows}x${cols} groups=${groups}`, outI!, ai.map((v, i) => v - bi[i % cols]!), () => 0);
    }), { numRuns: 20 });
  });
});
