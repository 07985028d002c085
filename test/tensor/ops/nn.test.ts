// Neural-network ops: softmax, logSoftmax, layerNorm, gatherLogProbs, crossEntropy, dropout and
// attention. Gradients by gradcheck; forward properties of each (normalization, masking, seeds).

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import * as T from '../../../src/tensor/index.js';
import type { Tensor } from '../../../src/tensor/index.js';
import { philox4x32 } from '../../../src/tensor/random/philox.js';
import { axisArb, indicesArb, shapeArb, sizeOfShape, tensorArb, valuesArb } from '../../helpers/arbitraries.js';
import { expectAllClose, gradProperty, input, ints, read } from '../../helpers/gradients.js';

const RUNS = 30;

const softmaxArb = tensorArb({ minRank: 1 }).chain((t) => axisArb(t.shape.length).map((axis) => ({ ...t, axis })));

/** logits [...lead, V] and targets [...lead] in [0, V), some replaced by the ignore index. */
const classArb = fc
  .tuple(shapeArb({ maxRank: 2, maxDim: 4 }), fc.integer({ min: 1, max: 5 }), fc.constantFrom(-100, -1, 0))
  .chain(([lead, V, ignoreIndex]) =>
    fc.tuple(valuesArb(sizeOfShape(lead) * V), indicesArb(sizeOfShape(lead), V), fc.array(fc.boolean(), { minLength: sizeOfShape(lead), maxLength: sizeOfShape(lead) }))
      .map(([logits, t, drop]) => ({ lead, V, ignoreIndex, logits, targets: t.map((v, i) => (drop[i] ? ignoreIndex : v)) })),
  );

/** q [B, H, Tq, D], k and v [B, H, Tk, D] (Tk >= Tq), a key mask [B, Tk]. */
const attentionArb = fc
  .tuple(fc.integer({ min: 1, max: 2 }), fc.integer({ min: 1, max: 2 }), fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 3 }))
  .chain(([B, H, Tq, Tk0, D]) => {
    const Tk = Math.max(Tk0, Tq);
    return fc.tuple(valuesArb(B * H * Tq * D), valuesArb(B * H * Tk * D), valuesArb(B * H * Tk * D), fc.array(fc.integer({ min: 0, max: 1 }), { minLength: B * Tk, maxLength: B * Tk }))
      .map(([q, k, v, m]) => {
        // Keys 0 and Tk−1 are always real, so every query (causal or not) sees one: a query whose keys
        // are all masked gets scores near −1e9, where f64 keeps only ~1e-7 of the logits' precision.
        for (let b = 0; b < B; b++) m[b * Tk] = m[b * Tk + Tk - 1] = 1;
        return { B, H, Tq, Tk, D, q, k, v, mask: m };
      });
  });
type AttnCase = typeof attentionArb extends fc.Arbitrary<infer C> ? C : never;

