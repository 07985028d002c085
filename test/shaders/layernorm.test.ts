// layerNorm kernels agree with the CPU backend: y, mean and rstd forward; dx, dgamma and dbeta
// backward, over random [rows, cols] including 1 x 1, cols = 4099 and rows past 65535, with one
// affine (gamma, beta) or one per group of rows (a stack of models).

import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { layerNormBackwardLaunches, layerNormLaunch } from '../../src/shaders/layernorm.js';
import { ROW_CACHE_MAX_COLS, type RowForm } from '../../src/shaders/rows.js';
import { CpuBackend } from '../../src/tensor/backends/cpu/index.js';
import { expectClose, maxAbs, nanFilled, openHarness, seededFloats } from '../helpers/kernelHarness.js';

const h = await openHarness('layerNorm WGSL tests');
afterAll(() => h?.destroy());
const cpu = new CpuBackend();

interface Case { rows: number; cols: number; seed: number; offset: number; form: RowForm; groups?: number }

const caseArb: fc.Arbitrary<Case> = fc.record({
  rows: fc.oneof(fc.constant(1), fc.integer({ min: 1, max: 9 })),
  cols: fc.oneof(fc.constant(1), fc.integer({ min: 1, max: 70 }), fc.integer({ min: 64, max: 300 }), fc.constant(4099)),
  seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
  // A shared offset in each row tests that the Welford variance does not cancel.
  offset: fc.constantFrom(0, 3, 100),
  form: fc.constantFrom<RowForm>('workgroup', 'invocation'),
  groups: fc.constantFrom(1, 2, 3),
}).map((c) => ({ ...c, rows: c.rows * c.groups }));

async function check(c: Case): Promise<void> {
  const { rows, cols } = c;
  const groups = c.groups ?? 1;
  const x = seededFloats(rows * cols, c.seed, 2).map((v) => v + c.offset);
  const gamma = seededFloats(groups * cols, c.seed + 1, 1.5);
  const beta = seededFloats(groups * cols, c.seed + 2);
  const dy = seededFloats(rows * cols, c.seed + 3);
  const eps = 1e-5;

  const fwd = await h!.run(layerNormLaunch(rows, cols, eps, c.form, groups), [x, gamma, beta, nanFilled(rows * cols), nanFilled(rows), nanFilled(rows)]);
  const ref = cpu.layerNorm(cpu.upload('f32', x), cpu.upload('f32', gamma), cpu.upload('f32', beta), rows, cols, eps, groups);
  const what = `layerNorm ${JSON.stringify(c)}`;
  // mean: f32 sum of cols terms; rstd: relative; y = xhat * gamma + beta with |xhat| <= sqrt(cols).
  const scale = Math.abs(c.offset) + 2;
  expectClose(`${what} mean`, fwd[4]!, cpu.readSync(ref.mean), () => 1e-6 * scale * (1 + Math.sqrt(cols)));
  expectClose(`${what} rstd`, fwd[5]!, cpu.readSync(ref.rstd), (w) => 1e-5 * Math.abs(w) * (1 + scale / 2));
  expectClose(`${what} y`, fwd[3]!, cpu.readSync(ref.y), (w) => 1e-5 * (1 + Math.abs(w)) * (1 + scale / 2));

  // Backward from the CPU's saved statistics, so it is tested on its own.
  const mean = cpu.readSync(ref.mean) as Float32Array;
  const rstd = cpu.readSync(ref.rstd) as Float32Array;
  const launches = layerNormBackwardLaunches(rows, cols, c.form, groups);
  const out = await h!.runSteps(
    [
      { launch: launches.dx, bind: ['dy', 'x', 'gamma', 'mean', 'rstd', 'dx'] },
      { launch: launches.params, bind: ['dy', 'x', 'mean', 'rstd', 'dgamma', 'dbeta'] },
    ],
    { dy, x, gamma, mean, rstd, dx: nanFilled(rows * cols), dgamma: nanFilled(groups * cols), dbeta: nanFilled(groups * cols) },
  );
  const d = cpu.layerNormBackward(cpu.upload('f32', dy), cpu.upload('f32', x), cpu.upload('f32', gamma),
    cpu.upload('f32', mean), cpu.upload('f32', rstd), rows, cols, groups);
  // dx mixes row sums of cols terms, each up to |gamma| * sqrt(cols) in size, times rstd.
  const dxTol = 2e-6 * maxAbs(rstd) * (1 + cols) * (1 + scale / 2);
  expectClose(`${what} dx`, out.dx!, cpu.readSync(d.dx), () => dxTol);
  expectClose(`${what} dgamma`, out.dgamma!, cpu.readSync(d.dgamma!), () => 1e-5 * rows * (1 + scale / 2));
  expectClose(`${what} dbeta`, out.dbeta!, cpu.readSync(d.dbeta!), () => 1e-6 * rows);
}

