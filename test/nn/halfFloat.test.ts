// f16/bf16 <-> f32 conversions: exact on every 16-bit pattern, round-to-nearest-even from f32.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from '../../src/nn/halfFloat.js';

const ALL16 = Uint16Array.from({ length: 65536 }, (_, i) => i);

/** The value of f16 bits from the IEEE definition, computed in f64 (exact for every half). */
function f16Value(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0x1f) return m === 0 ? s * Infinity : NaN;
  return e === 0 ? s * m * 2 ** -24 : s * (1 + m / 1024) * 2 ** (e - 15);
}

/** Random finite f32 values, half of them exactly halfway between two kept values (low `drop` bits = 100..0). */
function floatsWithTies(drop: number): fc.Arbitrary<number> {
  const tie = fc
    .integer({ min: 0, max: 0xffffffff })
    .map((b) => new Float32Array(Uint32Array.of(((b >>> drop) << drop) | (1 << (drop - 1))).buffer)[0]!)
    .filter((x) => !Number.isNaN(x));
  return fc.oneof(fc.float({ noNaN: true }), tie);
}

function bits32(x: number): number {
  return new Uint32Array(Float32Array.of(x).buffer)[0]!;
}

describe('f16', () => {
  it('f16ToF32 matches the IEEE definition on all 65536 bit patterns', () => {
    const f = f16ToF32(ALL16);
    for (let h = 0; h < 65536; h++) {
      const want = f16Value(h);
      if (Number.isNaN(want)) expect(Number.isNaN(f[h])).toBe(true);
      else expect(Object.is(f[h], want)).toBe(true); // Object.is separates +0 and -0
    }
  });

  it('f16 -> f32 -> f16 returns the same bits for all 65536 patterns (NaN payloads included)', () => {
    const back = f32ToF16(f16ToF32(ALL16));
    let mismatches = 0;
    for (let h = 0; h < 65536; h++) if (back[h] !== h) mismatches++;
    expect(mismatches).toBe(0);
  });

  it('f32ToF16 rounds to the nearest half, ties to even, overflowing to inf at 65520', () => {
    fc.assert(
      fc.property(floatsWithTies(13), (x) => {
        const h = f32ToF16(Float32Array.of(x))[0]!;
        const v = f16Value(h);
        if (Math.abs(x) >= 65520) {
          expect(v).toBe(x > 0 ? Infinity : -Infinity);
          return;
        }
        expect(Number.isFinite(v)).toBe(true);
        expect(Math.sign(v) === Math.sign(x) || v === 0).toBe(true);
        const mag = h & 0x7fff;
        const dist = Math.abs(x - v);
        // Neighbours in magnitude on the same side; the one above 65504 is +-65536 for rounding purposes.
        for (const nb of [mag - 1, mag + 1]) {
          if (nb < 0) continue;
          const nv = nb === 0x7c00 ? 65536 * Math.sign(x) : f16Value(nb | (h & 0x8000));
          const nd = Math.abs(x - nv);
          expect(dist).toBeLessThanOrEqual(nd);
          if (dist === nd) expect(mag & 1).toBe(0);
        }
      }),
      { numRuns: 20_000 },
    );
  });

  it('f32ToF16 keeps NaN (also when the payload sits only in the dropped bits) and inf', () => {
    const nanLow = new Float32Array(new Uint32Array([0x7f800001]).buffer);
    const out = f16ToF32(f32ToF16(Float32Array.of(NaN, Infinity, -Infinity, ...nanLow)));
    expect(Number.isNaN(out[0])).toBe(true);
    expect(out[1]).toBe(Infinity);
    expect(out[2]).toBe(-Infinity);
    expect(Number.isNaN(out[3])).toBe(true);
  });

  it('rounds ties in the subnormal range to even', () => {
    const x = Float32Array.of(2 ** -25, 3 * 2 ** -25, 5 * 2 ** -25, -(2 ** -25), 2 ** -24 * 1023.5, 2 ** -24 * 1022.5);
    expect([...f32ToF16(x)]).toEqual([0, 2, 2, 0x8000, 0x400, 1022]);
  });

  it('reads from a Float32Array view with a byte offset', () => {
    const base = Float32Array.of(0, 1, 2, 3);
    expect([...f32ToF16(base.subarray(2))]).toEqual([0x4000, 0x4200]);
  });
});

describe('bf16', () => {
  it('bf16 -> f32 is the top half of the f32 bits, and the round trip returns the same bits', () => {
    const f = bf16ToF32(ALL16);
    for (let h = 0; h < 65536; h += 257) expect(bits32(f[h]!) >>> 16).toBe(h);
    const back = f32ToBf16(f);
    let mismatches = 0;
    for (let h = 0; h < 65536; h++) if (back[h] !== h) mismatches++;
    expect(mismatches).toBe(0);
  });

  it('f32ToBf16 rounds to the nearest bf16, ties to even', () => {
    fc.assert(
      fc.property(floatsWithTies(16), (x) => {
        const b = f32ToBf16(Float32Array.of(x))[0]!;
        const v = bf16ToF32(Uint16Array.of(b))[0]!;
        // The two candidates: x truncated toward zero, and the next bf16 away from zero, which past
        // the largest finite bf16 counts as +-2^128 (that is where IEEE rounding overflows to inf).
        const t = bits32(x) >>> 16;
        const lo = bf16ToF32(Uint16Array.of(t))[0]!;
        const up = t + 1;
        const hi = bf16ToF32(Uint16Array.of(up))[0]!;
        const hiForDistance = Number.isFinite(hi) ? hi : Math.sign(x) * 2 ** 128;
        const dLo = Math.abs(x - lo);
        const dHi = Math.abs(x - hiForDistance);
        const want = dLo < dHi ? lo : dHi < dLo ? hi : t % 2 === 0 ? lo : hi;
        expect(Object.is(v, want)).toBe(true);
      }),
      { numRuns: 20_000 },
    );
  });

  it('f32ToBf16 keeps NaN when the payload sits only in the dropped bits', () => {
    const nanLow = new Float32Array(new Uint32Array([0x7f800001, 0xff800001]).buffer);
    const out = bf16ToF32(f32ToBf16(nanLow));
    expect(Number.isNaN(out[0])).toBe(true);
    expect(Number.isNaN(out[1])).toBe(true);
  });
});
