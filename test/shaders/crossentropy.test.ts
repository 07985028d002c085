// gatherLogProbs kernels agree with the CPU backend: logp and lse forward, dlogits backward, with
// ignored (negative) targets, cols = 1 and 4099, and rows past 65535.

import fc from 'fast-check';
import { afterAll, describe, it } from 'vitest';
import { gatherLogProbsBackwardLaunch, gatherLogProbsLaunch } from '../../src/shaders/crossentropy.js';
import type { RowForm } from '../../src/shaders/rows.js';
import { CpuBackend } from '../../src/tensor/backends/cpu/index.js';
import { expectClose, nanFilled, openHarness, seededFloats } from '../helpers/kernelHarness.js';

const h = await openHarness('cross-entropy WGSL tests');
afterAll(() => h?.destroy());
const cpu = new CpuBackend();

interface Case { rows: number; cols: number; seed: number; form: RowForm; maxGroups: number }

const caseArb: fc.Arbitrary<Case> = fc.record({
  rows: fc.oneof(fc.constant(1), fc.integer({ min: 1, max: 12 })),
  cols: fc.oneof(fc.constant(1), fc.integer({ min: 1, max: 70 }), fc.integer({ min: 64, max: 300 }), fc.constant(4099)),
  seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
  form: fc.constantFrom<RowForm>('workgroup', 'invocation'),
  // The backward's grid-stride cap: 1 makes one workgroup loop over every logit.
  maxGroups: fc.constantFrom(1, 3, 4096),
});

async function check(c: Case): Promise<void> {
  const { rows, cols } = c;
  const logits = seededFloats(rows * cols, c.seed, 8);
  // About a quarter of the targets are ignored (-1 or -100).
  const targets = Int32Array.from(seededFloats(rows, c.seed + 1), (u, r) =>
    u < -0.5 ? (r % 2 ? -1 : -100) : Math.floor(((u + 1) / 2) * cols) % cols);
  const dlogp = seededFloats(rows, c.seed + 2, 3);
  const what = `gatherLogProbs ${JSON.stringify(c)}`;

  const [, , logp, lse] = await h!.run(gatherLogProbsLaunch(rows, cols, c.form), [logits, targets, nanFilled(rows), nanFilled(rows)]);
  const ref = cpu.gatherLogProbs(cpu.upload('f32', logits), cpu.upload('i32', targets), rows, cols);
  // lse and logp are |values| up to ~8 + ln(cols): f32 rounding relative to 1 + |value|.
  expectClose(`${what} lse`, lse!, cpu.readSync(ref.lse), (w) => 1e-6 * (1 + Math.abs(w)));
  expectClose(`${what} logp`, logp!, cpu.readSync(ref.logp), (w) => 2e-6 * (1 + Math.abs(w)));

  const lseRef = cpu.readSync(ref.lse) as Float32Array;
  const [, , , , dlogits] = await h!.run(gatherLogProbsBackwardLaunch(rows, cols, c.maxGroups), [dlogp, logits, lseRef, targets, nanFilled(rows * cols)]);
  const want = cpu.readSync(cpu.gatherLogProbsBackward(cpu.upload('f32', dlogp), cpu.upload('f32', logits),
    cpu.upload('f32', lseRef), cpu.upload('i32', targets), rows, cols));
  // |dlogp| <= 3 times a probability carrying f32 rounding of logits - lse (|.| <= ~20).
  expectClose(`${what} dlogits`, dlogits!, want, () => 1e-5);
}

describe.skipIf(!h)('cross-entropy WGSL', () => {
  it('forward and backward match the CPU; negative targets give 0 and zero gradient rows', async () => {
    await fc.assert(fc.asyncProperty(caseArb, check), { numRuns: 25 });
  });

  it('70000 rows of 3 columns (rows spill into workgroup y), both row forms', async () => {
    await check({ rows: 70000, cols: 3, seed: 9, form: 'workgroup', maxGroups: 4096 });
    await check({ rows: 70000, cols: 3, seed: 9, form: 'invocation', maxGroups: 16 });
  });
});
