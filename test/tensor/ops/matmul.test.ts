// matmul and matmulT: gradients for broadcast batch dims, every transA/transB combination and the
// 1-D cases; forward properties against a naive product and associativity; a linear layer's bias
// gradient taken from its weight-gradient matmul (equal to the separate reduce, on the CPU and on
// WebGPU, where it costs no dispatch of its own); the GELU and residual epilogues: gradients, equal
// to the separate ops, the pre-activation stored only for a backward, one dispatch fewer on WebGPU.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import * as T from '../../../src/tensor/index.js';
import { broadcastPairArb, sizeOfShape, valuesArb } from '../../helpers/arbitraries.js';
import { expectAllClose, gradProperty, input, read } from '../../helpers/gradients.js';
import { describeGpu, gpu } from '../../helpers/webgpu.js';

const RUNS = 30;
const dim = fc.integer({ min: 1, max: 4 });

/** Batch shapes that broadcast (rank 0-2), matrix sizes m, k, n and the transpose flags. */
const matmulCaseArb = fc
  .tuple(broadcastPairArb({ maxRank: 2, maxDim: 3, maxSize: 6 }), dim, dim, dim, fc.boolean(), fc.boolean())
  .chain(([[ba, bb, batch], m, k, n, transA, transB]) => {
    const sa = [...ba, ...(transA ? [k, m] : [m, k])];
    const sb = [...bb, ...(transB ? [n, k] : [k, n])];
    return fc.tuple(valuesArb(sizeOfShape(sa)), valuesArb(sizeOfShape(sb))).map(([a, b]) => ({ sa, sb, a, b, batch, m, k, n, transA, transB }));
  });

/** op(a) @ op(b) with plain loops over the broadcast batch. */
function naive(c: { sa: number[]; sb: number[]; a: number[]; b: number[]; batch: number[]; m: number; k: number; n: number; transA: boolean; transB: boolean }): number[] {
  const out: number[] = [];
  const nb = sizeOfShape(c.batch);
  const batchOffset = (i: number, s: number[]) => {
    // index of batch element i in an operand whose batch shape s broadcasts to c.batch
    const bs = s.slice(0, -2);
    let rem = i;
    const idx = c.batch.map(() => 0);
    for (let d = c.batch.length - 1; d >= 0; d--) {
      idx[d] = rem % c.batch[d];
      rem = Math.floor(rem / c.batch[d]);
    }
    const off = c.batch.length - bs.length;
    return bs.reduce((o, d, j) => o * d + (d === 1 ? 0 : idx[j + off]), 0);
  };
  for (let bi = 0; bi < nb; bi++) {
    const ao = batchOffset(bi, c.sa) * c.m * c.k;
    const bo = batchOffset(bi, c.sb) * c.k * c.n;
    for (let i = 0; i < c.m; i++) {
      for (let j = 0; j < c.n; j++) {
        let s = 0;
        for (let kk = 0; kk < c.k; kk++) {
          const av = c.transA ? c.a[ao + kk * c.m + i] : c.a[ao + i * c.k + kk];
          const bv = c.transB ? c.b[bo + j * c.k + kk] : c.b[bo + kk * c.n + j];
          s += av * bv;
        }
        out.push(s);
      }
    }
  }
  return out;
}

