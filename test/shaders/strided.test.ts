// The strided kernels' index math: divBySize (an f32 reciprocal and one correction step) equals
// integer division for every n < 2^24 and size >= 2, checked on the device at the edges where the
// f32 estimate is off by one (multiples of size, ±1, near 2^24) and on random pairs.

import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { packUniforms, type Launch } from '../../src/shaders/kernel.js';
import { divBySizeWGSL, FAST_DIV_LIMIT } from '../../src/shaders/strided.js';
import { openHarness } from '../helpers/kernelHarness.js';

const h = await openHarness('strided WGSL tests');
afterAll(() => h?.destroy());

const WG = 64;

function divLaunch(count: number): Launch {
  const code = `struct U { count: u32, p0: u32, p1: u32, p2: u32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> ns: array<u32>;
@group(0) @binding(2) var<storage, read> sizes: array<u32>;
@group(0) @binding(3) var<storage, read> invs: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<u32>;
${divBySizeWGSL(false)}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  if (gid.x >= u.count) { return; }
  out[gid.x] = divBySize(ns[gid.x], sizes[gid.x], invs[gid.x]);
}`;
  return {
    kernel: { name: 'divBySizeTest', code, storage: ['read', 'read', 'read', 'read_write'] },
    uniforms: packUniforms([['u32', count], ['u32', 0], ['u32', 0], ['u32', 0]]),
    workgroups: [Math.ceil(count / WG), 1, 1],
  };
}

async function check(pairs: readonly [number, number][]): Promise<void> {
  const ns = Uint32Array.from(pairs, ([n]) => n);
  const sizes = Uint32Array.from(pairs, ([, s]) => s);
  const invs = Float32Array.from(pairs, ([, s]) => 1 / s);
  const [, , , out] = await h!.run(divLaunch(pairs.length), [ns, sizes, invs, new Uint32Array(pairs.length)], [3]);
  const bad = pairs.findIndex(([n, s], i) => out[i] !== Math.floor(n / s));
  expect(bad === -1 ? null : { n: pairs[bad][0], size: pairs[bad][1], got: out[bad] }).toBeNull();
}

describe.skipIf(h === undefined)('divBySize (f32-reciprocal division)', () => {
  it('equals floor(n / size) at multiples of size ±1, near 2^24, and for tiny and huge sizes', async () => {
    const pairs: [number, number][] = [];
    const sizes = [2, 3, 5, 7, 31, 64, 97, 384, 1000, 4095, 4096, 65537, 1 << 20, 3_000_001, (1 << 23) + 1, FAST_DIV_LIMIT - 1];
    for (const s of sizes) {
      for (const k of [0, 1, 2, 3, 1000, Math.floor((FAST_DIV_LIMIT - 1) / s)]) {
        for (const d of [-1, 0, 1]) {
          const n = k * s + d;
          if (n >= 0 && n < FAST_DIV_LIMIT) pairs.push([n, s]);
        }
      }
      for (let n = FAST_DIV_LIMIT - 40; n < FAST_DIV_LIMIT; n++) pairs.push([n, s]);
    }
    await check(pairs);
  });

  it('equals floor(n / size) on random pairs below 2^24', async () => {
    await fc.assert(fc.asyncProperty(
      fc.array(fc.tuple(fc.integer({ min: 0, max: FAST_DIV_LIMIT - 1 }), fc.integer({ min: 2, max: FAST_DIV_LIMIT - 1 })), { minLength: 1, maxLength: 2000 }),
      async (pairs) => check(pairs)), { numRuns: 10 });
  });
});
