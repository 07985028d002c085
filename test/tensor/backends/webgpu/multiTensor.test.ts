// The multi-tensor kernels (adamwMany, sumSquares, clipByNorm) over random lists of tensors of
// random sizes (empty ones included, and more tensors than one dispatch binds): adamwMany gives bit
// for bit the one-tensor adamw kernel's result and agrees with the CPU; sumSquares and clipByNorm
// agree with the CPU reference; AdamW.step and clipGradNorm on a module agree across backends.

import fc from 'fast-check';
import { expect, it } from 'vitest';
import type { AdamWParams } from '../../../../src/tensor/backend.js';
import { AdamW, clipGradNorm } from '../../../../src/nn/optim.js';
import { sumSquaresLaunch, sumSquaresPartials, sumSquaresTreeLaunch } from '../../../../src/shaders/reduce.js';
import { tensor, type Tensor } from '../../../../src/tensor/index.js';
import { seed, seededValues } from '../../../helpers/backendArbitraries.js';
import { both, cpu, describeGpu, expectClose, gpu, readBoth } from '../../../helpers/webgpu.js';

const RUNS = { numRuns: 12 };
const sizes = fc.array(fc.oneof(fc.constantFrom(0, 1, 3), fc.integer({ min: 1, max: 3000 })), { minLength: 1, maxLength: 40 });
const adamParams: fc.Arbitrary<AdamWParams> = fc.record({
  lr: fc.constantFrom(1e-4, 3e-3, 0.1),
  beta1: fc.constantFrom(0.9, 0.5, 0),
  beta2: fc.constantFrom(0.999, 0.95),
  eps: fc.constantFrom(1e-8, 1e-6),
  weightDecay: fc.constantFrom(0, 0.01, 0.1),
  step: fc.integer({ min: 1, max: 1000 }),
});

