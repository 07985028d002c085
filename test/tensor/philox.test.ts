// Philox4x32-10 against Random123's known answers, and the statistical and bookkeeping
// properties of the element-level generator contract and of dropout's four-lane stream (CPU side).

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  DROPOUT_DOMAIN,
  Generator,
  MAX_OFFSET,
  bernoulliMask,
  bernoulliThreshold,
  dropoutUniformAt,
  fillDropoutUniform,
  fillNormal,
  fillUniform,
  mulhilo32,
  multinomial,
  normalAt,
  philox4x32,
  seedToKey,
  splitOffset,
  uniformAt,
  type PhiloxBlock,
  type PhiloxKey,
} from '../../src/tensor/random/philox.js';

const u32 = fc.integer({ min: 0, max: 0xffffffff });
const seed = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
const offset = fc.integer({ min: 0, max: MAX_OFFSET - 1024 });

describe('philox4x32', () => {
  it('mulhilo32 equals the exact 64-bit product', () => {
    fc.assert(
      fc.property(u32, u32, (a, b) => {
        const p = BigInt(a) * BigInt(b);
        expect(mulhilo32(a, b)).toEqual([Number(p >> 32n), Number(p & 0xffffffffn)]);
      }),
      { numRuns: 2000 },
    );
    expect(mulhilo32(0xffffffff, 0xffffffff)).toEqual([0xfffffffe, 1]);
  });

  it.each<[PhiloxBlock, PhiloxKey, PhiloxBlock]>([
    [[0, 0, 0, 0], [0, 0], [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]],
    [
      [0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff],
      [0xffffffff, 0xffffffff],
      [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd],
    ],
    [
      [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
      [0xa4093822, 0x299f31d0],
      [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1],
    ],
  ])('matches the Random123 known answer for counter %j key %j', (counter, key, expected) => {
    expect(philox4x32(counter, key)).toEqual(expected);
  });
});

describe('seeds and offsets', () => {
  it('seedToKey splits a 64-bit seed into [lo, hi] and numbers agree with bigints', () => {
    fc.assert(
      fc.property(seed, (s) => {
        const [lo, hi] = seedToKey(s);
        expect(BigInt(lo) + (BigInt(hi) << 32n)).toBe(s);
      }),
    );
    fc.assert(fc.property(fc.maxSafeNat(), (s) => {
      expect(seedToKey(s)).toEqual(seedToKey(BigInt(s)));
    }));
  });

  it('seedToKey rejects negative, fractional and too-large seeds', () => {
    expect(() => seedToKey(-1)).toThrow(RangeError);
    expect(() => seedToKey(1.5)).toThrow(RangeError);
    expect(() => seedToKey(1n << 64n)).toThrow(RangeError);
  });

  it('splitOffset gives the low and high words of an offset', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: MAX_OFFSET - 1 }), (o) => {
      const [lo, hi] = splitOffset(o);
      expect(hi * 2 ** 32 + lo).toBe(o);
      expect(lo).toBeLessThan(2 ** 32);
    }));
  });
});