describe('matmul: gradients', () => {
  for (const [transA, transB] of [[false, false], [true, false], [false, true], [true, true]] as const) {
    it(`gradient of matmulT(transA=${transA}, transB=${transB}) with broadcast batch dims matches central differences`, async () => {
      const arb = matmulCaseArb.map((c) => c).filter((c) => c.transA === transA && c.transB === transB);
      await gradProperty(arb, (c) => ({ fn: (a, b) => T.matmulT(a, b, transA, transB), inputs: [input(c.a, c.sa), input(c.b, c.sb)] }), { numRuns: 20 });
    });
  }

  it('gradient of matmulT with a bias epilogue (every transpose, broadcast batches) matches central differences, bias included', async () => {
    const arb = matmulCaseArb.chain((c) => valuesArb(c.n).map((bias) => ({ ...c, bias })));
    await gradProperty(arb, (c) => ({
      fn: (a, b, bias) => T.matmulT(a, b, c.transA, c.transB, bias),
      inputs: [input(c.a, c.sa), input(c.b, c.sb), input(c.bias, [c.n])],
    }), { numRuns: 25 });
  });

  it('the bias epilogue equals matmul then a broadcast add, and a bias of the wrong shape throws naming matmul', async () => {
    await fc.assert(fc.asyncProperty(matmulCaseArb.chain((c) => valuesArb(c.n).map((bias) => ({ ...c, bias }))), async (c) => {
      const a = T.tensor(c.a, c.sa, { dtype: 'f64' });
      const b = T.tensor(c.b, c.sb, { dtype: 'f64' });
      const bias = T.tensor(c.bias, [c.n], { dtype: 'f64' });
      expectAllClose(await read(T.matmulT(a, b, c.transA, c.transB, bias)), await read(T.add(T.matmulT(a, b, c.transA, c.transB), bias)), 1e-12, 1e-12);
    }), { numRuns: RUNS });
    const a = T.tensor([1, 2, 3, 4, 5, 6], [2, 3]);
    const b = T.tensor([1, 2, 3, 4, 5, 6], [3, 2]);
    expect(() => T.matmulT(a, b, false, false, T.tensor([1, 2, 3], [3]))).toThrow(/matmul: bias \[3\].*must be \[2\]/);
    expect(() => T.matmulT(a, b, false, false, T.tensor([1, 2], [1, 2]))).toThrow(/matmul: bias/);
  });

  it('a bias per matrix ([...batch, n]) equals matmul then adding each matrix its own row, and its gradient matches central differences', async () => {
    const arb = matmulCaseArb.chain((c) => valuesArb(sizeOfShape(c.batch) * c.n).map((bias) => ({ ...c, bias, sbias: [...c.batch, c.n] })));
    await fc.assert(fc.asyncProperty(arb, async (c) => {
      const a = T.tensor(c.a, c.sa, { dtype: 'f64' });
      const b = T.tensor(c.b, c.sb, { dtype: 'f64' });
      const bias = T.tensor(c.bias, c.sbias, { dtype: 'f64' });
      const want = T.add(T.matmulT(a, b, c.transA, c.transB), T.unsqueeze(bias, -2));
      expectAllClose(await read(T.matmulT(a, b, c.transA, c.transB, bias)), await read(want), 1e-12, 1e-12);
    }), { numRuns: RUNS });
    await gradProperty(arb, (c) => ({
      fn: (a, b, bias) => T.matmulT(a, b, c.transA, c.transB, bias),
      inputs: [input(c.a, c.sa), input(c.b, c.sb), input(c.bias, c.sbias)],
    }), { numRuns: 20 });
    // A per-matrix bias must have the output's batch shape exactly.
    const a = T.tensor([1, 2, 3, 4, 5, 6, 7, 8], [2, 2, 2]);
    const b = T.tensor([1, 2, 3, 4], [2, 2]);
    expect(() => T.matmulT(a, b, false, false, T.tensor([1, 2, 3, 4, 5, 6], [3, 2]))).toThrow(/matmul: bias \[3, 2\].*\[2, 2\]/);
  });

  it('gradient of matmul with broadcast batch dims (NumPy semantics) matches central differences', async () => {
    const arb = matmulCaseArb.map((c) => ({ ...c, transA: false, transB: false, sa: [...c.sa.slice(0, -2), c.m, c.k], sb: [...c.sb.slice(0, -2), c.k, c.n] }));
    await gradProperty(arb, (c) => ({ fn: T.matmul, inputs: [input(c.a, c.sa), input(c.b, c.sb)] }), { numRuns: RUNS });
  });

  it('gradient of matmul with 1-D operands (vector·vector, vector·matrix, matrix·vector, batched) matches central differences', async () => {
    const arb = fc.tuple(fc.constantFrom('vv', 'vm', 'mv', 'bv', 'vb'), dim, dim, dim).chain(([kind, m, k, n]) => {
      const shapes: Record<string, [number[], number[]]> = {
        vv: [[k], [k]],
        vm: [[k], [k, n]],
        mv: [[m, k], [k]],
        bv: [[2, m, k], [k]],
        vb: [[k], [2, k, n]],
      };
      const [sa, sb] = shapes[kind];
      return fc.tuple(valuesArb(sizeOfShape(sa)), valuesArb(sizeOfShape(sb))).map(([a, b]) => ({ sa, sb, a, b }));
    });
    await gradProperty(arb, (c) => ({ fn: T.matmul, inputs: [input(c.a, c.sa), input(c.b, c.sb)] }), { numRuns: RUNS });
  });
});

