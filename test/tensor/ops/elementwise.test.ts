// Elementwise ops: every differentiable one is gradchecked in float64 over random shapes and values
// (kinks avoided by a margin); forward properties cover broadcasting and f32/f64 agreement.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import * as T from '../../../src/tensor/index.js';
import type { Tensor } from '../../../src/tensor/index.js';
import { broadcastPairArb, shapeArb, sizeOfShape, tensorArb, valuesArb, type ValueOptions } from '../../helpers/arbitraries.js';
import { expectAllClose, gradProperty, input, ints, read } from '../../helpers/gradients.js';

const RUNS = 30;

interface UnaryCase {
  name: string;
  fn: (x: Tensor) => Tensor;
  values: ValueOptions;
}

// Domains keep away from poles (log, rsqrt, reciprocal) and kinks (abs, relu at 0).
const unaryCases: UnaryCase[] = [
  { name: 'neg', fn: T.neg, values: {} },
  { name: 'exp', fn: T.exp, values: {} },
  { name: 'log', fn: T.log, values: { min: 0.1, max: 5 } },
  { name: 'sqrt', fn: T.sqrt, values: { min: 0.1, max: 5 } },
  { name: 'rsqrt', fn: T.rsqrt, values: { min: 0.2, max: 5 } },
  { name: 'abs', fn: T.abs, values: { avoid: [0] } },
  { name: 'tanh', fn: T.tanh, values: { min: -4, max: 4 } },
  { name: 'sigmoid', fn: T.sigmoid, values: { min: -6, max: 6 } },
  { name: 'relu', fn: T.relu, values: { avoid: [0] } },
  { name: 'gelu (erf)', fn: (x) => T.gelu(x), values: { min: -4, max: 4 } },
  { name: 'gelu (tanh)', fn: (x) => T.gelu(x, 'tanh'), values: { min: -4, max: 4 } },
  { name: 'softplus', fn: T.softplus, values: { min: -8, max: 8 } },
  { name: 'logSigmoid', fn: T.logSigmoid, values: { min: -8, max: 8 } },
  { name: 'square', fn: T.square, values: {} },
  { name: 'reciprocal', fn: T.reciprocal, values: { min: -3, max: 3, avoid: [0], margin: 0.2 } },
];

describe('elementwise unary ops: gradients', () => {
  for (const c of unaryCases) {
    it(`gradient of ${c.name} matches float64 central differences (atol 1e-6, rtol 1e-5)`, async () => {
      await gradProperty(tensorArb({}, c.values), ({ shape, data }) => ({ fn: c.fn, inputs: [input(data, shape)] }), { numRuns: RUNS });
    });
  }

  it('gradient of pow(x, p) for scalar p matches central differences (integer p on signed x, real p on x > 0)', async () => {
    const arb = fc.constantFrom(2, 3, -1, -2, 0, 1, 0.5, 1.5, -2.5).chain((p) => {
      const values: ValueOptions = Number.isInteger(p) ? { min: -2, max: 2, avoid: [0], margin: 0.2 } : { min: 0.2, max: 3 };
      return tensorArb({}, values).map((t) => ({ ...t, p }));
    });
    await gradProperty(arb, ({ shape, data, p }) => ({ fn: (x) => T.pow(x, p), inputs: [input(data, shape)] }), { numRuns: RUNS });
  });

  it('gradient of clamp(x, lo, hi) matches central differences (values 1e-3 away from lo and hi)', async () => {
    const arb = fc
      .tuple(fc.double({ min: -2, max: 0, noNaN: true }), fc.double({ min: 0.5, max: 3, noNaN: true }))
      .chain(([lo, w]) => tensorArb({}, { avoid: [lo, lo + w] }).map((t) => ({ ...t, lo, hi: lo + w })));
    await gradProperty(arb, ({ shape, data, lo, hi }) => ({ fn: (x) => T.clamp(x, lo, hi), inputs: [input(data, shape)] }), { numRuns: RUNS });
  });

  it('gradient of clamp with one open bound matches central differences', async () => {
    const arb = fc.boolean().chain((lower) => tensorArb({}, { avoid: [0.5] }).map((t) => ({ ...t, lower })));
    await gradProperty(arb, ({ shape, data, lower }) => ({
      fn: (x) => (lower ? T.clamp(x, 0.5) : T.clamp(x, undefined, 0.5)),
      inputs: [input(data, shape)],
    }), { numRuns: RUNS });
  });

  it('gradient of affine(x, a, b) matches central differences', async () => {
    const arb = fc.tuple(tensorArb(), fc.double({ min: -3, max: 3, noNaN: true }), fc.double({ min: -3, max: 3, noNaN: true }));
    await gradProperty(arb, ([{ shape, data }, a, b]) => ({ fn: (x) => T.affine(x, a, b), inputs: [input(data, shape)] }), { numRuns: RUNS });
  });
});

