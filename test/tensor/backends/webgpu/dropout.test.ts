// Dropout fused with its neighbours on the WebGPU backend: dropoutApply with a residual and/or a
// GELU returns the CPU's mask bit for bit, and values bit-identical to the GPU's own composed
// kernels (unary gelu, dropoutApply, binary add) and to the CPU where no GELU is involved (GELU's
// f32 erf and tanh differ from the CPU's by the bounds of elementwise.test.ts); the GELU-dropout
// backward likewise; the kernels on a single workgroup, so each invocation walks many Philox blocks.
// Then the ops dropoutAdd and geluDropout against their compositions on the GPU.

import fc from 'fast-check';
import { expect, it } from 'vitest';
import { dropoutApplyLaunch, dropoutMaskLaunch } from '../../../../src/shaders/dropout.js';
import type { DropoutActivation, DropoutFusion } from '../../../../src/tensor/backend.js';
import { contiguousStrides } from '../../../../src/tensor/shape.js';
import { dropoutCaseArb, fusedAndComposed, runCase, streamOffsetArb } from '../../../helpers/dropoutCases.js';
import { seed, seededValues } from '../../../helpers/backendArbitraries.js';
import { both, cpu, describeGpu, expectClose, gpu, readBoth } from '../../../helpers/webgpu.js';

const RUNS = { numRuns: 20 };
const u32 = fc.integer({ min: 0, max: 2 ** 32 - 1 });
const offset = fc.oneof(streamOffsetArb, fc.integer({ min: 0, max: 2 ** 52 }));
const activationArb = fc.constantFrom<DropoutActivation | undefined>(undefined, 'gelu', 'geluTanh');
/** |gpu − cpu| of the unary GELU forms (elementwise.test.ts), absolute and relative. */
const GELU_TOL: Record<DropoutActivation, number> = { gelu: 2e-6, geluTanh: 5e-6 };

