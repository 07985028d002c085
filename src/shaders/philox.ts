// WGSL helpers for counter-based random numbers: Philox4x32-10 and the element-level generator
// contract of src/tensor/random/philox.ts, so a kernel draws the same numbers the CPU backend does.
//
// Paste `philoxWGSL` into a kernel that needs randomness (only those kernels, to keep generated
// WGSL readable). The host passes key = seedToKey(seed) and [offsetLo, offsetHi] =
// splitOffset(gen.next(n)); invocation i calls philoxUniform(key, offsetLo, offsetHi, i), etc.
// Dropout kernels instead take a whole block per invocation (philoxDropoutBlock: four stream
// positions, lane c mod 4 of block floor(c / 4) in the dropout domain, as fillDropoutUniform) and
// turn each word into a uniform with philoxUnit.
// Guarantees: philox4x32, philoxUniform, philoxBernoulli, philoxDropoutBlock and philoxUnit are
// bit-identical to the CPU; philoxNormal runs log/sqrt/cos in f32, so it matches the CPU's f64 path
// only to within |gpu - cpu| <= 1e-6 * (1 + |z|) (tested; about 3e-7 on lavapipe; WGSL's accuracy
// rules allow more on other GPUs).

import { DROPOUT_DOMAIN, PHILOX_M0, PHILOX_M1, PHILOX_ROUNDS, PHILOX_W0, PHILOX_W1 } from '../tensor/random/philox.js';

const u32 = (x: number): string => `0x${x.toString(16)}u`;

export const philoxWGSL = /* wgsl */ `
// Exact 32x32 -> 64-bit multiply as (hi, lo). WGSL has no u64, so the high word is assembled from
// 16-bit halves; every partial product and sum fits in u32 (same steps as mulhi32 on the CPU).
fn philoxMulhilo(a: u32, b: u32) -> vec2<u32> {
  let al = a & 0xffffu;
  let ah = a >> 16u;
  let bl = b & 0xffffu;
  let bh = b >> 16u;
  let ll = al * bl;
  let lh = al * bh;
  let hl = ah * bl;
  let mid = (ll >> 16u) + (lh & 0xffffu) + (hl & 0xffffu);
  let hi = ah * bh + (lh >> 16u) + (hl >> 16u) + (mid >> 16u);
  return vec2<u32>(hi, a * b);
}

fn philoxRound(c: vec4<u32>, k: vec2<u32>) -> vec4<u32> {
  let p0 = philoxMulhilo(${u32(PHILOX_M0)}, c.x);
  let p1 = philoxMulhilo(${u32(PHILOX_M1)}, c.z);
  return vec4<u32>(p1.x ^ c.y ^ k.x, p1.y, p0.x ^ c.w ^ k.y, p0.y);
}

// Philox4x32-${PHILOX_ROUNDS}: the key is bumped by the Weyl constants between rounds.
fn philox4x32(ctr: vec4<u32>, key: vec2<u32>) -> vec4<u32> {
  var c = philoxRound(ctr, key);
  var k = key;
  for (var r = 1u; r < ${PHILOX_ROUNDS}u; r = r + 1u) {
    k = k + vec2<u32>(${u32(PHILOX_W0)}, ${u32(PHILOX_W1)});
    c = philoxRound(c, k);
  }
  return c;
}

// Counter offset + i as [lo, hi, 0, 0], carrying into the high word when offsetLo + i wraps.
fn philoxCounter(offsetLo: u32, offsetHi: u32, i: u32) -> vec4<u32> {
  let lo = offsetLo + i;
  return vec4<u32>(lo, offsetHi + select(0u, 1u, lo < offsetLo), 0u, 0u);
}

// (w0 >> 8) * 2^-24 in [0, 1): 24 bits, so the f32 is exact and equals the CPU value.
fn philoxUniform(key: vec2<u32>, offsetLo: u32, offsetHi: u32, i: u32) -> f32 {
  let w = philox4x32(philoxCounter(offsetLo, offsetHi, i), key);
  return f32(w.x >> 8u) * (1.0 / 16777216.0);
}

// A word's uniform: (w >> 8) * 2^-24 in [0, 1), exact in f32.
fn philoxUnit(w: u32) -> f32 {
  return f32(w >> 8u) * (1.0 / 16777216.0);
}

// The dropout block holding stream positions 4b .. 4b + 3 for b = floor(offset / 4) + j: counter
// [lo32(b), hi32(b), ${DROPOUT_DOMAIN}, 0], the sum carried into the high word.
fn philoxDropoutBlock(key: vec2<u32>, offsetLo: u32, offsetHi: u32, j: u32) -> vec4<u32> {
  let baseLo = (offsetLo >> 2u) | (offsetHi << 30u);
  let lo = baseLo + j;
  let hi = (offsetHi >> 2u) + select(0u, 1u, lo < baseLo);
  return philox4x32(vec4<u32>(lo, hi, ${DROPOUT_DOMAIN}u, 0u), key);
}

// uniform < p as an integer test; threshold = bernoulliThreshold(p) from the host.
fn philoxBernoulli(key: vec2<u32>, offsetLo: u32, offsetHi: u32, i: u32, threshold: u32) -> bool {
  let w = philox4x32(philoxCounter(offsetLo, offsetHi, i), key);
  return (w.x >> 8u) < threshold;
}

// -ln(u1) for u1 in (0, 1]. Near 1 the result is tiny and WGSL only bounds log's absolute error
// (2^-21 on [0.5, 2]), which the sqrt in Box-Muller would magnify; there v = 1 - u1 is exact, so sum
// the series v + v^2/2 + ... + v^9/9 instead (truncation below 1e-9 relative for v < 1/8).
fn philoxNegLog(u1: f32) -> f32 {
  let v = 1.0 - u1;
  var s = 1.0 / 9.0;
  s = 1.0 / 8.0 + v * s;
  s = 1.0 / 7.0 + v * s;
  s = 1.0 / 6.0 + v * s;
  s = 1.0 / 5.0 + v * s;
  s = 1.0 / 4.0 + v * s;
  s = 1.0 / 3.0 + v * s;
  s = 1.0 / 2.0 + v * s;
  s = 1.0 + v * s;
  return select(-log(u1), v * s, v < 0.125);
}

// Box-Muller on words 0 and 1: sqrt(-2 ln u1) * cos(2 pi u2), u1 in (0, 1], u2 in [0, 1).
// cos(2 pi u2) is evaluated as -cos(pi (2 u2 - 1)) so the argument stays in [-pi, pi), the range
// where WGSL bounds cos's error; the inputs u1 and 2 u2 - 1 are exact in f32.
fn philoxNormal(key: vec2<u32>, offsetLo: u32, offsetHi: u32, i: u32) -> f32 {
  let w = philox4x32(philoxCounter(offsetLo, offsetHi, i), key);
  let u1 = f32((w.x >> 8u) + 1u) * (1.0 / 16777216.0);
  let t = f32(w.y >> 8u) * (1.0 / 8388608.0) - 1.0;
  return -sqrt(2.0 * philoxNegLog(u1)) * cos(3.14159265358979 * t);
}
`;