/** Two broadcast-compatible tensors with values from the given domains. */
function pairArb(va: ValueOptions = {}, vb: ValueOptions = {}) {
  return broadcastPairArb({ maxSize: 36 }).chain(([sa, sb, out]) =>
    fc.tuple(valuesArb(sizeOfShape(sa), va), valuesArb(sizeOfShape(sb), vb)).map(([a, b]) => ({ sa, sb, out, a, b })),
  );
}

/** Values on interleaved grids (a = 0.1k + 0.05, b = 0.1k) so a and b never tie. */
function untiedPairArb() {
  const grid = (n: number, off: number) => fc.array(fc.integer({ min: -20, max: 20 }), { minLength: n, maxLength: n }).map((v) => v.map((k) => k * 0.1 + off));
  return broadcastPairArb({ maxSize: 36 }).chain(([sa, sb, out]) =>
    fc.tuple(grid(sizeOfShape(sa), 0.05), grid(sizeOfShape(sb), 0)).map(([a, b]) => ({ sa, sb, out, a, b })),
  );
}

const binaryCases: { name: string; fn: (a: Tensor, b: Tensor) => Tensor; arb: ReturnType<typeof pairArb> }[] = [
  { name: 'add', fn: T.add, arb: pairArb() },
  { name: 'sub', fn: T.sub, arb: pairArb() },
  { name: 'mul', fn: T.mul, arb: pairArb() },
  { name: 'div', fn: T.div, arb: pairArb({}, { avoid: [0], margin: 0.3 }) },
  { name: 'maximum', fn: T.maximum, arb: untiedPairArb() },
  { name: 'minimum', fn: T.minimum, arb: untiedPairArb() },
];

describe('elementwise binary ops: gradients with broadcasting', () => {
  for (const c of binaryCases) {
    it(`gradient of ${c.name} w.r.t. both broadcast operands matches central differences`, async () => {
      await gradProperty(c.arb, ({ sa, sb, a, b }) => ({ fn: c.fn, inputs: [input(a, sa), input(b, sb)] }), { numRuns: RUNS });
    });
  }

  it('gradient of add/sub/mul/div/maximum/minimum with a number operand on either side matches central differences', async () => {
    const ops = ['add', 'sub', 'mul', 'div', 'maximum', 'minimum'] as const;
    const arb = fc.tuple(fc.constantFrom(...ops), fc.boolean(), fc.constantFrom(-1.5, 0.7, 2.25)).chain(([op, left, k]) =>
      // keep x away from k (maximum/minimum ties) and from 0 (division by x)
      tensorArb({}, { avoid: [k, 0], margin: 0.05 }).map((t) => ({ ...t, op, left, k })),
    );
    await gradProperty(arb, ({ shape, data, op, left, k }) => ({
      fn: (x) => (left ? T[op](k, x) : T[op](x, k)),
      inputs: [input(data, shape)],
    }), { numRuns: RUNS });
  });

  it('gradient of where(cond, a, b) w.r.t. a and b matches central differences (cond, a, b broadcast)', async () => {
    const arb = broadcastPairArb({ maxSize: 36 }).chain(([sa, sb, out]) =>
      fc
        .array(fc.boolean(), { minLength: out.length, maxLength: out.length })
        .chain((ones) => {
          const sc = out.map((d, i) => (ones[i] ? 1 : d));
          return fc.tuple(fc.array(fc.integer({ min: 0, max: 1 }), { minLength: sizeOfShape(sc), maxLength: sizeOfShape(sc) }), valuesArb(sizeOfShape(sa)), valuesArb(sizeOfShape(sb)))
            .map(([c, a, b]) => ({ sc, sa, sb, c, a, b }));
        }),
    );
    await gradProperty(arb, ({ sc, sa, sb, c, a, b }) => ({
      fn: (cond, x, y) => T.where(cond, x, y),
      inputs: [ints(c, sc), input(a, sa), input(b, sb)],
    }), { numRuns: RUNS });
  });

  it('gradient flows through a shared input used by several ops (x·x + exp(x) + exp(x))', async () => {
    await gradProperty(tensorArb(), ({ shape, data }) => ({
      fn: (x) => T.add(T.add(T.mul(x, x), T.exp(x)), T.exp(x)),
      inputs: [input(data, shape)],
    }), { numRuns: RUNS });
  });
});