describe('uniform', () => {
  it('fillUniform values lie in [0, 1) and are multiples of 2^-24', () => {
    fc.assert(
      fc.property(seed, offset, fc.integer({ min: 0, max: 64 }), fc.boolean(), (s, o, n, f32) => {
        const out = f32 ? new Float32Array(n) : new Float64Array(n);
        fillUniform(out, seedToKey(s), o);
        for (const v of out) {
          expect(v >= 0 && v < 1).toBe(true);
          expect(Number.isInteger(v * 2 ** 24)).toBe(true);
        }
      }),
    );
  });

  it('element i at offset o equals element i - 1 at offset o + 1 (one counter per element)', () => {
    fc.assert(
      fc.property(seed, offset, (s, o) => {
        const key = seedToKey(s);
        const a = new Float64Array(8);
        const b = new Float64Array(8);
        fillUniform(a, key, o);
        fillUniform(b, key, o + 1);
        expect(Array.from(a.subarray(1))).toEqual(Array.from(b.subarray(0, 7)));
        expect(uniformAt(key, o, 3)).toBe(a[3]);
      }),
    );
  });

  it('different keys, or offsets at least n apart, give different streams', () => {
    const n = 16;
    fc.assert(
      fc.property(seed, seed, offset, offset, (s1, s2, o1, o2) => {
        const a = new Float64Array(n);
        const b = new Float64Array(n);
        fillUniform(a, seedToKey(s1), o1);
        fillUniform(b, seedToKey(s2), o1);
        if (s1 !== s2) expect(Array.from(a)).not.toEqual(Array.from(b));
        fillUniform(b, seedToKey(s1), o2);
        if (Math.abs(o1 - o2) >= n) expect(Array.from(a)).not.toEqual(Array.from(b));
      }),
    );
  });

  it('carries across 2^32: counters 2^32 - 1 and 2^32 differ and match philox4x32 directly', () => {
    const key = seedToKey(42);
    const out = new Float64Array(2);
    fillUniform(out, key, 2 ** 32 - 1);
    expect(out[0]).toBe((philox4x32([0xffffffff, 0, 0, 0], key)[0] >>> 8) * 2 ** -24);
    expect(out[1]).toBe((philox4x32([0, 1, 0, 0], key)[0] >>> 8) * 2 ** -24);
  });

  it('mean and variance of 1e5 uniforms are within 5 sigma of 1/2 and 1/12', () => {
    const n = 100_000;
    const out = new Float64Array(n);
    fillUniform(out, seedToKey(7), 0);
    const mean = out.reduce((s, v) => s + v, 0) / n;
    const variance = out.reduce((s, v) => s + (v - mean) ** 2, 0) / n;
    expect(Math.abs(mean - 0.5)).toBeLessThan(5 * Math.sqrt(1 / 12 / n));
    // Var of (U - 1/2)^2 is 1/180.
    expect(Math.abs(variance - 1 / 12)).toBeLessThan(5 * Math.sqrt(1 / 180 / n));
  });

  it('rejects offsets that would leave [0, 2^53)', () => {
    expect(() => fillUniform(new Float64Array(2), [0, 0], MAX_OFFSET - 1)).toThrow(/fillUniform/);
    expect(() => fillUniform(new Float64Array(1), [0, 0], -1)).toThrow(RangeError);
  });
});

describe('normal', () => {
  it('mean 0 and variance 1 within 5 sigma over 1e5 draws, and |z| <= sqrt(48 ln 2)', () => {
    const n = 100_000;
    const out = new Float64Array(n);
    fillNormal(out, seedToKey(123456789n), 1000);
    const mean = out.reduce((s, v) => s + v, 0) / n;
    const variance = out.reduce((s, v) => s + (v - mean) ** 2, 0) / n;
    expect(Math.abs(mean)).toBeLessThan(5 / Math.sqrt(n));
    // Var of z^2 for a standard normal is 2.
    expect(Math.abs(variance - 1)).toBeLessThan(5 * Math.sqrt(2 / n));
    const bound = Math.sqrt(48 * Math.LN2);
    for (const v of out) expect(Math.abs(v) <= bound && Number.isFinite(v)).toBe(true);
  });

  it('a Float32Array fill is the f64 value rounded once', () => {
    fc.assert(
      fc.property(seed, offset, (s, o) => {
        const key = seedToKey(s);
        const out = new Float32Array(8);
        fillNormal(out, key, o);
        out.forEach((v, i) => expect(v).toBe(Math.fround(normalAt(key, o, i))));
      }),
    );
  });
});

describe('bernoulliMask', () => {
  it.each([0.1, 0.5, 0.9, 1 / 3])('keep frequency for p = %f is within 4 sigma over 1e5 draws', (p) => {
    const n = 100_000;
    const mask = new Uint8Array(n);
    bernoulliMask(mask, p, seedToKey(99), 5);
    const kept = mask.reduce((s, v) => s + v, 0);
    expect(Math.abs(kept - n * p)).toBeLessThan(4 * Math.sqrt(n * p * (1 - p)));
  });

  it('the mask is exactly uniform < p, including p at and between 2^-24 steps', () => {
    fc.assert(
      fc.property(seed, offset, fc.double({ min: -0.5, max: 1.5, noNaN: true }), (s, o, p) => {
        const key = seedToKey(s);
        const mask = new Float32Array(16);
        bernoulliMask(mask, p, key, o);
        mask.forEach((m, i) => expect(m).toBe(uniformAt(key, o, i) < p ? 1 : 0));
      }),
    );
    expect(bernoulliThreshold(0)).toBe(0);
    expect(bernoulliThreshold(1)).toBe(2 ** 24);
    expect(() => bernoulliThreshold(NaN)).toThrow(RangeError);
  });
});

