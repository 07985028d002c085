// indexSelect and indexAdd kernels agree with the CPU backend over random [outer, dim, inner] views
// and index lists with repeats; indexAdd sums in index order like the CPU, so it is bit-identical.

import fc from 'fast-check';
import { afterAll, describe, it } from 'vitest';
import { indexAddLaunch, indexSelectLaunch } from '../../src/shaders/embedding.js';
import { CpuBackend } from '../../src/tensor/backends/cpu/index.js';
import { expectClose, nanFilled, openHarness, seededFloats } from '../helpers/kernelHarness.js';

const h = await openHarness('embedding WGSL tests');
afterAll(() => h?.destroy());
const cpu = new CpuBackend();

interface Case { outer: number; dim: number; inner: number; nIdx: number; seed: number }

const caseArb: fc.Arbitrary<Case> = fc.record({
  outer: fc.integer({ min: 1, max: 3 }),
  dim: fc.oneof(fc.constant(1), fc.integer({ min: 1, max: 40 })),
  inner: fc.oneof(fc.constant(1), fc.integer({ min: 1, max: 70 })),
  nIdx: fc.oneof(fc.constant(1), fc.integer({ min: 1, max: 50 })),
  seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
});

function indices(c: Case): Int32Array {
  return Int32Array.from(seededFloats(c.nIdx, c.seed), (u) => Math.floor(((u + 1) / 2) * c.dim) % c.dim);
}

async function checkSelect(c: Case): Promise<void> {
  const x = seededFloats(c.outer * c.dim * c.inner, c.seed + 1);
  const idx = indices(c);
  const [, , out] = await h!.run(indexSelectLaunch(c.outer, c.dim, c.inner, c.nIdx), [x, idx, nanFilled(c.outer * c.nIdx * c.inner)]);
  const want = cpu.readSync(cpu.indexSelect(cpu.upload('f32', x), cpu.upload('i32', idx), c.outer, c.dim, c.inner));
  expectClose(`indexSelect ${JSON.stringify(c)}`, out!, want, () => 0); // a copy: exact
}

async function checkAdd(c: Case, integerValued: boolean): Promise<void> {
  const raw = seededFloats(c.outer * c.nIdx * c.inner, c.seed + 2, integerValued ? 50 : 1);
  const src = integerValued ? raw.map(Math.round) : raw;
  const idx = indices(c);
  const [, , out] = await h!.run(indexAddLaunch(c.outer, c.dim, c.inner, c.nIdx), [src, idx, nanFilled(c.outer * c.dim * c.inner)]);
  const want = cpu.readSync(cpu.indexAdd(cpu.upload('f32', src), cpu.upload('i32', idx), c.outer, c.dim, c.inner));
  // Same summation order as the CPU (index order, from 0) with f32 adds on both sides: bit-identical.
  expectClose(`indexAdd ${JSON.stringify(c)}`, out!, want, () => 0);
}

describe.skipIf(!h)('embedding WGSL', () => {
  it('indexSelect gathers exactly what the CPU gathers', async () => {
    await fc.assert(fc.asyncProperty(caseArb, checkSelect), { numRuns: 25 });
  });

  it('indexAdd scatter-adds bit-identically to the CPU, writing every output', async () => {
    await fc.assert(fc.asyncProperty(caseArb, fc.boolean(), checkAdd), { numRuns: 25 });
  });

  it('indexAdd on a GPT embedding gradient (vocab 4096, 128 columns, 1024 tokens) is bit-identical to the CPU', async () => {
    await checkAdd({ outer: 1, dim: 4096, inner: 128, nIdx: 1024, seed: 12 }, false);
  });

  it('indexSelect past 65535 workgroups of 256: every output checked', async () => {
    // Small input, large output: 1048600 rows each gathered 16 times.
    const outer = 1048600;
    const nIdx = 16;
    const x = Float32Array.from({ length: outer }, (_, o) => o);
    const [, , out] = await h!.run(indexSelectLaunch(outer, 1, 1, nIdx), [x, new Int32Array(nIdx), nanFilled(outer * nIdx)], [2]);
    let bad = -1;
    for (let e = 0; e < outer * nIdx && bad < 0; e++) if (out![e] !== Math.floor(e / nIdx)) bad = e;
    if (bad >= 0) throw new Error(`indexSelect: element ${bad} is ${out![bad]}, expected ${Math.floor(bad / nIdx)}`);
  });

  it('indexAdd past 65535 workgroups of 64 rows: every output checked', async () => {
    const dim = 64 * 65536 + 5;
    const [, , out] = await h!.run(indexAddLaunch(1, dim, 1, 3), [Float32Array.of(1, 2, 4), Int32Array.of(dim - 1, 7, dim - 1), nanFilled(dim)], [2]);
    let bad = -1;
    for (let d = 0; d < dim && bad < 0; d++) if (out![d] !== (d === dim - 1 ? 5 : d === 7 ? 2 : 0)) bad = d;
    if (bad >= 0) throw new Error(`indexAdd: row ${bad} is ${out![bad]}`);
  });
});