describeGpu('webgpu multi-tensor kernels', () => {
  it('adamwMany equals the one-tensor adamw kernel bit for bit and the CPU within 1e-6 + 1e-5·|cpu|', async () => {
    await fc.assert(fc.asyncProperty(sizes, fc.array(adamParams, { minLength: 40, maxLength: 40 }), seed, async (ns, ps, sd) => {
      const make = (n: number, k: number) => ({
        p: seededValues(sd + 4 * k, n), g: seededValues(sd + 4 * k + 1, n),
        m: seededValues(sd + 4 * k + 2, n, -0.1, 0.1), v: seededValues(sd + 4 * k + 3, n, 0, 0.1),
      });
      const data = ns.map(make);
      const up = (b: typeof gpu | typeof cpu) => data.map((d, k) => ({
        param: b.upload('f32', d.p), grad: b.upload('f32', d.g), m: b.upload('f32', d.m), v: b.upload('f32', d.v), p: ps[k],
      }));
      const many = up(gpu);
      const one = up(gpu);
      const ref = up(cpu);
      gpu.adamwMany(many);
      for (const u of one) gpu.adamw(u.param, u.grad, u.m, u.v, u.p);
      cpu.adamwMany(ref);
      for (let k = 0; k < ns.length; k++) {
        for (const slot of ['param', 'm', 'v'] as const) {
          const a = await gpu.read(many[k][slot]);
          const b = await gpu.read(one[k][slot]);
          expect([...a], `${slot} of tensor ${k} (size ${ns[k]})`).toEqual([...b]);
          expectClose(a, cpu.readSync(ref[k][slot]), 1e-6, 1e-5, `adamwMany ${slot} ${k}`);
        }
      }
      for (const u of [...many, ...one]) for (const s of [u.param, u.grad, u.m, u.v]) gpu.free(s);
    }), RUNS);
  });

  it('gated adamwMany: gate 1 equals the ungated step bit for bit, gate 0 (and NaN) changes nothing, on both backends', async () => {
    await fc.assert(fc.asyncProperty(sizes, adamParams, seed, fc.constantFrom(0, 1, NaN), async (ns, p, sd, g) => {
      const data = ns.map((n, k) => [0, 1, 2, 3].map((j) => seededValues(sd + 4 * k + j, n, j === 3 ? 0 : -1, 1)));
      for (const b of [gpu, cpu] as const) {
        const up = () => data.map(([pp, gg, m, v]) => ({ param: b.upload('f32', pp), grad: b.upload('f32', gg), m: b.upload('f32', m), v: b.upload('f32', v), p }));
        const gated = up();
        const plain = up();
        const gate = b.upload('f32', [g]);
        b.adamwMany(gated, gate);
        b.adamwMany(plain);
        for (let k = 0; k < ns.length; k++) {
          for (const [slot, j] of [['param', 0], ['m', 2], ['v', 3]] as const) {
            const got = [...await b.read(gated[k][slot])];
            // A NaN gate is not 0: the step happens (the trainer's gates are exactly 0 or 1).
            const want = g === 0 ? [...Float32Array.from(data[k][j])] : [...await b.read(plain[k][slot])];
            expect(got, `${b.name} gate ${g} ${slot} of tensor ${k}`).toEqual(want);
          }
        }
        for (const u of [...gated, ...plain]) for (const s of [u.param, u.grad, u.m, u.v]) b.free(s);
        b.free(gate);
      }
    }), { numRuns: 8 });
  });

  it('sumSquares over many tensors matches the CPU within 1e-6·Σx²', async () => {
    await fc.assert(fc.asyncProperty(sizes, seed, async (ns, sd) => {
      const pairs = ns.map((n, k) => both('f32', seededValues(sd + k, n)));
      const [g, c] = await readBoth(gpu.sumSquares(pairs.map((p) => p[0])), cpu.sumSquares(pairs.map((p) => p[1])));
      expect(g.length).toBe(1);
      expectClose(g, c, 1e-30, 1e-6, 'sumSquares');
      for (const [x] of pairs) gpu.free(x);
    }), RUNS);
  });

  it('the sumSquares forms: lanes + sumSquaresTree equal the tree partials bit for bit (the backend picks one per adapter), and those sum to the CPU sum within 1e-6·Σx²', async () => {
    const chunk = fc.array(fc.oneof(fc.constantFrom(0, 1, 3), fc.integer({ min: 1, max: 5000 })), { minLength: 1, maxLength: 15 });
    await fc.assert(fc.asyncProperty(chunk, fc.integer({ min: 1, max: 5 }), fc.integer({ min: 0, max: 3 }), seed, async (ns, groups, first, sd) => {
      const values = ns.map((n, k) => seededValues(sd + k, n));
      const xs = values.map((v) => gpu.upload('f32', v));
      // Slots before `first` stay as filled: the kernels write only their own tensors' partials.
      const slots = (per: number) => gpu.upload('f32', new Array((first + ns.length) * groups * per).fill(7));
      const tree = slots(sumSquaresPartials('tree'));
      const lanes = slots(sumSquaresPartials('lanes'));
      const combined = gpu.alloc('f32', (first + ns.length) * groups);
      gpu.runKernel(sumSquaresLaunch(ns, first, groups, 'tree'), xs, [tree]);
      gpu.runKernel(sumSquaresLaunch(ns, first, groups, 'lanes'), xs, [lanes]);
      gpu.runKernel(sumSquaresTreeLaunch((first + ns.length) * groups), [lanes], [combined]);
      const got = Array.from(await gpu.read(tree));
      const fromLanes = Array.from(await gpu.read(combined));
      expect(got.slice(0, first * groups)).toEqual(new Array(first * groups).fill(7));
      expect(fromLanes.slice(first * groups), 'lanes + tree step vs tree').toEqual(got.slice(first * groups));
      const [want] = cpu.readSync(cpu.sumSquares(values.map((v) => cpu.upload('f32', v))));
      expectClose([got.slice(first * groups).reduce((a, b) => a + b, 0)], [want], 1e-30, 1e-6, 'sumSquares partials');
      values.forEach((v, k) => {
        // Each tensor's own partials sum to its own sum of squares.
        const own = got.slice((first + k) * groups, (first + k + 1) * groups).reduce((a, b) => a + b, 0);
        expectClose([own], [v.reduce((a, b) => a + b * b, 0)], 1e-30, 1e-6, `sumSquares tensor ${k}`);
      });
      for (const x of [...xs, tree, lanes, combined]) gpu.free(x);
    }), RUNS);
  });

  it('sumSquares of no non-empty tensor is 0', async () => {
    const [g, c] = await readBoth(gpu.sumSquares([gpu.alloc('f32', 0)]), cpu.sumSquares([cpu.alloc('f32', 0)]));
    expect([...g, ...c]).toEqual([0, 0]);
  });

  it('clipByNorm scales every tensor in place like the CPU within 1e-6·|cpu|', async () => {
    await fc.assert(fc.asyncProperty(sizes, fc.double({ min: 0, max: 20, noNaN: true }), fc.constantFrom(0.5, 1, 5), seed, async (ns, norm, maxNorm, sd) => {
      const pairs = ns.map((n, k) => both('f32', seededValues(sd + k, n)));
      const [ng, nc] = both('f32', [norm]);
      gpu.clipByNorm(pairs.map((p) => p[0]), ng, maxNorm);
      cpu.clipByNorm(pairs.map((p) => p[1]), nc, maxNorm);
      for (const [g, c] of pairs) expectClose(...(await readBoth(g, c)), 1e-30, 1e-6, 'clipByNorm');
      gpu.free(ng);
    }), RUNS);
  });

  it('AdamW.step after clipGradNorm on a list of parameters agrees across backends', async () => {
    await fc.assert(fc.asyncProperty(sizes, fc.constantFrom(0.05, 1, 100), seed, async (ns, maxNorm, sd) => {
      const build = (backend: typeof gpu | typeof cpu) => ns.map((n, k): [string, Tensor] => {
        const p = tensor(seededValues(sd + 2 * k, n), [n], { backend });
        p.requiresGrad = true;
        p.grad = tensor(seededValues(sd + 2 * k + 1, n), [n], { backend });
        return [`p${k}`, p];
      });
      const results: { norm: number; params: Float32Array[] }[] = [];
      for (const backend of [gpu, cpu]) {
        const params = build(backend);
        const opt = new AdamW(params, { lr: 1e-2, weightDecay: 0.01 });
        for (let s = 0; s < 2; s++) {
          const norm = clipGradNorm(params.map(([, p]) => p), maxNorm);
          opt.step();
          results.push({ norm: (await norm.data())[0], params: await Promise.all(params.map(async ([, p]) => (await p.data()) as Float32Array)) });
          norm.dispose();
        }
        opt.dispose();
        for (const [, p] of params) {
          p.grad?.dispose();
          p.dispose();
        }
      }
      for (let s = 0; s < 2; s++) {
        const [g, c] = [results[s], results[s + 2]];
        expectClose([g.norm], [c.norm], 1e-30, 1e-5, `norm at step ${s}`);
        g.params.forEach((x, k) => expectClose(x, c.params[k], 1e-6, 1e-5, `param ${k} at step ${s}`));
      }
    }), RUNS);
  });
});
