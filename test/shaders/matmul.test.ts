// Every matmul variant agrees with the CPU backend over random batched, broadcast and transposed
// shapes, including sizes that are not multiples of any tile and a batch past 65535 workgroups.

import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { chooseMatmulVariant, MATMUL_VARIANTS, matmulLaunch, type MatmulVariant } from '../../src/shaders/matmul.js';
import type { MatmulParams } from '../../src/tensor/backend.js';
import { CpuBackend } from '../../src/tensor/backends/cpu/index.js';
import { expectClose, maxAbs, nanFilled, openHarness, seededFloats } from '../helpers/kernelHarness.js';

const h = await openHarness('matmul WGSL tests');
afterAll(() => h?.destroy());
const cpu = new CpuBackend();

interface Case {
  batch: number[];
  aBroadcast: boolean[];
  bBroadcast: boolean[];
  m: number;
  n: number;
  k: number;
  transA: boolean;
  transB: boolean;
  seed: number;
}

function contiguous(shape: number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i]!;
  }
  return s;
}

async function check(c: Case, variant: MatmulVariant): Promise<void> {
  const { m, n, k } = c;
  // Each operand stores its own batch shape (1 where broadcast); its batch strides are 0 there.
  const aShape = c.batch.map((d, i) => (c.aBroadcast[i] ? 1 : d));
  const bShape = c.batch.map((d, i) => (c.bBroadcast[i] ? 1 : d));
  const aStrides = contiguous(aShape).map((s, i) => (aShape[i] === 1 ? 0 : s * m * k));
  const bStrides = contiguous(bShape).map((s, i) => (bShape[i] === 1 ? 0 : s * k * n));
  const aCount = aShape.reduce((x, y) => x * y, 1);
  const bCount = bShape.reduce((x, y) => x * y, 1);
  const batch = c.batch.reduce((x, y) => x * y, 1);
  const a = seededFloats(aCount * m * k, c.seed);
  const b = seededFloats(bCount * k * n, c.seed + 1, 2);
  const p: MatmulParams = { batchShape: c.batch, aBatchStrides: aStrides, bBatchStrides: bStrides, m, n, k, transA: c.transA, transB: c.transB };
  const [, , out] = await h!.run(matmulLaunch(p, variant), [a, b, nanFilled(batch * m * n)]);
  const want = cpu.readSync(cpu.matmul(cpu.upload('f32', a), cpu.upload('f32', b), p));
  // f32 accumulation of k terms each at most max|a|·max|b|: rounding error grows like sqrt(k)·eps
  // relative to that sum in practice (k·eps in the worst case), so allow 2·eps·k^1.5·max|a|·max|b|.
  const tol = 2.5e-7 * k * Math.sqrt(k) * maxAbs(a) * maxAbs(b) + 1e-7;
  expectClose(`matmul[${variant}] ${JSON.stringify(c)}`, out!, want, () => tol);
}

const dim = fc.integer({ min: 1, max: 3 });
const caseArb: fc.Arbitrary<Case> = fc.integer({ min: 0, max: 3 }).chain((rank) =>
  fc.record({
    batch: fc.array(dim, { minLength: rank, maxLength: rank }),
    aBroadcast: fc.array(fc.boolean(), { minLength: rank, maxLength: rank }),
    bBroadcast: fc.array(fc.boolean(), { minLength: rank, maxLength: rank }),
    m: fc.oneof(fc.integer({ min: 1, max: 9 }), fc.integer({ min: 1, max: 80 })),
    n: fc.oneof(fc.integer({ min: 1, max: 9 }), fc.integer({ min: 1, max: 80 })),
    k: fc.oneof(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 70 })),
    transA: fc.boolean(),
    transB: fc.boolean(),
    seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
  }),
);

describe.skipIf(!h)('matmul WGSL', () => {
  for (const variant of MATMUL_VARIANTS) {
    it(`${variant} matches the CPU on random batched, broadcast, transposed shapes`, async () => {
      await fc.assert(fc.asyncProperty(caseArb, (c) => check(c, variant)), { numRuns: 20 });
    });

    it(`${variant} handles k = 0 (zeros) and 65537 batch elements (batch folded into y)`, async () => {
      await check({ batch: [], aBroadcast: [], bBroadcast: [], m: 5, n: 6, k: 0, transA: false, transB: false, seed: 1 }, variant);
      await check({ batch: [65537], aBroadcast: [false], bBroadcast: [true], m: 2, n: 3, k: 2, transA: false, transB: true, seed: 2 }, variant);
    });
  }

  it('one pipeline per variant serves every shape', () => {
    expect(h!.pipelineCount()).toBe(MATMUL_VARIANTS.length);
  });

  it('the chooser prefers register blocking on a software adapter and tiles on hardware', () => {
    const p: MatmulParams = { batchShape: [], aBatchStrides: [], bBatchStrides: [], m: 512, n: 512, k: 512, transA: false, transB: false };
    expect(chooseMatmulVariant(p, true).startsWith('register')).toBe(true);
    expect(chooseMatmulVariant(p, false)).toBe('tiled64');
  });
});
