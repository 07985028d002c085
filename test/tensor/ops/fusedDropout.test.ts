// dropoutAdd and geluDropout, dropout fused with its neighbours, on the CPU: the same masks (stream
// positions, slab offsets) and the same values and gradients as the composed ops, bit for bit, in
// f32 and f64; gradients against central differences in f64; eval mode and p = 0 fall back to the
// plain ops with no mask drawn; errors name the shapes. (WebGPU: test/tensor/backends/webgpu/dropout.test.ts.)

import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import * as T from '../../../src/tensor/index.js';
import type { Tensor } from '../../../src/tensor/index.js';
import { dropoutCaseArb, fusedAndComposed, type DropoutCase } from '../../helpers/dropoutCases.js';
import { tensorArb, valuesArb, sizeOfShape } from '../../helpers/arbitraries.js';
import { gradProperty, input } from '../../helpers/gradients.js';

describe('fused dropout ops on the CPU', () => {
  for (const dtype of ['f32', 'f64'] as const) {
    it(`dropoutAdd and geluDropout (erf and tanh) equal the composed ops bit for bit in ${dtype}: values, gradients and generator positions, with or without slab offsets`, async () => {
      await fc.assert(fc.asyncProperty(dropoutCaseArb, async (c: DropoutCase) => {
        const [fused, composed] = await fusedAndComposed(T.cpu, dtype, c);
        expect(fused.value).toEqual(composed.value);
        fused.grads.forEach((g, i) => expect(g, `gradient ${i}`).toEqual(composed.grads[i]));
        expect(fused.generatorOffset).toBe(composed.generatorOffset);
      }), { numRuns: 60 });
    });
  }

  it('gradient of dropoutAdd with a fixed seed w.r.t. the residual and x matches central differences', async () => {
    const arb = tensorArb().chain((t) => fc.tuple(fc.constant(t), valuesArb(sizeOfShape(t.shape)), fc.constantFrom(0.1, 0.5, 0.9), fc.integer({ min: 0, max: 1 << 30 })));
    await gradProperty(arb, ([{ shape, data }, residual, p, seed]) => ({
      fn: (r, x) => T.dropoutAdd(r, x, p, { generator: new T.Generator(seed) }),
      inputs: [input(residual, shape), input(data, shape)],
    }), { numRuns: 30 });
  });

  for (const approximate of ['none', 'tanh'] as const) {
    it(`gradient of geluDropout (${approximate === 'none' ? 'erf' : 'tanh'}) with a fixed seed matches central differences`, async () => {
      const arb = fc.tuple(tensorArb({}, { min: -4, max: 4 }), fc.constantFrom(0.1, 0.5, 0.9), fc.integer({ min: 0, max: 1 << 30 }));
      await gradProperty(arb, ([{ shape, data }, p, seed]) => ({
        fn: (x) => T.geluDropout(x, p, { generator: new T.Generator(seed), approximate }),
        inputs: [input(data, shape)],
      }), { numRuns: 30 });
    });
  }

  it('in eval mode or with p = 0 dropoutAdd is add and geluDropout is gelu, with no mask drawn and the generator untouched', () => {
    T.tidy(() => {
      const spy = vi.spyOn(T.cpu, 'dropoutApply');
      const x = T.tensor([-1.5, 0.25, 2, 3], [2, 2], { dtype: 'f64' });
      const r = T.tensor([4, -5, 6, 0.5], [2, 2], { dtype: 'f64' });
      const gen = new T.Generator(11);
      for (const opts of [{ training: false, generator: gen }, { generator: gen }]) {
        const p = opts.training === false ? 0.3 : 0;
        expect(Array.from(T.dropoutAdd(r, x, p, opts).dataSync())).toEqual(Array.from(T.add(r, x).dataSync()));
        expect(Array.from(T.geluDropout(x, p, opts).dataSync())).toEqual(Array.from(T.gelu(x).dataSync()));
        expect(Array.from(T.geluDropout(x, p, { ...opts, approximate: 'tanh' }).dataSync())).toEqual(Array.from(T.gelu(x, 'tanh').dataSync()));
      }
      expect(spy).not.toHaveBeenCalled();
      expect(gen.state().offset).toBe(0);
      spy.mockRestore();
    });
  });

  it('errors name the op and both shapes (residual mismatch), the bad p, and a non-float input', () => {
    T.tidy(() => {
      const x = T.zeros([2, 3]);
      expect(() => T.dropoutAdd(T.zeros([3, 2]), x, 0.1)).toThrow(/dropoutAdd.*residual \[3, 2\] and x \[2, 3\]/);
      expect(() => T.dropoutAdd(T.zeros([3]), x, 0.1, { training: false })).toThrow(/residual \[3\] and x \[2, 3\]/);
      expect(() => T.dropoutAdd(x, x, 1)).toThrow(/dropoutAdd.*p must be in \[0, 1\), got 1/);
      expect(() => T.geluDropout(x, -0.1)).toThrow(/geluDropout.*p must be in \[0, 1\), got -0.1/);
      expect(() => T.geluDropout(T.zeros([2], { dtype: 'i32' }), 0.1)).toThrow(/geluDropout.*floating-point/);
      expect(() => T.dropoutAdd(T.zeros([2, 3], { dtype: 'f64' }), x, 0.1)).toThrow(/dropoutAdd.*dtype mismatch/);
    });
  });

  it('dropoutAdd passes the residual its gradient unchanged (no kernel) and x the masked gradient', () => {
    T.tidy(() => {
      const r = T.zeros([50], { dtype: 'f64' });
      const x = T.zeros([50], { dtype: 'f64' });
      const g = T.randn([50], { dtype: 'f64', generator: new T.Generator(2) });
      const { grads } = T.valueAndGrad((a: Tensor, b: Tensor) => T.sum(T.mul(T.dropoutAdd(a, b, 0.4, { generator: new T.Generator(5) }), g)))(r, x);
      const mask = T.dropout(T.ones([50], { dtype: 'f64' }), 0.4, { generator: new T.Generator(5) });
      expect(Array.from(grads[0].dataSync())).toEqual(Array.from(g.dataSync()));
      expect(Array.from(grads[1].dataSync())).toEqual(Array.from(T.mul(g, mask).dataSync()));
    });
  });
});