describe('nn ops: gradients', () => {
  it('gradient of softmax along any axis matches central differences (atol 1e-6, rtol 1e-5)', async () => {
    await gradProperty(softmaxArb, ({ shape, data, axis }) => ({ fn: (x) => T.softmax(x, axis), inputs: [input(data, shape)] }), { numRuns: RUNS });
  });

  it('gradient of logSoftmax along any axis matches central differences', async () => {
    await gradProperty(softmaxArb, ({ shape, data, axis }) => ({ fn: (x) => T.logSoftmax(x, axis), inputs: [input(data, shape)] }), { numRuns: RUNS });
  });

  it('gradient of layerNorm w.r.t. x, gamma and beta matches central differences', async () => {
    const arb = tensorArb({ minRank: 1 }).chain((t) => {
      const C = t.shape[t.shape.length - 1];
      return fc.tuple(valuesArb(C), valuesArb(C)).map(([gamma, beta]) => ({ ...t, C, gamma, beta }));
    });
    await gradProperty(arb, ({ shape, data, C, gamma, beta }) => ({
      fn: (x, g, b) => T.layerNorm(x, g, b),
      inputs: [input(data, shape), input(gamma, [C]), input(beta, [C])],
    }), { numRuns: RUNS });
  });

  it('gradient of layerNorm with a stacked affine (gamma, beta [G, C]) matches central differences', async () => {
    const arb = fc.tuple(fc.integer({ min: 1, max: 3 }), shapeArb({ maxRank: 2, maxDim: 3 }), fc.integer({ min: 1, max: 4 })).chain(([G, mid, C]) => {
      const shape = [G, ...mid, C];
      return fc.tuple(valuesArb(sizeOfShape(shape)), valuesArb(G * C), valuesArb(G * C)).map(([data, gamma, beta]) => ({ shape, G, C, data, gamma, beta }));
    });
    await gradProperty(arb, ({ shape, G, C, data, gamma, beta }) => ({
      fn: (x, g, b) => T.layerNorm(x, g, b),
      inputs: [input(data, shape), input(gamma, [G, C]), input(beta, [G, C])],
    }), { numRuns: RUNS });
  });

  it('gradient of gatherLogProbs (ignored targets < 0 get no gradient) matches central differences', async () => {
    await gradProperty(classArb.filter((c) => c.ignoreIndex < 0), (c) => ({
      fn: (l, t) => T.gatherLogProbs(l, t),
      inputs: [input(c.logits, [...c.lead, c.V]), ints(c.targets, c.lead)],
    }), { numRuns: RUNS });
  });

  for (const reduction of ['mean', 'sum', 'none'] as const) {
    it(`gradient of crossEntropy (reduction ${reduction}, with ignore index) matches central differences`, async () => {
      // 'mean' over zero valid targets is NaN (as in PyTorch); require one valid target there
      const arb = classArb.filter((c) => reduction !== 'mean' || c.targets.some((t) => t !== c.ignoreIndex));
      await gradProperty(arb, (c) => ({
        fn: (l, t) => T.crossEntropy(l, t, { reduction, ignoreIndex: c.ignoreIndex }),
        inputs: [input(c.logits, [...c.lead, c.V]), ints(c.targets, c.lead)],
      }), { numRuns: RUNS });
    });
  }

  it('gradient of dropout with a fixed seed (fixed mask) matches central differences', async () => {
    const arb = fc.tuple(tensorArb(), fc.constantFrom(0.1, 0.5, 0.9), fc.integer({ min: 0, max: 1 << 30 }));
    await gradProperty(arb, ([{ shape, data }, p, seed]) => ({
      fn: (x) => T.dropout(x, p, { generator: new T.Generator(seed) }),
      inputs: [input(data, shape)],
    }), { numRuns: RUNS });
  });

  const attentionVariants: [string, (c: AttnCase) => T.AttentionOptions | null][] = [
    ['bidirectional', () => ({})],
    ['causal', () => ({ causal: true })],
    ['with a key mask', () => null],
    ['causal with a key mask', () => ({ causal: true })],
  ];
  for (const [name, opts] of attentionVariants) {
    it(`gradient of attention (${name}) w.r.t. q, k and v matches central differences`, async () => {
      const masked = name.includes('key mask');
      await gradProperty(attentionArb, (c) => ({
        fn: (q, k, v, m) => T.attention(q, k, v, { ...(opts(c) ?? {}), ...(masked ? { keyMask: m } : {}) }),
        inputs: [input(c.q, [c.B, c.H, c.Tq, c.D]), input(c.k, [c.B, c.H, c.Tk, c.D]), input(c.v, [c.B, c.H, c.Tk, c.D]), ints(c.mask, [c.B, c.Tk])],
      }), { numRuns: 20 });
    });
  }
});

const f64 = (data: ArrayLike<number>, shape: readonly number[]) => T.tensor(data, shape, { dtype: 'f64' });

