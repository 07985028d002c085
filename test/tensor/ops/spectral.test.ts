// spectralNormalize: W/σ (σ = uᵀ W v) equals its composition with u and v held constant, in values
// and gradients (f64 CPU), updates u and v like powerIteration when iterating, keeps the backward on
// the u and v it used, passes gradcheck, and agrees between WebGPU and the CPU.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { backward, clone, cpu, div, Generator, gradcheck, keep, matmulT, mul, randn, reshape, sum, tidy, type Backend, type Tensor } from '../../../src/tensor/index.js';
import { spectralNormalize } from '../../../src/tensor/ops/spectral.js';
import { describeGpu, gpu } from '../../helpers/webgpu.js';

interface Case { batch: number[]; rows: number; cols: number; seed: number }

const caseArb: fc.Arbitrary<Case> = fc.record({
  batch: fc.array(fc.integer({ min: 1, max: 3 }), { maxLength: 2 }),
  rows: fc.integer({ min: 1, max: 7 }), cols: fc.integer({ min: 1, max: 7 }), seed: fc.integer({ min: 0, max: 10_000 }),
});

function build(c: Case, backend: Backend, dtype: 'f32' | 'f64') {
  const g = new Generator(c.seed);
  const o = { backend, dtype, generator: g };
  return {
    w: randn([...c.batch, c.rows, c.cols], o),
    u: randn([...c.batch, c.rows], o),
    v: randn([...c.batch, c.cols], o),
    r: randn([...c.batch, c.rows, c.cols], o),
  };
}

/** W / (uᵀ W v) composed from matmuls, with copies of u and v as constants. */
function composed(w: Tensor, u: Tensor, v: Tensor): Tensor {
  const [rows, cols] = w.shape.slice(-2);
  const lead = w.shape.slice(0, -2);
  const uc = reshape(clone(u), [...lead, 1, rows]);
  const vc = reshape(clone(v), [...lead, cols, 1]);
  return div(w, matmulT(uc, matmulT(w, vc)));
}

describe('spectralNormalize (CPU)', () => {
  it('equals the composed W / (uᵀ W v) in values and gradient (f64, within 1e-12)', () => {
    fc.assert(fc.property(caseArb, (c) => {
      tidy(() => {
        const run = (f: (w: Tensor, u: Tensor, v: Tensor) => Tensor) => {
          const { w, u, v, r } = build(c, cpu, 'f64');
          w.requiresGrad = true;
          const y = f(w, u, v);
          backward(sum(mul(y, r)));
          return [y, w.grad!].map((t) => Array.from(t.dataSync()));
        };
        const got = run((w, u, v) => spectralNormalize(w, u, v));
        const want = run(composed);
        got.forEach((xs, n) => xs.forEach((x, i) => expect(Math.abs(x - want[n][i]), `tensor ${n} at ${i}`).toBeLessThan(1e-12 * (1 + Math.abs(want[n][i])))));
      });
    }), { numRuns: 40 });
  });

  it('with iterate, updates u and v as powerIteration does, normalizes with the new ones, and its backward keeps them', () => {
    fc.assert(fc.property(caseArb, (c) => {
      tidy(() => {
        const a = build(c, cpu, 'f64');
        const b = build(c, cpu, 'f64');
        const batch = a.w.size / (c.rows * c.cols);
        a.w.requiresGrad = true;
        const y = spectralNormalize(a.w, a.u, a.v, { iterate: true });
        cpu.powerIteration(b.w.storage, b.u.storage, b.v.storage, c.rows, c.cols, 1e-12, batch);
        expect(Array.from(a.u.dataSync())).toEqual(Array.from(b.u.dataSync()));
        expect(Array.from(a.v.dataSync())).toEqual(Array.from(b.v.dataSync()));
        const want = composed(b.w, b.u, b.v).dataSync();
        y.dataSync().forEach((x, i) => expect(Math.abs(x - want[i])).toBeLessThan(1e-12 * (1 + Math.abs(want[i]))));
        // A later iteration moves u and v; this forward's backward still uses the ones it saw.
        b.w.requiresGrad = true;
        const wantGrad = (() => {
          backward(sum(mul(composed(b.w, b.u, b.v), b.r)));
          return Array.from(b.w.grad!.dataSync());
        })();
        spectralNormalize(a.w, a.u, a.v, { iterate: true });
        backward(sum(mul(y, a.r)));
        a.w.grad!.dataSync().forEach((x, i) => expect(Math.abs(x - wantGrad[i])).toBeLessThan(1e-12 * (1 + Math.abs(wantGrad[i]))));
      });
    }), { numRuns: 25 });
  });

  it('passes gradcheck in f64', () => {
    fc.assert(fc.property(caseArb, (c) => {
      tidy(() => {
        const { w, u, v, r } = build(c, cpu, 'f64');
        const res = gradcheck((x) => sum(mul(spectralNormalize(x, u, v), r)), [w]);
        expect(res.ok, res.report).toBe(true);
      });
    }), { numRuns: 20 });
  });

  it('names the shapes when u or v do not fit the weight', () => {
    tidy(() => {
      const w = randn([2, 3, 4], { backend: cpu });
      expect(() => spectralNormalize(w, randn([2, 4], { backend: cpu }), randn([2, 4], { backend: cpu }))).toThrow(/spectralNormalize: u \[2, 4\] and v \[2, 4\] must hold 2×3 and 2×4/);
    });
  });
});

describeGpu('spectralNormalize on WebGPU', () => {
  it('values, u, v and the weight gradient match the CPU within 1e-5 + 1e-4·|cpu|', async () => {
    await fc.assert(fc.asyncProperty(caseArb, fc.boolean(), async (c, iterate) => {
      const run = async (backend: Backend) => {
        const out = tidy(() => {
          const { w, u, v, r } = build(c, backend, 'f32');
          // One iteration first, so σ is near the top singular value, far from 0 (f32 on both sides).
          spectralNormalize(w, u, v, { iterate: true });
          w.requiresGrad = true;
          const y = spectralNormalize(w, u, v, { iterate });
          backward(sum(mul(y, r)));
          return [y.detach(), mul(w.grad!, 1), u, v].map((t) => keep(t));
        });
        const values = await Promise.all(out.map(async (t) => Array.from(await t.data())));
        for (const t of out) t.dispose();
        return values;
      };
      const g = await run(gpu);
      const want = await run(cpu);
      g.forEach((xs, n) => xs.forEach((x, i) => expect(Math.abs(x - want[n][i]), `tensor ${n} at ${i}`).toBeLessThan(1e-5 + 1e-4 * Math.abs(want[n][i]))));
    }), { numRuns: 15 });
  });
});