// ---- the GELU and residual epilogues ----

const activationArb = fc.constantFrom<'gelu' | 'geluTanh'>('gelu', 'geluTanh');
/** A matmul case with an optional bias ([n] or one per matrix) and a residual of the output's shape. */
const epilogueCaseArb = matmulCaseArb.chain((c) => {
  const out = [...c.batch, c.m, c.n];
  return fc.record({
    bias: fc.option(fc.constantFrom<'shared' | 'perBatch'>('shared', 'perBatch'), { nil: null }),
    biasValues: valuesArb(sizeOfShape(c.batch) * c.n),
    residual: valuesArb(sizeOfShape(out)),
    activation: activationArb,
  }).map((e) => ({ ...c, ...e, out, sbias: e.bias === 'perBatch' ? [...c.batch, c.n] : [c.n] }));
});
type EpilogueCase = typeof epilogueCaseArb extends fc.Arbitrary<infer C> ? C : never;
const biasData = (c: EpilogueCase) => (c.bias === 'perBatch' ? c.biasValues : c.biasValues.slice(0, c.n));

describe('matmul: the GELU and residual epilogues', () => {
  it('gradient of matmulT with a GELU epilogue (erf or tanh form, with or without a bias, every transpose, broadcast batches) matches central differences', async () => {
    await gradProperty(epilogueCaseArb, (c) => ({
      fn: (a, b, bias) => T.matmulT(a, b, c.transA, c.transB, c.bias ? bias : null, { activation: c.activation }),
      inputs: [input(c.a, c.sa), input(c.b, c.sb), input(biasData(c), c.sbias)],
      skip: c.bias ? [] : [2],
    }), { numRuns: 30 });
  });

  it('gradient of matmulT with a residual epilogue (with or without a bias; the residual of the output\'s shape or flattened to [rows, n], as linear passes it) matches central differences, the residual\'s included', async () => {
    await gradProperty(fc.tuple(epilogueCaseArb, fc.boolean()), ([c, flat]) => ({
      fn: (a, b, r, bias) => T.matmulT(a, b, c.transA, c.transB, c.bias ? bias : null, { residual: r }),
      inputs: [input(c.a, c.sa), input(c.b, c.sb), input(c.residual, flat ? [sizeOfShape(c.out) / c.n, c.n] : c.out), input(biasData(c), c.sbias)],
      skip: c.bias ? [] : [3],
    }), { numRuns: 40 });
  });

  it('the epilogues equal the separate ops in f64, values and gradients: gelu(matmulT(...)) and add(residual, matmulT(...))', async () => {
    await fc.assert(fc.asyncProperty(epilogueCaseArb, fc.boolean(), async (c, residualForm) => {
      const run = (fused: boolean) => T.tidy(() => {
        const a = T.tensor(c.a, c.sa, { dtype: 'f64', requiresGrad: true });
        const b = T.tensor(c.b, c.sb, { dtype: 'f64', requiresGrad: true });
        const bias = c.bias ? T.tensor(biasData(c), c.sbias, { dtype: 'f64', requiresGrad: true }) : null;
        const r = T.tensor(c.residual, c.out, { dtype: 'f64', requiresGrad: true });
        let y: T.Tensor;
        if (residualForm) y = fused ? T.matmulT(a, b, c.transA, c.transB, bias, { residual: r }) : T.add(r, T.matmulT(a, b, c.transA, c.transB, bias));
        else y = fused ? T.matmulT(a, b, c.transA, c.transB, bias, { activation: c.activation }) : T.gelu(T.matmulT(a, b, c.transA, c.transB, bias), c.activation === 'geluTanh' ? 'tanh' : 'none');
        const w = T.tensor(Array.from({ length: y.size }, (_, j) => Math.sin(j + 1)), y.shape, { dtype: 'f64' });
        T.sum(T.mul(y, w)).backward();
        return [y, a.grad!, b.grad!, ...(bias ? [bias.grad!] : []), ...(residualForm ? [r.grad!] : [])].map((t) => Array.from(t.dataSync()));
      });
      expect(run(true)).toEqual(run(false));
    }), { numRuns: RUNS });
  });

  it('the GELU epilogue stores the pre-activation only when a gradient will be recorded (not under noGrad, nor without an input requiring one)', () => {
    const seen: boolean[] = [];
    const backend = new T.CpuBackend();
    const inner = backend.matmulEpilogue.bind(backend);
    backend.matmulEpilogue = (a, b, p, e) => {
      const r = inner(a, b, p, e);
      seen.push(r.pre !== null);
      return r;
    };
    T.tidy(() => {
      const opts = { backend, requiresGrad: true };
      const [x, w] = [T.tensor([1, 2, 3, 4], [2, 2], opts), T.tensor([0.5, -1, 2, 0.25], [2, 2], opts)];
      T.matmulT(x, w, false, false, null, { activation: 'gelu' });
      T.noGrad(() => T.matmulT(x, w, false, false, null, { activation: 'gelu' }));
      T.matmulT(T.tensor([1, 2, 3, 4], [2, 2], { backend }), T.tensor([1, 2, 3, 4], [2, 2], { backend }), false, false, null, { activation: 'geluTanh' });
    });
    expect(seen).toEqual([true, false, false]);
  });

  it('an activation with a residual, or a residual not of the output\'s shape, throws naming matmul', () => {
    T.tidy(() => {
      const a = T.tensor([1, 2, 3, 4, 5, 6], [2, 3]);
      const b = T.tensor([1, 2, 3, 4, 5, 6], [3, 2]);
      expect(() => T.matmulT(a, b, false, false, null, { activation: 'gelu', residual: T.zeros([2, 2]) })).toThrow(/matmul: an activation and a residual/);
      expect(() => T.matmulT(a, b, false, false, null, { residual: T.zeros([2]) })).toThrow(/matmul: residual \[2\] must have the output's shape \[2, 2\]/);
    });
  });
});

describe('matmul: forward properties', () => {
  it('matmulT equals a naive triple loop for every transpose combination and broadcast batch', () => {
    fc.assert(
      fc.property(matmulCaseArb, (c) => {
        T.tidy(() => {
          const y = T.matmulT(T.tensor(c.a, c.sa, { dtype: 'f64' }), T.tensor(c.b, c.sb, { dtype: 'f64' }), c.transA, c.transB);
          expect(y.shape).toEqual([...c.batch, c.m, c.n]);
          expectAllClose(y.dataSync(), naive(c), 1e-12, 1e-12, 'matmulT');
        });
      }),
      { numRuns: 100 },
    );
  });

  it('f32 matmulT agrees with f64 within f32 tolerance', async () => {
    await fc.assert(
      fc.asyncProperty(matmulCaseArb, async (c) => {
        const run = (dtype: 'f32' | 'f64') => T.matmulT(T.tensor(c.a, c.sa, { dtype }), T.tensor(c.b, c.sb, { dtype }), c.transA, c.transB);
        const [lo, hi] = T.tidy(() => [run('f32'), run('f64')]);
        expectAllClose(await read(lo), await read(hi), 1e-5, 1e-5, 'matmulT f32 vs f64');
        lo.dispose();
        hi.dispose();
      }),
      { numRuns: 50 },
    );
  });

  it('matmul is associative: (AB)C == A(BC) within 1e-10 in f64 and 1e-4 in f32', () => {
    fc.assert(
      fc.property(dim, dim, dim, dim, fc.integer({ min: 0, max: 1000 }), (m, k, l, n, seed) => {
        T.tidy(() => {
          for (const [dtype, tol] of [['f64', 1e-10], ['f32', 1e-4]] as const) {
            const g = new T.Generator(seed);
            const A = T.randn([m, k], { dtype, generator: g });
            const B = T.randn([k, l], { dtype, generator: g });
            const C = T.randn([l, n], { dtype, generator: g });
            expectAllClose(T.matmul(T.matmul(A, B), C).dataSync(), T.matmul(A, T.matmul(B, C)).dataSync(), tol, tol, `associativity ${dtype}`);
          }
        });
      }),
      { numRuns: 50 },
    );
  });

  it('a zero inner dimension gives zeros; zero outer dimensions give empty results, with gradients of the input shapes', () => {
    T.tidy(() => {
      const a = T.zeros([2, 0], { dtype: 'f64', requiresGrad: true });
      const b = T.zeros([0, 3], { dtype: 'f64', requiresGrad: true });
      const y = T.matmul(a, b);
      expect(y.shape).toEqual([2, 3]);
      expect(Array.from(y.dataSync())).toEqual([0, 0, 0, 0, 0, 0]);
      T.sum(y).backward();
      expect(a.grad!.shape).toEqual([2, 0]);
      expect(b.grad!.shape).toEqual([0, 3]);
      expect(T.matmul(T.zeros([0, 2]), T.zeros([2, 4])).shape).toEqual([0, 4]);
    });
  });

  it('an inner-dimension mismatch throws naming matmul and both shapes', () => {
    T.tidy(() => {
      expect(() => T.matmul(T.zeros([2, 3]), T.zeros([4, 5]))).toThrowError(/matmul: inner dims differ: \[2, 3\] @ \[4, 5\] \(3 vs 4\)/);
      expect(() => T.matmul(T.zeros([2, 2, 3]), T.zeros([3, 3, 4]))).toThrowError(/matmul: .*\[2\].*\[3\]/);
    });
  });
});

// A linear layer y = op(x)·op(W) + b (W stored [in, out], or [out, in] read transposed; one matrix,
// or K stacked ones with a bias each) gets its bias gradient from its weight-gradient matmul.
interface LinearCase { K: number; rows: number; inF: number; outF: number; transA: boolean; transB: boolean; x: number[]; w: number[]; b: number[] }

const linearCaseArb: fc.Arbitrary<LinearCase> = fc
  .record({ K: fc.integer({ min: 0, max: 3 }), rows: fc.integer({ min: 1, max: 7 }), inF: fc.integer({ min: 1, max: 6 }), outF: fc.integer({ min: 1, max: 6 }), transA: fc.boolean(), transB: fc.boolean() })
  .chain((c) => {
    const lead = c.K > 0 ? c.K : 1;
    return fc.tuple(valuesArb(lead * c.rows * c.inF), valuesArb(lead * c.inF * c.outF), valuesArb(lead * c.outF)).map(([x, w, b]) => ({ ...c, x, w, b }));
  });

/** Shapes of x, W and b (K = 0: one matrix and a shared bias [out]). */
function linearShapes(c: LinearCase): [number[], number[], number[]] {
  const lead = c.K > 0 ? [c.K] : [];
  return [[...lead, ...(c.transA ? [c.inF, c.rows] : [c.rows, c.inF])], [...lead, ...(c.transB ? [c.outF, c.inF] : [c.inF, c.outF])], [...lead, c.outF]];
}

const linearFn = (c: LinearCase) => (x: T.Tensor, w: T.Tensor, b: T.Tensor) => T.matmulT(x, w, c.transA, c.transB, b);

/** Gradients of x, W and b of Σ y·r on a backend; with frozenWeight, of x and b only (W a constant: the bias gradient then reduces g on its own). */
async function linearGrads(c: LinearCase, backend: T.Backend, dtype: 'f32' | 'f64', frozenWeight = false): Promise<Float64Array[]> {
  const [sx, sw, sb] = linearShapes(c);
  const grads = T.tidy(() => {
    const [x, w, b] = [T.tensor(c.x, sx, { backend, dtype }), T.tensor(c.w, sw, { backend, dtype }), T.tensor(c.b, sb, { backend, dtype })];
    const loss = (xx: T.Tensor, ww: T.Tensor, bb: T.Tensor) => {
      const y = linearFn(c)(xx, ww, bb);
      return T.sum(T.mul(y, T.tensor(Array.from({ length: y.size }, (_, j) => Math.sin(12.9898 * (j + 1)) * 2), y.shape, { backend, dtype })));
    };
    return frozenWeight ? T.valueAndGrad((xx, bb) => loss(xx, w, bb))(x, b).grads : T.valueAndGrad(loss)(x, w, b).grads;
  });
  const out = await Promise.all(grads.map(read));
  grads.forEach((g) => g.dispose());
  return out;
}

describe('matmul: the bias gradient from the weight-gradient matmul (CPU)', () => {
  it('a linear layer with bias (W [in, out] or [out, in], one matrix or K stacked, x transposed or not) passes gradcheck', async () => {
    await gradProperty(linearCaseArb, (c) => {
      const [sx, sw, sb] = linearShapes(c);
      return { fn: linearFn(c), inputs: [input(c.x, sx), input(c.w, sw), input(c.b, sb)] };
    }, { numRuns: 40 });
  });

  it('the fused bias gradient equals the separate reduce (the weight frozen) within 1e-12 in f64', async () => {
    await fc.assert(fc.asyncProperty(linearCaseArb, async (c) => {
      const [fused, alone] = [await linearGrads(c, T.cpu, 'f64'), await linearGrads(c, T.cpu, 'f64', true)];
      expectAllClose(fused[2], alone[1], 1e-12, 1e-12, 'bias gradient');
      expectAllClose(fused[0], alone[0], 1e-12, 1e-12, 'input gradient');
    }), { numRuns: RUNS });
  });
});

describeGpu('matmul: the bias gradient from the weight-gradient matmul (WebGPU)', () => {
  it('gradients of a linear layer with bias match the CPU float64 ones (both weight layouts, stacked or not)', async () => {
    await gradProperty(linearCaseArb, (c) => {
      const [sx, sw, sb] = linearShapes(c);
      return { fn: linearFn(c), inputs: [input(c.x, sx), input(c.w, sw), input(c.b, sb)] };
    }, { numRuns: 16, backend: gpu });
  });

  it('the fused bias gradient equals the separate reduce (the weight frozen) within f32 rounding', async () => {
    await fc.assert(fc.asyncProperty(linearCaseArb, async (c) => {
      const [fused, alone] = [await linearGrads(c, gpu, 'f32'), await linearGrads(c, gpu, 'f32', true)];
      expectAllClose(fused[2], alone[1], 1e-5, 1e-5, 'bias gradient');
    }), { numRuns: 16 });
  });

  it('the bias gradient adds no dispatch to a linear backward; computed apart (the weight frozen) it adds at least a reduce', async () => {
    /** Dispatches of the backward alone. */
    const backwardDispatches = (c: LinearCase, bias: boolean, frozenWeight: boolean): number => T.tidy(() => {
      const [sx, sw, sb] = linearShapes(c);
      const x = T.tensor(c.x, sx, { backend: gpu, requiresGrad: true });
      const w = T.tensor(c.w, sw, { backend: gpu, requiresGrad: !frozenWeight });
      const b = T.tensor(c.b, sb, { backend: gpu, requiresGrad: true });
      const loss = T.sum(T.matmulT(x, w, c.transA, c.transB, bias ? b : null));
      gpu.resetCounters();
      T.backward(loss);
      return gpu.counters().dispatches;
    });
    for (const K of [0, 3]) {
      for (const transB of [false, true]) {
        const c: LinearCase = { K, rows: 6, inF: 5, outF: 7, transA: false, transB, x: [], w: [], b: [] };
        const lead = K > 0 ? K : 1;
        Object.assign(c, { x: seqValues(lead * 30), w: seqValues(lead * 35), b: seqValues(lead * 7) });
        const what = `K ${K}, transB ${transB}`;
        expect(backwardDispatches(c, true, false), what).toBe(backwardDispatches(c, false, false));
        // Apart: a reduce of g (and a copy of the reduced view into the leaf's gradient).
        expect(backwardDispatches(c, true, true), what).toBeGreaterThan(backwardDispatches(c, false, true));
      }
    }
    await gpu.sync();
  });
});

describeGpu('matmul: the GELU and residual epilogues on WebGPU', () => {
  it('equal the separate ops bit for bit, values and gradients, with one forward dispatch fewer and no backward dispatch more', async () => {
    await fc.assert(fc.asyncProperty(epilogueCaseArb, fc.boolean(), async (c, residualForm) => {
      const bitsOf = async (ts: T.Tensor[]) => Promise.all(ts.map(async (t) => Array.from(new Uint32Array(Float32Array.from(await t.data()).buffer))));
      const run = async (fused: boolean) => {
        const opts = { backend: gpu, requiresGrad: true };
        const a = T.tensor(c.a, c.sa, opts);
        const b = T.tensor(c.b, c.sb, opts);
        const bias = c.bias ? T.tensor(biasData(c), c.sbias, opts) : null;
        const r = T.tensor(c.residual, c.out, opts);
        const w = T.tensor(Array.from({ length: sizeOfShape(c.out) }, (_, j) => Math.sin(j + 1)), c.out, { backend: gpu });
        gpu.resetCounters();
        let y: T.Tensor;
        if (residualForm) y = fused ? T.matmulT(a, b, c.transA, c.transB, bias, { residual: r }) : T.add(r, T.matmulT(a, b, c.transA, c.transB, bias));
        else y = fused ? T.matmulT(a, b, c.transA, c.transB, bias, { activation: c.activation }) : T.gelu(T.matmulT(a, b, c.transA, c.transB, bias), c.activation === 'geluTanh' ? 'tanh' : 'none');
        const forward = gpu.counters().dispatches;
        const loss = T.sum(T.mul(y, w));
        gpu.resetCounters();
        loss.backward();
        const backward = gpu.counters().dispatches;
        const values = await bitsOf([y, a.grad!, b.grad!, ...(bias ? [bias.grad!] : []), ...(residualForm ? [r.grad!] : [])]);
        [a, b, r, w, y, loss, ...(bias ? [bias] : [])].forEach((t) => t.dispose());
        return { forward, backward, values };
      };
      const [fused, plain] = [await run(true), await run(false)];
      expect(fused.values).toEqual(plain.values);
      expect(plain.forward - fused.forward).toBe(1);
      // The same backward kernels; with a residual the separate add hands one gradient to two
      // inputs, so the leaf residual may get a copy of it that the fused op's single use saves.
      if (residualForm) expect(plain.backward - fused.backward).toBeOneOf([0, 1]);
      else expect(fused.backward).toBe(plain.backward);
    }), { numRuns: 12, interruptAfterTimeLimit: 120_000 });
  }, 150_000);
});

function seqValues(n: number): number[] {
  return Array.from({ length: n }, (_, i) => Math.sin(i + 1));
}