describe.skipIf(!h)('layerNorm WGSL', () => {
  it('forward and backward match the CPU on random shapes', async () => {
    await fc.assert(fc.asyncProperty(caseArb, check), { numRuns: 25 });
  });

  it('70000 rows of 3 columns (rows spill into workgroup y), both row forms', async () => {
    await check({ rows: 70000, cols: 3, seed: 5, offset: 1, form: 'workgroup' });
    await check({ rows: 70000, cols: 3, seed: 5, offset: 1, form: 'invocation' });
  });

  it('a large offset (1e4) with small spread: Welford keeps the variance, both row forms', async () => {
    for (const form of ['workgroup', 'invocation'] as const) await check({ rows: 3, cols: 257, seed: 11, offset: 1e4, form });
  });

  // The fold backward uses for a residual connection: dx = dxAdd + gradient must be exactly the
  // f32 add of the two, so a training step's numbers do not change with the fold.
  it('dx with dxAdd is bit for bit dxAdd + dx, both row forms, like the CPU', async () => {
    await fc.assert(fc.asyncProperty(caseArb, async (c) => {
      const { rows, cols } = c;
      const groups = c.groups ?? 1;
      const x = seededFloats(rows * cols, c.seed, 2).map((v) => v + c.offset);
      const gamma = seededFloats(groups * cols, c.seed + 1, 1.5);
      const dy = seededFloats(rows * cols, c.seed + 3);
      const add = seededFloats(rows * cols, c.seed + 4, 3);
      const ref = cpu.layerNorm(cpu.upload('f32', x), cpu.upload('f32', gamma), cpu.upload('f32', gamma), rows, cols, 1e-5, groups);
      const mean = cpu.readSync(ref.mean) as Float32Array;
      const rstd = cpu.readSync(ref.rstd) as Float32Array;
      const plain = layerNormBackwardLaunches(rows, cols, c.form, groups);
      const folded = layerNormBackwardLaunches(rows, cols, c.form, groups, true);
      const out = await h!.runSteps(
        [
          { launch: plain.dx, bind: ['dy', 'x', 'gamma', 'mean', 'rstd', 'dx'] },
          { launch: folded.dx, bind: ['dy', 'x', 'gamma', 'mean', 'rstd', 'add', 'dxSum'] },
        ],
        { dy, x, gamma, mean, rstd, add, dx: nanFilled(rows * cols), dxSum: nanFilled(rows * cols) },
      );
      const what = `layerNorm dx + add ${JSON.stringify(c)}`;
      for (let i = 0; i < rows * cols; i++) {
        const want = Math.fround(add[i] + out.dx![i]);
        if (!Object.is(out.dxSum![i], want)) throw new Error(`${what}: element ${i} is ${out.dxSum![i]}, dxAdd + dx = ${want}`);
      }
      const args = [cpu.upload('f32', dy), cpu.upload('f32', x), cpu.upload('f32', gamma), cpu.upload('f32', mean), cpu.upload('f32', rstd), rows, cols, groups, false] as const;
      const cpuDx = cpu.readSync(cpu.layerNormBackward(...args).dx);
      const cpuSum = cpu.readSync(cpu.layerNormBackward(...args, cpu.upload('f32', add)).dx);
      for (let i = 0; i < rows * cols; i++) {
        if (!Object.is(cpuSum[i], Math.fround(add[i] + cpuDx[i]))) throw new Error(`${what}: CPU element ${i} is ${cpuSum[i]}, dxAdd + dx = ${Math.fround(add[i] + cpuDx[i])}`);
      }
    }), { numRuns: 20 });
  });

  // The cached forward (rows held in registers; the backend's choice on a GPU) against the CPU, and
  // bit for bit against the uncached workgroup form.
  it('cached forward matches the CPU and the uncached workgroup form bit for bit, up to 2048 columns', async () => {
    const arb = caseArb.map((c) => ({ ...c, cols: 1 + ((c.cols - 1) % ROW_CACHE_MAX_COLS), form: 'workgroup' as const }));
    await fc.assert(fc.asyncProperty(arb, async (c) => {
      const { rows, cols } = c;
      const groups = c.groups ?? 1;
      const x = seededFloats(rows * cols, c.seed, 2).map((v) => v + c.offset);
      const gamma = seededFloats(groups * cols, c.seed + 1, 1.5);
      const beta = seededFloats(groups * cols, c.seed + 2);
      const bufs = () => [x, gamma, beta, nanFilled(rows * cols), nanFilled(rows), nanFilled(rows)];
      const cached = await h!.run(layerNormLaunch(rows, cols, 1e-5, 'workgroup', groups, true), bufs());
      const plain = await h!.run(layerNormLaunch(rows, cols, 1e-5, 'workgroup', groups), bufs());
      const ref = cpu.layerNorm(cpu.upload('f32', x), cpu.upload('f32', gamma), cpu.upload('f32', beta), rows, cols, 1e-5, groups);
      const scale = Math.abs(c.offset) + 2;
      expectClose(`cached layerNorm ${JSON.stringify(c)} y`, cached[3]!, cpu.readSync(ref.y), (w) => 1e-5 * (1 + Math.abs(w)) * (1 + scale / 2));
      for (const k of [3, 4, 5]) {
        for (let i = 0; i < cached[k]!.length; i++) {
          if (!Object.is(cached[k]![i], plain[k]![i])) throw new Error(`cached layerNorm ${JSON.stringify(c)} output ${k} element ${i}: ${cached[k]![i]}, uncached ${plain[k]![i]}`);
        }
      }
    }), { numRuns: 20 });
    expect(() => layerNormLaunch(2, 8, 1e-5, 'invocation', 1, true)).toThrowError(/workgroup-per-row/);
  });
});
