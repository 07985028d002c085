// fast-check arbitraries for the backend-agreement tests: small shapes (with size-0 and size-1 dims)
// and seeded data, so a failing case prints a short reproducible counterexample.

import fc from 'fast-check';

/** Deterministic values in [lo, hi) from a seed (mulberry32), so failures print as a seed, not an array. */
export function seededValues(seed: number, n: number, lo = -3, hi = 3, integer = false): number[] {
  let a = seed >>> 0;
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    const u = ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    out[i] = integer ? Math.floor(lo + u * (hi - lo)) : Math.fround(lo + u * (hi - lo));
  }
  return out;
}

export const dim = fc.constantFrom(0, 1, 1, 2, 3, 5, 7);
export const nonZeroDim = fc.constantFrom(1, 2, 3, 5, 7);
export const shape = (maxRank = 4, d = dim) => fc.array(d, { minLength: 0, maxLength: maxRank });
export const seed = fc.integer({ min: 0, max: 2 ** 31 - 1 });

/** An output shape and two operand shapes that broadcast to it (dims set to 1 or dropped from the front). */
export const broadcastPair = fc
  .tuple(shape(4), fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 8, maxLength: 8 }), fc.nat(4), fc.nat(4))
  .map(([out, modes, dropA, dropB]) => {
    const derive = (offset: number, drop: number) =>
      out.map((d, i) => (modes[(i + offset) % 8] === 0 ? 1 : d)).slice(Math.min(drop, out.length) % (out.length + 1));
    return { out, a: derive(0, dropA % 2 === 0 ? 0 : dropA), b: derive(4, dropB % 2 === 0 ? 0 : dropB) };
  });
