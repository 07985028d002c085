// The random fill kernel reproduces the CPU backend: uniforms bit for bit, normals within the
// 1e-6 * (1 + |z|) documented in src/tensor/random/philox.ts, at offsets that carry past 2^32.

import fc from 'fast-check';
import { afterAll, describe, it } from 'vitest';
import { randomLaunch } from '../../src/shaders/random.js';
import { CpuBackend } from '../../src/tensor/backends/cpu/index.js';
import { uniformAt } from '../../src/tensor/random/philox.js';
import { expectClose, nanFilled, openHarness, sampleIndices } from '../helpers/kernelHarness.js';

const h = await openHarness('random WGSL tests');
afterAll(() => h?.destroy());
const cpu = new CpuBackend();

interface Case { kind: 'uniform' | 'normal'; size: number; key: [number, number]; offset: number }

const u32 = fc.integer({ min: 0, max: 2 ** 32 - 1 });
const caseArb: fc.Arbitrary<Case> = fc.record({
  kind: fc.constantFrom('uniform' as const, 'normal' as const),
  size: fc.oneof(fc.constant(1), fc.integer({ min: 1, max: 5000 })),
  key: fc.tuple(u32, u32),
  offset: fc.oneof(fc.integer({ min: 0, max: 1000 }), fc.integer({ min: 2 ** 32 - 3000, max: 2 ** 32 + 10 }), fc.integer({ min: 0, max: 2 ** 52 })),
});

async function check(c: Case): Promise<void> {
  const [out] = await h!.run(randomLaunch(c.kind, c.size, c.key, c.offset), [nanFilled(c.size)]);
  const want = cpu.readSync(cpu.random(c.kind, 'f32', c.size, c.key, c.offset));
  expectClose(`random ${JSON.stringify(c)}`, out!, want, (w) => (c.kind === 'uniform' ? 0 : 1e-6 * (1 + Math.abs(w))));
}

describe.skipIf(!h)('random WGSL', () => {
  it('uniform is bit-identical and normal within 1e-6 * (1 + |z|) of the CPU', async () => {
    await fc.assert(fc.asyncProperty(caseArb, check), { numRuns: 20 });
  });

  it('more than 65535 workgroups (flat index over x and y), checked on a sample and the last workgroups', async () => {
    const size = 256 * 65536 + 17;
    const key: [number, number] = [1, 2];
    const [out] = await h!.run(randomLaunch('uniform', size, key, 5), [nanFilled(size)]);
    const idx = sampleIndices(size);
    expectClose('random past 65535 workgroups', idx.map((i) => out![i]!), idx.map((i) => uniformAt(key, 5, i)), () => 0);
  });
});