describe('dropout uniforms', () => {
  // Positions of every phase mod 4, around a block index's high-word carry (c near 2^34), and anywhere.
  const position = fc.oneof(
    fc.integer({ min: 0, max: 64 }),
    fc.integer({ min: 2 ** 34 - 64, max: 2 ** 34 + 64 }),
    fc.integer({ min: 0, max: MAX_OFFSET - 1024 }),
  );
  /** The contract by hand: lane c mod 4 of block floor(c / 4), counter [lo32, hi32, 1, 0]. */
  const byHand = (key: PhiloxKey, c: number): number => {
    const b = BigInt(c) / 4n;
    const w = philox4x32([Number(b & 0xffffffffn), Number(b >> 32n), 1, 0], key);
    return (w[Number(BigInt(c) % 4n)]! >>> 8) / 2 ** 24;
  };

  it('position c is lane c mod 4 of block floor(c / 4) in the dropout domain (counter word 2 = 1)', () => {
    expect(DROPOUT_DOMAIN).toBe(1);
    fc.assert(
      fc.property(seed, position, (s, c) => {
        const key = seedToKey(s);
        expect(dropoutUniformAt(key, c)).toBe(byHand(key, c));
      }),
      { numRuns: 500 },
    );
    // The block index's high word: positions 2^34 - 1 and 2^34 are blocks 2^32 - 1 and 2^32.
    const key = seedToKey(42);
    expect(dropoutUniformAt(key, 2 ** 34 - 1)).toBe((philox4x32([0xffffffff, 0, 1, 0], key)[3] >>> 8) * 2 ** -24);
    expect(dropoutUniformAt(key, 2 ** 34)).toBe((philox4x32([0, 1, 1, 0], key)[0] >>> 8) * 2 ** -24);
  });

  it('fillDropoutUniform at any offset and length equals dropoutUniformAt position by position (partial first and last blocks)', () => {
    fc.assert(
      fc.property(seed, position, fc.integer({ min: 0, max: 23 }), fc.boolean(), (s, o, n, f32) => {
        const key = seedToKey(s);
        const out = f32 ? new Float32Array(n) : new Float64Array(n);
        fillDropoutUniform(out, key, o);
        expect(Array.from(out)).toEqual(Array.from({ length: n }, (_, i) => dropoutUniformAt(key, o + i)));
      }),
      { numRuns: 500 },
    );
  });

  it('the dropout domain is not the word-0 stream of uniform: the same positions draw other values', () => {
    fc.assert(
      fc.property(seed, position, (s, o) => {
        const key = seedToKey(s);
        const a = new Float64Array(16);
        const b = new Float64Array(16);
        fillDropoutUniform(a, key, o);
        fillUniform(b, key, o);
        expect(Array.from(a)).not.toEqual(Array.from(b));
      }),
    );
  });

  it('over 1e5 positions from an offset that is not a multiple of 4: mean and variance within 5 sigma, no repeats between consecutive ranges', () => {
    const n = 100_000;
    const out = new Float64Array(2 * n);
    fillDropoutUniform(out, seedToKey(7), 2 ** 34 - n - 3);
    const first = out.subarray(0, n);
    const mean = first.reduce((s, v) => s + v, 0) / n;
    const variance = first.reduce((s, v) => s + (v - mean) ** 2, 0) / n;
    expect(Math.abs(mean - 0.5)).toBeLessThan(5 * Math.sqrt(1 / 12 / n));
    expect(Math.abs(variance - 1 / 12)).toBeLessThan(5 * Math.sqrt(1 / 180 / n));
    // Positions o + i and o + n + i coincide only by chance (2^-24 each: about 0.006 of 1e5 expected).
    let same = 0;
    for (let i = 0; i < n; i++) if (out[i] === out[n + i]) same++;
    expect(same).toBeLessThanOrEqual(2);
    // Nor do the four lanes of a block repeat one another.
    let lanes = 0;
    for (let i = 1; i < 2 * n; i++) if (out[i] === out[i - 1]) lanes++;
    expect(lanes).toBeLessThanOrEqual(2);
  });

  it('rejects positions that would leave [0, 2^53)', () => {
    expect(() => fillDropoutUniform(new Float64Array(2), [0, 0], MAX_OFFSET - 1)).toThrow(/fillDropoutUniform/);
    expect(() => fillDropoutUniform(new Float64Array(1), [0, 0], -1)).toThrow(RangeError);
    expect(() => dropoutUniformAt([0, 0], MAX_OFFSET)).toThrow(/dropoutUniformAt/);
    expect(dropoutUniformAt([0, 0], MAX_OFFSET - 1)).toBe(byHand([0, 0], MAX_OFFSET - 1));
  });
});