describe('elementwise ops: empty tensors', () => {
  it('unary and broadcast binary ops on 0-size tensors give 0-size outputs and 0-size gradients', async () => {
    const emptyArb = shapeArb({ minRank: 1, minDim: 0 }).filter((s) => sizeOfShape(s) === 0);
    await gradProperty(fc.tuple(emptyArb, fc.constantFrom(...unaryCases)), ([shape, c]) => ({
      fn: (x, y) => T.mul(c.fn(x), y),
      inputs: [input([], shape), input([0.5], [1])],
    }), { numRuns: 30 });
    T.tidy(() => {
      const x = T.zeros([2, 0, 3], { dtype: 'f64', requiresGrad: true });
      const b = T.ones([3], { dtype: 'f64', requiresGrad: true });
      T.sum(T.add(x, b)).backward();
      expect(x.grad!.shape).toEqual([2, 0, 3]);
      expect(Array.from(b.grad!.dataSync())).toEqual([0, 0, 0]); // no element received b
    });
  });
});

describe('elementwise ops: forward properties', () => {
  it('broadcasting matches explicit expansion: op(a, b) == op(broadcastTo(a), broadcastTo(b))', () => {
    const ops = [T.add, T.sub, T.mul, T.maximum, T.minimum, T.div] as const;
    fc.assert(
      fc.property(pairArb({}, { avoid: [0], margin: 0.3 }), fc.constantFrom(...ops), ({ sa, sb, out, a, b }, op) => {
        T.tidy(() => {
          const x = T.tensor(a, sa, { dtype: 'f64' });
          const y = T.tensor(b, sb, { dtype: 'f64' });
          const direct = op(x, y);
          const expanded = op(T.broadcastTo(x, out), T.broadcastTo(y, out));
          expect(direct.shape).toEqual(out);
          expect(Array.from(direct.dataSync())).toEqual(Array.from(expanded.dataSync()));
        });
      }),
      { numRuns: 100 },
    );
  });

  it('broadcastShapes is symmetric and gives the larger of each aligned pair of dims', () => {
    fc.assert(
      fc.property(broadcastPairArb(), ([a, b, out]) => {
        expect(T.broadcastShapes('t', a, b)).toEqual(out);
        expect(T.broadcastShapes('t', b, a)).toEqual(out);
      }),
    );
  });

  it('f32 results agree with f64 results within f32 tolerance for every unary op', async () => {
    for (const c of unaryCases) {
      await fc.assert(
        fc.asyncProperty(tensorArb({}, c.values), async ({ shape, data }) => {
          const [lo, hi] = T.tidy(() => [c.fn(T.tensor(data, shape, { dtype: 'f32' })), c.fn(T.tensor(data, shape, { dtype: 'f64' }))]);
          // inputs are rounded to f32 first, so the tolerance covers the condition number of each op here
          expectAllClose(await read(lo), await read(hi), 1e-5, 2e-5, `${c.name} f32 vs f64`);
          lo.dispose();
          hi.dispose();
        }),
        { numRuns: 20 },
      );
    }
  });

  it('f32 broadcast binary ops agree with f64 within f32 tolerance', async () => {
    const ops = { add: T.add, sub: T.sub, mul: T.mul, div: T.div, maximum: T.maximum, minimum: T.minimum } as const;
    await fc.assert(
      fc.asyncProperty(pairArb({}, { avoid: [0], margin: 0.3 }), fc.constantFrom(...(Object.keys(ops) as (keyof typeof ops)[])), async ({ sa, sb, a, b }, name) => {
        const run = (dtype: 'f32' | 'f64') => ops[name](T.tensor(a, sa, { dtype }), T.tensor(b, sb, { dtype }));
        const [lo, hi] = T.tidy(() => [run('f32'), run('f64')]);
        expectAllClose(await read(lo), await read(hi), 1e-6, 1e-6, `${name} f32 vs f64`);
        lo.dispose();
        hi.dispose();
      }),
      { numRuns: 50 },
    );
  });

  it('erf matches known values to 1e-15', async () => {
    const { erf } = await import('../../../src/tensor/backends/cpu/scalar.js');
    const known: [number, number][] = [
      [0, 0],
      [0.5, 0.5204998778130465],
      [1, 0.8427007929497149],
      [2, 0.9953222650189527],
      [3, 0.9999779095030014],
      [-1.5, -0.9661051464753108],
      [2.5, 0.999593047982555],
      [-4, -0.9999999845827421],
      [7, 1],
    ];
    for (const [x, want] of known) expect(Math.abs(erf(x) - want), `erf(${x})`).toBeLessThanOrEqual(1e-15);
  });

  it('erf is odd and monotone on random points', async () => {
    const { erf } = await import('../../../src/tensor/backends/cpu/scalar.js');
    fc.assert(
      fc.property(fc.double({ min: -7, max: 7, noNaN: true }), fc.double({ min: 0, max: 1, noNaN: true }), (x, d) => {
        expect(erf(-x) === -erf(x)).toBe(true);
        expect(erf(x + d)).toBeGreaterThanOrEqual(erf(x));
      }),
    );
  });

  it('gelu(x) equals x·Φ(x) with Φ from erf, and the tanh form stays within 1e-3 of it', () => {
    T.tidy(() => {
      const xs = Array.from({ length: 41 }, (_, i) => -5 + i * 0.25);
      const x = T.tensor(xs, [41], { dtype: 'f64' });
      const exact = T.gelu(x).dataSync();
      const approx = T.gelu(x, 'tanh').dataSync();
      xs.forEach((v, i) => {
        expect(exact[i]).toBeCloseTo(0.5 * v * (1 + erfRef(v / Math.SQRT2)), 12);
        expect(Math.abs(approx[i] - exact[i])).toBeLessThan(1e-3);
      });
    });
  });

  it('comparisons give 0/1 masks and carry no gradient', () => {
    T.tidy(() => {
      const a = T.tensor([1, 2, 3], [3], { dtype: 'f64', requiresGrad: true });
      const m = T.gt(a, 2);
      expect(Array.from(m.dataSync())).toEqual([0, 0, 1]);
      expect(m.requiresGrad).toBe(false);
    });
  });
});

/** An erf independent of the engine's (a different series), accurate to ~1e-15 for |x| <= 4. */
function erfRef(x: number): number {
  // erf(x) = 2/√π · e^{-x²} Σ 2^n x^{2n+1} / (1·3·…·(2n+1))
  let term = x;
  let s = x;
  for (let n = 1; n < 200; n++) {
    term *= (2 * x * x) / (2 * n + 1);
    s += term;
  }
  return (2 / Math.sqrt(Math.PI)) * Math.exp(-x * x) * s;
}