describe('nn ops: forward properties', () => {
  it('softmax along any axis is positive and sums to 1 along that axis', () => {
    fc.assert(
      fc.property(softmaxArb, ({ shape, data, axis }) => {
        T.tidy(() => {
          const y = T.softmax(f64(data, shape), axis);
          expect(y.dataSync().every((v) => v > 0 && v <= 1)).toBe(true);
          const s = T.sum(y, axis).dataSync();
          expectAllClose(s, new Array(s.length).fill(1), 1e-12, 0, 'row sums');
        });
      }),
      { numRuns: 100 },
    );
  });

  it('logSoftmax equals log(softmax) and stays finite for logits of ±1e4', () => {
    fc.assert(
      fc.property(softmaxArb, fc.constantFrom(1, 1e4, -1e4), ({ shape, data, axis }, scale) => {
        T.tidy(() => {
          const x = f64(data.map((v) => v * scale), shape);
          const ls = T.logSoftmax(x, axis).dataSync();
          expect(ls.every(Number.isFinite)).toBe(true);
          if (scale === 1) expectAllClose(ls, T.log(T.softmax(x, axis)).dataSync(), 1e-12, 1e-12, 'logSoftmax');
        });
      }),
      { numRuns: 50 },
    );
  });

  it('layerNorm with gamma = 1, beta = 0 gives each row zero mean and unit (population) variance', () => {
    fc.assert(
      fc.property(tensorArb({ minRank: 1 }, { min: -5, max: 5 }).filter((t) => t.shape[t.shape.length - 1] >= 2), fc.integer({ min: 0, max: 1000 }), ({ shape }, seed) => {
        T.tidy(() => {
          const C = shape[shape.length - 1];
          // random rows of spread ~1, so eps = 1e-5 perturbs the variance by ~1e-5
          const x = T.randn(shape, { dtype: 'f64', generator: new T.Generator(seed) });
          const sd = T.sqrt(T.variance(x, -1, { correction: 0 })).dataSync();
          fc.pre(sd.every((s) => s > 0.1));
          const y = T.layerNorm(x, T.ones([C], { dtype: 'f64' }), T.zeros([C], { dtype: 'f64' }));
          const mu = T.mean(y, -1).dataSync();
          const v = T.variance(y, -1, { correction: 0 }).dataSync();
          expectAllClose(mu, new Array(mu.length).fill(0), 1e-12, 0, 'row means');
          expectAllClose(v, new Array(v.length).fill(1), 1e-3, 0, 'row variances'); // 1 − eps/σ²
        });
      }),
      { numRuns: 50 },
    );
  });

  it('layerNorm with a stacked affine equals layerNorm of each member with its own gamma and beta', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 3 }), shapeArb({ maxRank: 2, maxDim: 3 }), fc.integer({ min: 1, max: 5 }), fc.integer({ min: 0, max: 1000 }), (G, mid, C, seed) => {
        T.tidy(() => {
          const opts = { dtype: 'f64' as const, generator: new T.Generator(seed) };
          const x = T.randn([G, ...mid, C], opts);
          const gamma = T.randn([G, C], opts);
          const beta = T.randn([G, C], opts);
          const stacked = T.layerNorm(x, gamma, beta).dataSync();
          const each = T.concat(Array.from({ length: G }, (_, g) => T.layerNorm(T.slice(x, 0, g, g + 1), T.reshape(T.slice(gamma, 0, g, g + 1), [C]), T.reshape(T.slice(beta, 0, g, g + 1), [C]))), 0).dataSync();
          expectAllClose(stacked, each, 0, 0, 'stacked vs per member');
        });
      }),
      { numRuns: 30 },
    );
  });

  it('layerNorm rejects a stacked gamma whose first dim is not the input\'s', () => {
    T.tidy(() => {
      expect(() => T.layerNorm(T.zeros([3, 4]), T.ones([2, 4]), T.zeros([2, 4]))).toThrow(/gamma \[2, 4\] and beta \[2, 4\] must be \[4\] or \[3, 4\]/);
    });
  });

  it('crossEntropy (mean) equals −mean of gatherLogProbs over the non-ignored targets; sum and none agree', () => {
    fc.assert(
      fc.property(classArb.filter((c) => c.targets.some((t) => t !== c.ignoreIndex)), (c) => {
        T.tidy(() => {
          const logits = f64(c.logits, [...c.lead, c.V]);
          const t = T.tensor(c.targets, c.lead, { dtype: 'i32' });
          const valid = c.targets.map((v) => (v !== c.ignoreIndex ? 1 : 0));
          const safe = T.tensor(c.targets.map((v) => (v === c.ignoreIndex ? -1 : v)), c.lead, { dtype: 'i32' });
          const lp = T.gatherLogProbs(logits, safe).dataSync();
          const n = valid.reduce((a: number, b) => a + b, 0);
          const want = -Array.from(lp).reduce((a, v, i) => a + v * valid[i], 0) / n;
          expect(T.crossEntropy(logits, t, { ignoreIndex: c.ignoreIndex }).itemSync()).toBeCloseTo(want, 12);
          expect(T.crossEntropy(logits, t, { ignoreIndex: c.ignoreIndex, reduction: 'sum' }).itemSync()).toBeCloseTo(want * n, 11);
          const none = T.crossEntropy(logits, t, { ignoreIndex: c.ignoreIndex, reduction: 'none' }).dataSync();
          none.forEach((v, i) => expect(v).toBeCloseTo(valid[i] ? -lp[i] : 0, 12));
        });
      }),
      { numRuns: 100 },
    );
  });

  it('gatherLogProbs equals logSoftmax gathered at the target', () => {
    fc.assert(
      fc.property(classArb, (c) => {
        T.tidy(() => {
          const logits = f64(c.logits, [...c.lead, c.V]);
          const targets = c.targets.map((v) => (v < 0 ? v : v));
          const lp = T.gatherLogProbs(logits, T.tensor(targets.map((v) => (v === c.ignoreIndex ? -1 : v)), c.lead, { dtype: 'i32' })).dataSync();
          const ls = T.logSoftmax(logits).dataSync();
          targets.forEach((v, r) => expect(lp[r]).toBeCloseTo(v === c.ignoreIndex ? 0 : ls[r * c.V + v], 12));
        });
      }),
      { numRuns: 50 },
    );
  });

  it('a target >= the vocabulary size throws naming gatherLogProbs, the range and the shapes (crossEntropy too)', () => {
    T.tidy(() => {
      const logits = T.zeros([2, 3]);
      const bad = T.tensor([1, 3], [2], { dtype: 'i32' });
      expect(() => T.gatherLogProbs(logits, bad)).toThrowError(/gatherLogProbs: target 3 at row 1 is out of range \[0, 3\) \(logits \[2, 3\], targets \[2\]\)/);
      expect(() => T.crossEntropy(logits, bad)).toThrowError(/gatherLogProbs: target 3/);
    });
  });

  it('causal attention never looks ahead: changing a future key/value leaves earlier outputs unchanged', () => {
    fc.assert(
      fc.property(attentionArb.filter((c) => c.Tq === c.Tk && c.Tk >= 2), fc.nat(), fc.double({ min: 0.5, max: 5, noNaN: true }), (c, pick, shift) => {
        T.tidy(() => {
          const j = 1 + (pick % (c.Tk - 1)); // the future position to change
          const shapeK = [c.B, c.H, c.Tk, c.D];
          const run = (k: number[], v: number[]) => T.attention(f64(c.q, [c.B, c.H, c.Tq, c.D]), f64(k, shapeK), f64(v, shapeK), { causal: true }).dataSync();
          const perturb = (a: number[]) => a.map((x, i) => (Math.floor(i / c.D) % c.Tk === j ? x + shift * (1 + (i % 3)) : x));
          const base = run(c.k, c.v);
          const changed = run(perturb(c.k), perturb(c.v));
          for (let i = 0; i < base.length; i++) {
            const t = Math.floor(i / c.D) % c.Tq;
            if (t < j) expect(changed[i]).toBe(base[i]);
          }
        });
      }),
      { numRuns: 50 },
    );
  });

  it('key-masked positions do not affect any output', () => {
    fc.assert(
      fc.property(attentionArb.filter((c) => c.mask.includes(0)), fc.double({ min: 0.5, max: 50, noNaN: true }), fc.boolean(), (c, shift, causal) => {
        T.tidy(() => {
          const shapeK = [c.B, c.H, c.Tk, c.D];
          const mask = T.tensor(c.mask, [c.B, c.Tk], { dtype: 'i32' });
          const run = (k: number[], v: number[]) => T.attention(f64(c.q, [c.B, c.H, c.Tq, c.D]), f64(k, shapeK), f64(v, shapeK), { causal, keyMask: mask }).dataSync();
          const perturb = (a: number[]) => a.map((x, i) => {
            const b = Math.floor(i / (c.H * c.Tk * c.D));
            const t = Math.floor(i / c.D) % c.Tk;
            return c.mask[b * c.Tk + t] === 0 ? x + shift * (1 + (i % 3)) : x;
          });
          expectAllClose(run(perturb(c.k), perturb(c.v)), run(c.k, c.v), 1e-14, 0, 'masked keys');
        });
      }),
      { numRuns: 50 },
    );
  });

  it('attention equals softmax(q kᵀ / √D) v computed by hand', () => {
    fc.assert(
      fc.property(attentionArb, (c) => {
        T.tidy(() => {
          const q = f64(c.q, [c.B, c.H, c.Tq, c.D]);
          const k = f64(c.k, [c.B, c.H, c.Tk, c.D]);
          const v = f64(c.v, [c.B, c.H, c.Tk, c.D]);
          const want = T.matmul(T.softmax(T.mul(T.matmul(q, T.transpose(k)), 1 / Math.sqrt(c.D))), v);
          expectAllClose(T.attention(q, k, v).dataSync(), want.dataSync(), 1e-12, 1e-12, 'attention');
        });
      }),
      { numRuns: 50 },
    );
  });

  it('dropout is reproducible by seed, zeroes about p of the elements, and scales the rest by 1/(1−p)', () => {
    T.tidy(() => {
      const x = T.ones([4000], { dtype: 'f64' });
      const a = T.dropout(x, 0.3, { generator: new T.Generator(7) }).dataSync();
      const b = T.dropout(x, 0.3, { generator: new T.Generator(7) }).dataSync();
      const c = T.dropout(x, 0.3, { generator: new T.Generator(8) }).dataSync();
      expect(Array.from(a)).toEqual(Array.from(b));
      expect(Array.from(a)).not.toEqual(Array.from(c));
      const zeros = a.filter((v) => v === 0).length;
      expect(Math.abs(zeros / 4000 - 0.3)).toBeLessThan(0.03);
      expect(a.every((v) => v === 0 || Math.abs(v - 1 / 0.7) < 1e-12)).toBe(true);
      expect(T.dropout(x, 0.3, { training: false })).toBe(x);
    });
  });

  it('dropout masks on the CPU are the dropout stream by hand: position c keeps where lane c mod 4 of philox4x32([lo32(c/4), hi32(c/4), 1, 0]) is below 1 − p', () => {
    const position = fc.oneof(fc.integer({ min: 0, max: 64 }), fc.integer({ min: 2 ** 34 - 200, max: 2 ** 34 + 3 }), fc.integer({ min: 0, max: 2 ** 52 }));
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 0, max: 40 }), fc.array(position, { minLength: 4, maxLength: 4 }), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
        fc.constantFrom(0.1, 0.5, 0.9), fc.constantFrom<'f32' | 'f64'>('f32', 'f64'), (S, slab, offs, seed, p, dtype) => {
          const offsets = offs.slice(0, S);
          const gen = new T.Generator(seed);
          const round = dtype === 'f32' ? Math.fround : (v: number) => v;
          const want = offsets.flatMap((o) => Array.from({ length: slab }, (_, j) => {
            const b = BigInt(o + j) / 4n;
            const w = philox4x32([Number(b & 0xffffffffn), Number(b >> 32n), 1, 0], gen.key);
            const u = (w[(o + j) % 4]! >>> 8) * 2 ** -24;
            return u < round(1 - p) ? round(1 / (1 - p)) : 0;
          }));
          const cpu = new T.CpuBackend();
          expect(Array.from(cpu.readSync(cpu.dropoutMask(dtype, S * slab, gen.key, offsets, p)))).toEqual(want);
          T.tidy(() => {
            const y = T.dropout(T.ones([S, slab], { dtype }), p, { generator: gen, offsets });
            expect(Array.from(y.dataSync())).toEqual(want);
          });
        }),
      { numRuns: 200 },
    );
  });

  it.each([0.1, 0.5, 0.9])('dropout (p = %f) keeps 1 − p of 2^16 elements within 5 sigma, and consecutive draws do not repeat the mask', (p) => {
    T.tidy(() => {
      const n = 2 ** 16;
      const gen = new T.Generator(11, 2 ** 34 - n - 1);
      const x = T.ones([n], { dtype: 'f64' });
      const a = T.dropout(x, p, { generator: gen }).dataSync();
      const b = T.dropout(x, p, { generator: gen }).dataSync();
      expect(gen.offset).toBe(2 ** 34 + n - 1);
      const keep = 1 - p;
      for (const m of [a, b]) {
        const kept = Array.from(m).filter((v) => v !== 0).length;
        expect(Math.abs(kept - n * keep)).toBeLessThan(5 * Math.sqrt(n * p * keep));
      }
      // Independent masks agree at a fraction keep² + p² of the elements; a repeated or shifted
      // stream would agree far more often.
      let agree = 0;
      for (let i = 0; i < n; i++) if ((a[i] === 0) === (b[i] === 0)) agree++;
      const q = keep * keep + p * p;
      expect(Math.abs(agree - n * q)).toBeLessThan(5 * Math.sqrt(n * q * (1 - q)));
    });
  });

  it('dropout with explicit slab offsets masks each slab as a dropout drawn at that offset alone, and leaves the generator alone', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 50 }), fc.array(fc.integer({ min: 0, max: 1e6 }), { minLength: 4, maxLength: 4 }), (S, n, offs) => {
        T.tidy(() => {
          const offsets = offs.slice(0, S);
          const x = T.randn([S, n], { dtype: 'f64', generator: new T.Generator(n) });
          const gen = new T.Generator(3);
          const before = gen.state().offset;
          const stacked = T.dropout(x, 0.4, { generator: gen, offsets }).dataSync();
          expect(gen.state().offset).toBe(before);
          const alone = offsets.flatMap((o, s) => {
            const g = new T.Generator(3);
            g.seek(o);
            return Array.from(T.dropout(T.slice(x, 0, s, s + 1), 0.4, { generator: g }).dataSync());
          });
          expect(Array.from(stacked)).toEqual(alone);
        });
      }),
      { numRuns: 30 },
    );
  });

  it('f32 results of softmax, logSoftmax, layerNorm, crossEntropy and attention agree with f64 within f32 tolerance', async () => {
    const ops: [string, (dtype: 'f32' | 'f64', c: AttnCase) => Tensor][] = [
      ['softmax', (dtype, c) => T.softmax(T.tensor(c.q, [c.B, c.H, c.Tq, c.D], { dtype }))],
      ['logSoftmax', (dtype, c) => T.logSoftmax(T.tensor(c.q, [c.B, c.H, c.Tq, c.D], { dtype }), 2)],
      ['layerNorm', (dtype, c) => T.layerNorm(T.tensor(c.k, [c.B, c.H, c.Tk, c.D], { dtype }), T.ones([c.D], { dtype }), T.zeros([c.D], { dtype }))],
      ['crossEntropy', (dtype, c) => T.crossEntropy(T.tensor(c.k, [c.B * c.H * c.Tk, c.D], { dtype }), T.tensor(new Array(c.B * c.H * c.Tk).fill(0), [c.B * c.H * c.Tk], { dtype: 'i32' }))],
      ['attention', (dtype, c) => T.attention(T.tensor(c.q, [c.B, c.H, c.Tq, c.D], { dtype }), T.tensor(c.k, [c.B, c.H, c.Tk, c.D], { dtype }), T.tensor(c.v, [c.B, c.H, c.Tk, c.D], { dtype }), { causal: true, keyMask: T.tensor(c.mask, [c.B, c.Tk], { dtype: 'i32' }) })],
    ];
    await fc.assert(
      fc.asyncProperty(attentionArb, async (c) => {
        for (const [name, op] of ops) {
          const [lo, hi] = T.tidy(() => [op('f32', c), op('f64', c)]);
          // layerNorm of near-constant rows amplifies f32 rounding of the input by rstd ≤ 1/√eps
          expectAllClose(await read(lo), await read(hi), name === 'layerNorm' ? 2e-3 : 1e-5, 1e-4, `${name} f32 vs f64`);
          lo.dispose();
          hi.dispose();
        }
      }),
      { numRuns: 30 },
    );
  });
});
