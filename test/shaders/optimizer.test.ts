// The AdamW kernel updates param, m and v in place like the CPU backend's adamw, over random
// sizes, hyperparameters and step numbers (bias correction included).

import fc from 'fast-check';
import { afterAll, describe, it } from 'vitest';
import { adamwLaunch } from '../../src/shaders/optimizer.js';
import type { AdamWParams } from '../../src/tensor/backend.js';
import { CpuBackend } from '../../src/tensor/backends/cpu/index.js';
import { expectClose, openHarness, sampleIndices, seededFloats } from '../helpers/kernelHarness.js';

const h = await openHarness('optimizer WGSL tests');
afterAll(() => h?.destroy());
const cpu = new CpuBackend();

const paramsArb: fc.Arbitrary<AdamWParams> = fc.record({
  lr: fc.constantFrom(1e-4, 3e-3, 0.1),
  beta1: fc.constantFrom(0.9, 0.5, 0),
  beta2: fc.constantFrom(0.999, 0.95),
  eps: fc.constantFrom(1e-8, 1e-6),
  weightDecay: fc.constantFrom(0, 0.01, 0.1),
  step: fc.integer({ min: 1, max: 10000 }),
});

async function check(size: number, p: AdamWParams, seed: number): Promise<void> {
  const param = seededFloats(size, seed);
  const grad = seededFloats(size, seed + 1, 0.1);
  const m = seededFloats(size, seed + 2, 0.01);
  const v = seededFloats(size, seed + 3, 1e-4).map(Math.abs);
  const [pOut, , mOut, vOut] = await h!.run(adamwLaunch(size, p), [param.slice(), grad, m.slice(), v.slice()]);
  const [P, G, M, V] = [param, grad, m, v].map((a) => cpu.upload('f32', a));
  cpu.adamw(P!, G!, M!, V!, p);
  const what = `adamw size ${size} ${JSON.stringify(p)}`;
  // m and v: f32 arithmetic against the CPU's f64-then-round. The two terms of m can cancel, so the
  // bound is relative to the terms, not to the result.
  expectClose(`${what} m`, mOut!, cpu.readSync(M!), (_, i) => 3e-7 * (Math.abs(m[i]!) + Math.abs(grad[i]!)));
  expectClose(`${what} v`, vOut!, cpu.readSync(V!), (_, i) => 3e-7 * (Math.abs(v[i]!) + grad[i]! ** 2));
  // param: the formula in f64 on the GPU's own m and v (so the m tolerance is not amplified by
  // 1 / sqrt(v)), relative to |param| and to the size of the update.
  const bc1 = 1 - p.beta1 ** p.step;
  const bc2 = 1 - p.beta2 ** p.step;
  const want = new Float64Array(size);
  const stepSize = new Float64Array(size);
  for (let i = 0; i < size; i++) {
    const update = mOut![i]! / bc1 / (Math.sqrt(vOut![i]! / bc2) + p.eps);
    stepSize[i] = Math.abs(p.lr * update);
    want[i] = param[i]! * (1 - p.lr * p.weightDecay) - p.lr * update;
  }
  expectClose(`${what} param`, pOut!, want, (w, i) => 3e-7 * Math.abs(w) + 2e-6 * stepSize[i]!);
}

describe.skipIf(!h)('optimizer WGSL', () => {
  it('adamw matches the CPU in place on param, m and v', async () => {
    await fc.assert(fc.asyncProperty(fc.integer({ min: 1, max: 3000 }), paramsArb, fc.integer({ min: 0, max: 2 ** 30 }), check), { numRuns: 20 });
  });

  it('more than 65535 workgroups (flat index over x and y), param checked on a sample and the last workgroups', async () => {
    const size = 256 * 65535 + 3;
    const p: AdamWParams = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, step: 3 };
    // Periodic inputs are cheap to make at 16.8M elements and still tell neighbours apart; m and
    // grad share a sign, so m cannot cancel and param gets a plain relative bound.
    const param = new Float32Array(size);
    const grad = new Float32Array(size);
    const m = new Float32Array(size);
    const v = new Float32Array(size);
    for (let i = 0; i < size; i++) {
      param[i] = ((i % 1009) - 504) / 504;
      grad[i] = 0.1 * (1 + (i % 13)) / 13;
      m[i] = 0.01 * (1 + (i % 7)) / 7;
      v[i] = 1e-4 * (1 + (i % 11)) / 11;
    }
    const [pOut] = await h!.run(adamwLaunch(size, p), [param, grad, m, v], [0]);
    const idx = sampleIndices(size);
    const [P, G, M, V] = [param, grad, m, v].map((a) => cpu.upload('f32', idx.map((i) => a[i]!)));
    cpu.adamw(P!, G!, M!, V!, p);
    const want = cpu.readSync(P!);
    const before = idx.map((i) => param[i]!);
    // Relative to |param| and to the step taken (at most about lr here).
    expectClose('adamw past 65535 workgroups', idx.map((i) => pOut![i]!), want, (w, k) => 3e-7 * Math.abs(w) + 2e-6 * Math.abs(w - before[k]!) + 1e-9);
  });
});
