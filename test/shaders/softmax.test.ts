// softmax / log-softmax kernels agree with the CPU backend, forward and backward, over random
// [rows, cols] including cols = 1, cols = 4099, multiples of 4 up to 4096, rows past 65535, and
// rows holding -inf.

import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { softmaxBackwardLaunch, softmaxLaunch } from '../../src/shaders/softmax.js';
import { ROW_CACHE_MAX_COLS, ROW_WORKGROUP, rowCacheSize, type RowForm } from '../../src/shaders/rows.js';
import { CpuBackend } from '../../src/tensor/backends/cpu/index.js';
import { expectClose, nanFilled, openHarness, seededFloats } from '../helpers/kernelHarness.js';

const h = await openHarness('softmax WGSL tests');
afterAll(() => h?.destroy());
const cpu = new CpuBackend();

interface Case { rows: number; cols: number; log: boolean; seed: number; masked: boolean; form: RowForm }

const caseArb: fc.Arbitrary<Case> = fc.record({
  rows: fc.oneof(fc.constant(1), fc.integer({ min: 1, max: 9 })),
  // Multiples of 4 (the usual model widths) up to 4096, where the four-loads-per-step loop takes most of the row.
  cols: fc.oneof(fc.constant(1), fc.integer({ min: 1, max: 70 }), fc.integer({ min: 64, max: 300 }), fc.constant(4099), fc.integer({ min: 1, max: 300 }).map((x) => 4 * x), fc.constant(4096)),
  log: fc.boolean(),
  seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
  masked: fc.boolean(),
  form: fc.constantFrom<RowForm>('workgroup', 'invocation'),
});

/** Inputs in [-10, 10); when masked, every third element is -inf and row 0 is -inf throughout. */
function inputs(c: Case): Float32Array {
  const x = seededFloats(c.rows * c.cols, c.seed, 10);
  if (c.masked) {
    for (let i = 0; i < x.length; i += 3) x[i] = -Infinity;
    x.fill(-Infinity, 0, c.cols);
  }
  return x;
}

// softmax values are <= 1 and carry f32 rounding of x - lse (|x - lse| <= ~30 here): 2e-6
// absolute. log-softmax values are x - lse themselves: 1e-6 relative to 1 + |value|.
const forwardTol = (log: boolean) => (w: number) => (log ? 1e-6 * (1 + Math.abs(w)) : 2e-6);

async function checkForward(c: Case): Promise<void> {
  const x = inputs(c);
  const [, out] = await h!.run(softmaxLaunch(c.rows, c.cols, c.log, c.form), [x, nanFilled(x.length)]);
  const want = cpu.readSync(cpu.softmax(cpu.upload('f32', x), c.rows, c.cols, c.log));
  expectClose(`softmax ${JSON.stringify(c)}`, out!, want, forwardTol(c.log));
}

async function checkBackward(c: Case): Promise<void> {
  const x = seededFloats(c.rows * c.cols, c.seed, 5);
  const y = cpu.readSync(cpu.softmax(cpu.upload('f32', x), c.rows, c.cols, c.log)) as Float32Array;
  const dy = seededFloats(x.length, c.seed + 7);
  const [, , dx] = await h!.run(softmaxBackwardLaunch(c.rows, c.cols, c.log, c.form), [y, dy, nanFilled(x.length)]);
  const want = cpu.readSync(cpu.softmaxBackward(cpu.upload('f32', y), cpu.upload('f32', dy), c.rows, c.cols, c.log));
  // The row sum of cols terms (|dy| <= 1) is rounded in f32: allow 1e-6 * (1 + sqrt(cols)).
  const tol = 1e-6 * (1 + Math.sqrt(c.cols));
  expectClose(`softmaxBackward ${JSON.stringify(c)}`, dx!, want, () => tol);
}

describe.skipIf(!h)('softmax WGSL', () => {
  it('forward matches the CPU (fully -inf rows give NaN like the CPU, partly -inf rows are finite)', async () => {
    await fc.assert(fc.asyncProperty(caseArb, checkForward), { numRuns: 25 });
  });

  it('backward matches the CPU for softmax and log-softmax', async () => {
    await fc.assert(fc.asyncProperty(caseArb, checkBackward), { numRuns: 25 });
  });

  it('65537 rows of 3 columns (rows spill into workgroup y), each kernel once', async () => {
    // log is a uniform, not a variant: one mode per kernel covers both pipelines.
    const before = h!.pipelineCount();
    for (const form of ['workgroup', 'invocation'] as const) {
      await checkForward({ rows: 65537, cols: 3, log: false, seed: 3, masked: false, form });
      await checkBackward({ rows: 65537, cols: 3, log: true, seed: 4, masked: false, form });
    }
    // At most one pipeline each way per row form, for every shape and both modes.
    expect(h!.pipelineCount() - before).toBeLessThanOrEqual(4);
  });

  // The cached form (rows held in registers; the backend's choice on a GPU) against the CPU, and
  // bit for bit against the uncached workgroup form it must agree with.
  const cachedArb = caseArb.map((c) => ({ ...c, cols: 1 + ((c.cols - 1) % ROW_CACHE_MAX_COLS), form: 'workgroup' as const }));

  it('cached forward matches the CPU and the uncached workgroup form bit for bit, up to 2048 columns', async () => {
    await fc.assert(fc.asyncProperty(cachedArb, async (c) => {
      const x = inputs(c);
      const [, cached] = await h!.run(softmaxLaunch(c.rows, c.cols, c.log, 'workgroup', true), [x, nanFilled(x.length)]);
      const [, plain] = await h!.run(softmaxLaunch(c.rows, c.cols, c.log, 'workgroup'), [x, nanFilled(x.length)]);
      const want = cpu.readSync(cpu.softmax(cpu.upload('f32', x), c.rows, c.cols, c.log));
      expectClose(`cached softmax ${JSON.stringify(c)}`, cached!, want, forwardTol(c.log));
      for (let i = 0; i < x.length; i++) {
        if (!Object.is(cached![i], plain![i])) throw new Error(`cached softmax ${JSON.stringify(c)}: element ${i} is ${cached![i]}, uncached ${plain![i]}`);
      }
    }), { numRuns: 25 });
  });

  it('cached form: each width class is one pipeline (4, 8, 16 or 32 values per lane); longer rows are refused', () => {
    const W = ROW_WORKGROUP;
    expect([1, 4 * W, 4 * W + 1, 8 * W, 8 * W + 1, 16 * W, 16 * W + 1, 32 * W].map(rowCacheSize)).toEqual([4, 4, 8, 8, 16, 16, 32, 32]);
    expect(ROW_CACHE_MAX_COLS).toBe(32 * W);
    expect(() => softmaxLaunch(2, 32 * W + 1, false, 'workgroup', true)).toThrowError(new RegExp(`${32 * W + 1} columns`));
    expect(() => softmaxLaunch(2, 8, false, 'invocation', true)).toThrowError(/workgroup-per-row/);
  });
});