describe('multinomial', () => {
  it('category frequencies over 2e4 rows pass a chi-square bound (df 4, p < 1e-5)', () => {
    const probs = [0.05, 0.25, 0.1, 0.4, 0.2];
    const rows = 20_000;
    const cols = probs.length;
    const table = new Float32Array(rows * cols);
    for (let r = 0; r < rows; r++) table.set(probs, r * cols);
    const picks = multinomial(table, rows, cols, seedToKey(2024), 0);
    const counts = new Array<number>(cols).fill(0);
    for (const c of picks) counts[c]!++;
    const chi2 = counts.reduce((s, k, c) => s + (k - rows * probs[c]!) ** 2 / (rows * probs[c]!), 0);
    expect(chi2).toBeLessThan(28.5);
  });

  it('never picks a zero-weight category, and accepts unnormalized weights', () => {
    fc.assert(
      fc.property(
        seed,
        offset,
        fc.array(fc.oneof(fc.constant(0), fc.double({ min: 1e-30, max: 1e3, noNaN: true })), { minLength: 1, maxLength: 8 })
          .filter((w) => w.some((x) => x > 0)),
        (s, o, weights) => {
          const rows = 16;
          const table = new Float64Array(rows * weights.length);
          for (let r = 0; r < rows; r++) table.set(weights, r * weights.length);
          for (const c of multinomial(table, rows, weights.length, seedToKey(s), o)) {
            expect(weights[c]).toBeGreaterThan(0);
          }
        },
      ),
    );
  });

  it('row r uses uniform(r): the pick is the inverse CDF of that uniform', () => {
    const key = seedToKey(5);
    const weights = [1, 2, 3, 4];
    const rows = 200;
    const table = new Float64Array(rows * 4);
    for (let r = 0; r < rows; r++) table.set(weights, r * 4);
    const picks = multinomial(table, rows, 4, key, 77);
    picks.forEach((c, r) => {
      const t = uniformAt(key, 77, r) * 10;
      const cdf = [1, 3, 6, 10];
      expect(c).toBe(cdf.findIndex((x) => x > t));
    });
  });

  it('rejects negative, NaN, infinite and all-zero rows, and a wrong table size', () => {
    const key = seedToKey(1);
    expect(() => multinomial(Float64Array.of(0.5, -0.1), 1, 2, key, 0)).toThrow(/row 0 col 1/);
    expect(() => multinomial(Float64Array.of(NaN, 1), 1, 2, key, 0)).toThrow(RangeError);
    expect(() => multinomial(Float64Array.of(Infinity, 1), 1, 2, key, 0)).toThrow(RangeError);
    expect(() => multinomial(Float64Array.of(1, 1, 0, 0), 2, 2, key, 0)).toThrow(/row 1 has all-zero/);
    expect(() => multinomial(Float64Array.of(1, 1, 1), 2, 2, key, 0)).toThrow(/rows=2, cols=2/);
  });
});

describe('Generator', () => {
  it('next(n) reserves contiguous ranges and advances by n', () => {
    fc.assert(
      fc.property(seed, fc.array(fc.nat({ max: 1e6 }), { maxLength: 20 }), (s, counts) => {
        const g = new Generator(s);
        let expected = 0;
        for (const n of counts) {
          expect(g.next(n)).toBe(expected);
          expected += n;
          expect(g.offset).toBe(expected);
        }
      }),
    );
  });

  it('state round trips, and a restored generator continues the same reservations', () => {
    fc.assert(
      fc.property(seed, fc.nat({ max: 2 ** 40 }), fc.array(fc.nat({ max: 1e6 }), { maxLength: 10 }), (s, start, counts) => {
        const g = new Generator(s, start);
        const state = g.state();
        expect(JSON.parse(JSON.stringify(state))).toEqual({ seed: s.toString(), offset: start });
        const h = Generator.fromState(state);
        expect(h.key).toEqual(g.key);
        expect(h.key).toEqual(seedToKey(s));
        for (const n of counts) expect(h.next(n)).toBe(g.next(n));
        expect(h.state()).toEqual(g.state());
      }),
    );
  });

  it('rejects bad counts, overflow past 2^53 and malformed states', () => {
    const g = new Generator(1, MAX_OFFSET - 10);
    expect(() => g.next(-1)).toThrow(RangeError);
    expect(() => g.next(0.5)).toThrow(RangeError);
    expect(() => g.next(11)).toThrow(/Generator.next/);
    expect(g.next(10)).toBe(MAX_OFFSET - 10);
    expect(() => Generator.fromState({ seed: '-3', offset: 0 })).toThrow(RangeError);
    expect(() => Generator.fromState({ seed: '1', offset: -1 })).toThrow(RangeError);
  });
});
