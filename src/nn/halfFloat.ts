// Conversions between f32 and the two 16-bit float formats found in checkpoints (IEEE f16 and
// bfloat16), bit-exact, so F16/BF16 safetensors files can be read into and written from f32.

// The conversions work on raw bits through views of the same buffer: going through JS numbers
// would canonicalize NaN payloads and lose the exhaustive round-trip guarantee.

/** IEEE half (as raw u16 bits) to f32. Exact: every f16 value, subnormals, ±inf and NaN payloads. */
export function f16ToF32(u16: Uint16Array): Float32Array {
  const out = new Float32Array(u16.length);
  const bits = new Uint32Array(out.buffer);
  for (let i = 0; i < u16.length; i++) {
    const h = u16[i]!;
    const sign = (h & 0x8000) << 16;
    const exp = (h >>> 10) & 0x1f;
    let mant = h & 0x3ff;
    if (exp === 0x1f) {
      bits[i] = (sign | 0x7f800000 | (mant << 13)) >>> 0;
    } else if (exp !== 0) {
      bits[i] = (sign | ((exp + 112) << 23) | (mant << 13)) >>> 0;
    } else if (mant === 0) {
      bits[i] = sign >>> 0;
    } else {
      // Subnormal half: normalize into an f32 normal by shifting the leading 1 into the implicit bit.
      let e = 113; // exponent of 2^-14 in f32 bias, minus the shifts below
      while ((mant & 0x400) === 0) {
        mant <<= 1;
        e--;
      }
      bits[i] = (sign | (e << 23) | ((mant & 0x3ff) << 13)) >>> 0;
    }
  }
  return out;
}

/** f32 to IEEE half bits, rounding to nearest even; overflow gives ±inf, NaN stays NaN. */
export function f32ToF16(f32: Float32Array): Uint16Array {
  const bits = new Uint32Array(f32.buffer, f32.byteOffset, f32.length);
  const out = new Uint16Array(f32.length);
  for (let i = 0; i < bits.length; i++) out[i] = f32BitsToF16(bits[i]!);
  return out;
}

function f32BitsToF16(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) {
    if (mant === 0) return sign | 0x7c00;
    // Keep the top payload bits; a payload living only in the dropped low bits must still be NaN.
    const m = mant >>> 13;
    return sign | 0x7c00 | (m === 0 ? 0x200 : m);
  }
  const e = exp - 112; // rebias 127 -> 15
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    // Result is a half subnormal (or zero): value = full * 2^(exp-150) = m * 2^-24, m = full >> shift.
    const shift = 14 - e;
    if (shift > 24) return sign; // below half the smallest subnormal (f32 subnormals land here too)
    const full = mant | 0x800000;
    return sign | roundShift(full, shift);
  }
  // Normal: drop 13 mantissa bits; a carry out of the mantissa correctly bumps the exponent (to inf).
  return (sign | (e << 10) | (mant >>> 13)) + roundUp(mant, 13);
}

/** `value >> shift` rounded to nearest, ties to even. */
function roundShift(value: number, shift: number): number {
  return (value >>> shift) + roundUp(value, shift);
}

/** 1 when dropping the low `shift` bits of `value` must round the kept part up (ties to even). */
function roundUp(value: number, shift: number): number {
  const half = 1 << (shift - 1);
  const rem = value & ((1 << shift) - 1);
  const keptOdd = (value >>> shift) & 1;
  return rem > half || (rem === half && keptOdd === 1) ? 1 : 0;
}

/** bfloat16 (raw u16 bits) to f32: bf16 is the top half of an f32, so this is exact by construction. */
export function bf16ToF32(u16: Uint16Array): Float32Array {
  const out = new Float32Array(u16.length);
  const bits = new Uint32Array(out.buffer);
  for (let i = 0; i < u16.length; i++) bits[i] = (u16[i]! << 16) >>> 0;
  return out;
}

/** f32 to bfloat16 bits, rounding to nearest even; NaN stays NaN (quiet bit set if the payload is lost). */
export function f32ToBf16(f32: Float32Array): Uint16Array {
  const bits = new Uint32Array(f32.buffer, f32.byteOffset, f32.length);
  const out = new Uint16Array(f32.length);
  for (let i = 0; i < bits.length; i++) {
    const x = bits[i]!;
    if ((x & 0x7f800000) === 0x7f800000 && (x & 0x7fffff) !== 0) {
      const hi = x >>> 16;
      out[i] = (hi & 0x7f) === 0 ? hi | 0x40 : hi;
    } else {
      out[i] = (x >>> 16) + roundUp(x, 16);
    }
  }
  return out;
}
