// Scalar definitions of the elementwise ops; the CPU backend maps them over arrays, and they are
// the ground truth the WGSL versions are tested against.

import type { BinaryOp, UnaryOp } from '../../backend.js';

/** erf to ~1e-16 relative (series for small |x|, continued fraction via erfc for large). */
export function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax < 2.5) {
    // Maclaurin series: erf(x) = 2/√π Σ (−1)^n x^(2n+1) / (n! (2n+1))
    let term = x;
    let sum = x;
    const x2 = x * x;
    for (let n = 1; n < 60; n++) {
      term *= -x2 / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    return (2 / Math.sqrt(Math.PI)) * sum;
  }
  if (ax > 6) return Math.sign(x);
  // erfc(x) by Lentz's continued fraction, accurate for x >= 2.5
  const tiny = 1e-300;
  let f = ax;
  let C = ax;
  let D = 0;
  for (let n = 1; n < 200; n++) {
    const an = n / 2;
    D = ax + an * D;
    D = D === 0 ? tiny : 1 / D;
    C = ax + an / C;
    if (C === 0) C = tiny;
    const delta = C * D;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  const erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / f;
  return Math.sign(x) * (1 - erfc);
}

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

export function softplus(x: number): number {
  return x > 0 ? x + Math.log1p(Math.exp(-x)) : Math.log1p(Math.exp(x));
}

export function sigmoid(x: number): number {
  return x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x));
}

export function unaryFn(op: UnaryOp, p0: number, p1: number): (x: number) => number {
  switch (op) {
    case 'neg': return (x) => -x;
    case 'exp': return Math.exp;
    case 'log': return Math.log;
    case 'sqrt': return Math.sqrt;
    case 'rsqrt': return (x) => 1 / Math.sqrt(x);
    case 'abs': return Math.abs;
    case 'sign': return (x) => (x > 0 ? 1 : x < 0 ? -1 : 0);
    case 'tanh': return Math.tanh;
    case 'sigmoid': return sigmoid;
    case 'relu': return (x) => (x > 0 ? x : 0);
    case 'step': return (x) => (x > 0 ? 1 : 0);
    case 'gelu': return (x) => 0.5 * x * (1 + erf(x / Math.SQRT2));
    case 'geluGrad': return (x) => 0.5 * (1 + erf(x / Math.SQRT2)) + (x * Math.exp(-0.5 * x * x)) / Math.sqrt(2 * Math.PI);
    case 'geluTanh': return (x) => 0.5 * x * (1 + Math.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x ** 3)));
    case 'geluTanhGrad': return (x) => {
      const u = SQRT_2_OVER_PI * (x + 0.044715 * x ** 3);
      const t = Math.tanh(u);
      return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x * x);
    };
    case 'softplus': return softplus;
    case 'logSigmoid': return (x) => -softplus(-x);
    case 'square': return (x) => x * x;
    case 'reciprocal': return (x) => 1 / x;
    case 'powScalar': return (x) => x ** p0;
    case 'affine': return (x) => p0 * x + p1;
    case 'clamp': return (x) => Math.min(Math.max(x, p0), p1);
  }
}

export function binaryFn(op: BinaryOp): (a: number, b: number) => number {
  switch (op) {
    case 'add': return (a, b) => a + b;
    case 'sub': return (a, b) => a - b;
    case 'mul': return (a, b) => a * b;
    case 'div': return (a, b) => a / b;
    case 'maximum': return (a, b) => (a >= b || Number.isNaN(a) ? a : b);
    case 'minimum': return (a, b) => (a <= b || Number.isNaN(a) ? a : b);
    case 'pow': return (a, b) => a ** b;
    case 'eq': return (a, b) => (a === b ? 1 : 0);
    case 'ne': return (a, b) => (a !== b ? 1 : 0);
    case 'lt': return (a, b) => (a < b ? 1 : 0);
    case 'le': return (a, b) => (a <= b ? 1 : 0);
    case 'gt': return (a, b) => (a > b ? 1 : 0);
    case 'ge': return (a, b) => (a >= b ? 1 : 0);
    case 'geluBackward': {
      const d = unaryFn('geluGrad', 0, 0);
      return (a, b) => b * d(a);
    }
    case 'geluTanhBackward': {
      const d = unaryFn('geluTanhGrad', 0, 0);
      return (a, b) => b * d(a);
    }
  }
}