describeGpu('webgpu fused dropout', () => {
  it('dropoutApply with a residual and/or a GELU: the mask bit-identical to dropoutMask on the CPU; y bit-identical to the GPU composition, and to the CPU without a GELU', async () => {
    await fc.assert(fc.asyncProperty(fc.integer({ min: 0, max: 700 }), fc.array(offset, { minLength: 1, maxLength: 4 }), u32, u32, fc.constantFrom(0.1, 0.5, 0.9), activationArb, fc.boolean(), seed,
      async (slab, offsets, k0, k1, p, activation, withResidual, sd) => {
        const n = slab * offsets.length;
        const key: [number, number] = [k0, k1];
        const [xg, xc] = both('f32', seededValues(sd, n, -5, 5));
        const [rg, rc] = both('f32', seededValues(sd + 1, n));
        const fuse = (r: typeof rg | null): DropoutFusion => ({ activation, ...(withResidual ? { residual: r! } : {}) });
        const g = gpu.dropoutApply(xg, key, offsets, p, fuse(rg));
        const c = cpu.dropoutApply(xc, key, offsets, p, fuse(rc));
        // The GPU's composed kernels, as the unfused ops run them.
        const actg = activation ? gpu.unary(activation, xg) : xg;
        const plain = gpu.dropoutApply(actg, key, offsets, p);
        const shape = [n];
        const st = contiguousStrides(shape);
        const composed = withResidual ? gpu.binary('add', rg, plain.y, shape, st, st) : plain.y;
        const wantMask = cpu.readSync(cpu.dropoutMask('f32', n, key, offsets, p));
        const [gm, cm] = await readBoth(g.mask, c.mask);
        expect([...gm]).toEqual([...wantMask]);
        expect([...cm]).toEqual([...wantMask]);
        const gComposed = await gpu.read(composed);
        const [gy, cy] = await readBoth(g.y, c.y);
        expect([...gy]).toEqual([...gComposed]);
        if (!activation) expect([...gy]).toEqual([...cy]);
        else expectClose(gy, cy, GELU_TOL[activation] * Math.fround(1 / (1 - p)), 2e-5, `dropoutApply ${activation}`);
        for (const s of new Set([xg, rg, actg, plain.y, plain.mask, composed])) gpu.free(s);
      }), RUNS);
  });

  it('on one workgroup (each invocation loops over many Philox blocks) the mask and applying kernels equal the backend\'s own dispatch and the CPU mask', async () => {
    await fc.assert(fc.asyncProperty(fc.integer({ min: 1, max: 2500 }), fc.array(offset, { minLength: 1, maxLength: 4 }), u32, fc.constantFrom(0.1, 0.5), activationArb, fc.boolean(), seed,
      async (slab, offsets, k0, p, activation, withResidual, sd) => {
        const n = slab * offsets.length;
        const key: [number, number] = [k0, 3];
        const keep = Math.fround(1 - p);
        const scale = Math.fround(1 / (1 - p));
        const want = [...cpu.readSync(cpu.dropoutMask('f32', n, key, offsets, p))];
        const mask = gpu.upload('f32', new Float32Array(n));
        gpu.runKernel(dropoutMaskLaunch(n, key, offsets, keep, scale, 1), [], [mask]);
        expect([...await gpu.read(mask)]).toEqual(want);
        const x = gpu.upload('f32', seededValues(sd, n, -5, 5));
        const r = gpu.upload('f32', seededValues(sd + 1, n));
        const out = gpu.upload('f32', new Float32Array(n));
        gpu.runKernel(dropoutApplyLaunch(n, key, offsets, keep, scale, 1, { activation, residual: withResidual }), withResidual ? [x, r] : [x], [out, mask]);
        const ref = gpu.dropoutApply(x, key, offsets, p, { activation, ...(withResidual ? { residual: r } : {}) });
        expect([...await gpu.read(mask)]).toEqual(want);
        expect([...await gpu.read(out)]).toEqual([...await gpu.read(ref.y)]);
        for (const b of [mask, x, r, out, ref.y, ref.mask]) gpu.free(b);
      }), RUNS);
  });

  it('dropoutActivationBackward is bit-identical to binary mul then binary gelu(Tanh)Backward on the GPU, and close to the CPU', async () => {
    await fc.assert(fc.asyncProperty(fc.integer({ min: 0, max: 3000 }), fc.constantFrom<DropoutActivation>('gelu', 'geluTanh'), u32, offset, fc.constantFrom(0.1, 0.5), seed,
      async (n, activation, k0, o, p, sd) => {
        const [xg, xc] = both('f32', seededValues(sd, n, -6, 6));
        const [gg, gc] = both('f32', seededValues(sd + 1, n));
        const mg = gpu.dropoutMask('f32', n, [k0, 7], o, p);
        const mc = cpu.dropoutMask('f32', n, [k0, 7], o, p);
        const st = contiguousStrides([n]);
        const masked = gpu.binary('mul', gg, mg, [n], st, st);
        const composed = gpu.binary(activation === 'gelu' ? 'geluBackward' : 'geluTanhBackward', xg, masked, [n], st, st);
        const gComposed = await gpu.read(composed);
        const [g, c] = await readBoth(gpu.dropoutActivationBackward(gg, xg, mg, activation), cpu.dropoutActivationBackward(gc, xc, mc, activation));
        expect([...g]).toEqual([...gComposed]);
        // g · mask · act'(x): act's tolerance times |g · mask| <= 3 / (1 − p).
        expectClose(g, c, GELU_TOL[activation] * 3 / (1 - p), 2e-5, `dropoutActivationBackward ${activation}`);
        for (const s of [xg, gg, mg, masked, composed]) gpu.free(s);
      }), RUNS);
  });

  it('dropoutAdd and geluDropout (erf and tanh) equal their compositions on the GPU bit for bit: values, gradients, generator positions, slab offsets', async () => {
    await fc.assert(fc.asyncProperty(dropoutCaseArb, async (c) => {
      const [fused, composed] = await fusedAndComposed(gpu, 'f32', c);
      expect(fused.value).toEqual(composed.value);
      fused.grads.forEach((g, i) => expect(g, `gradient ${i}`).toEqual(composed.grads[i]));
      expect(fused.generatorOffset).toBe(composed.generatorOffset);
    }), { numRuns: 30 });
  });

  it('dropoutAdd and geluDropout on the GPU match the CPU: the same zeros (mask), values and gradients within GELU\'s f32 bounds', async () => {
    await fc.assert(fc.asyncProperty(dropoutCaseArb, async (c) => {
      const g = await runCase(gpu, 'f32', c, true);
      const r = await runCase(cpu, 'f32', c, true);
      const scale = 1 / (1 - c.p);
      // GELU's bound scaled by the mask (values) and by the mask and w <= 1.5 (gradients).
      const tol = c.op === 'dropoutAdd' ? 0 : GELU_TOL[c.op === 'geluDropout' ? 'gelu' : 'geluTanh'] * scale;
      if (c.op === 'dropoutAdd') expect(g.value).toEqual(r.value);
      else {
        expect(g.value.map((v) => v === 0)).toEqual(r.value.map((v) => v === 0));
        expectClose(g.value, r.value, tol, 2e-5, 'value');
      }
      g.grads.forEach((gr, i) => expectClose(gr, r.grads[i], 1.5 * tol, 2e-5, `gradient ${i}`));
      expect(g.generatorOffset).toBe(r.generatorOffset);
    }), { numRuns: 30 });
  });
});
