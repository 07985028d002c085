// Shared cases for the attention op tests (CPU in test/tensor/ops, WebGPU in test/tensor/backends/webgpu):
// random shapes with tq <= tk, seeded values identical on every backend, and key masks.

import fc from 'fast-check';

export interface AttentionCase { B: number; H: number; tq: number; tk: number; D: number; causal: boolean; masked: boolean; seed: number }

export const attentionCaseArb: fc.Arbitrary<AttentionCase> = fc
  .record({
    B: fc.integer({ min: 1, max: 3 }), H: fc.integer({ min: 1, max: 3 }), tq: fc.integer({ min: 1, max: 7 }), extra: fc.integer({ min: 0, max: 4 }),
    D: fc.integer({ min: 1, max: 9 }), causal: fc.boolean(), masked: fc.boolean(), seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
  })
  .map(({ extra, ...c }) => ({ ...c, tk: c.tq + extra }));

/** Deterministic values in [-2, 2) (as numbers, so each backend gets the same data). */
export function values(n: number, seed: number): number[] {
  let a = seed >>> 0;
  // mulberry32: a few lines of seeded noise, the same on every backend.
  return Array.from({ length: n }, () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return 4 * (((t ^ (t >>> 14)) >>> 0) / 2 ** 32) - 2;
  });
}

/** A key mask [B, tk] keeping key 0 of every batch (no row is fully masked) and dropping about a third. */
export function keyMaskValues(c: AttentionCase): number[] {
  return Array.from({ length: c.B * c.tk }, (_, i) => (i % c.tk === 0 || (i * 7 + c.seed) % 3 !== 0 ? 1 : 0));
}

