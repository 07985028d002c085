// The WebGPU backend's heavy methods (matmul, matmulWithSums and matmulEpilogue, indexSelect/indexAdd, softmax, layerNorm,
// gatherLogProbs and their backwards, random, dropoutMask, powerIteration, adamw) agree with the
// CPU reference on the same inputs. Bounds: |gpu − cpu| <= abs + rel·|cpu|, stated per test (f32 on the GPU, f64
// accumulation on the CPU for matmul and the layerNorm parameter gradients).

import fc from 'fast-check';
import { expect, it } from 'vitest';
import type { MatmulActivation, MatmulSums, Storage } from '../../../../src/tensor/backend.js';
import { MATMUL_VARIANT_FEATURE, MATMUL_VARIANTS, matmulWorkgroupBytes, type MatmulVariant } from '../../../../src/shaders/matmul.js';
import { tuneKey } from '../../../../src/tensor/backends/webgpu/matmulTuner.js';
import { broadcastStrides, sizeOf } from '../../../../src/tensor/shape.js';
import { fillDropoutUniform, MAX_OFFSET } from '../../../../src/tensor/random/philox.js';
import { seed, seededValues } from '../../../helpers/backendArbitraries.js';
import { streamOffsetArb } from '../../../helpers/dropoutCases.js';
import { both, cpu, describeGpu, expectClose, gpu, readBoth } from '../../../helpers/webgpu.js';

const RUNS = { numRuns: 25 };
const small = fc.integer({ min: 0, max: 7 });
const pos = fc.integer({ min: 1, max: 9 });

function freeAll(...xs: Storage[]): void {
  for (const x of xs) gpu.free(x);
}

describeGpu('webgpu heavy kernels', () => {
  it('matmul with broadcast batches and transposed operands matches the CPU within 1e-6·k + 1e-5·|cpu|', async () => {
    const batchDims = fc.array(fc.constantFrom(1, 2, 3), { maxLength: 3 });
    await fc.assert(fc.asyncProperty(batchDims, fc.array(fc.boolean(), { minLength: 6, maxLength: 6 }), small, small, small, fc.boolean(), fc.boolean(), seed,
      async (batch, ones, m, n, k, transA, transB, sd) => {
        const aBatch = batch.map((d, i) => (ones[i] ? 1 : d));
        const bBatch = batch.map((d, i) => (ones[i + 3] ? 1 : d)).slice(ones[5] ? 1 : 0);
        const batchShape = batch.map((d, i) => Math.max(aBatch[i], bBatch[i - (batch.length - bBatch.length)] ?? 1));
        const [ag, ac] = both('f32', seededValues(sd, sizeOf(aBatch) * m * k));
        const [bg, bc] = both('f32', seededValues(sd + 1, sizeOf(bBatch) * k * n));
        const p = {
          batchShape, m, n, k, transA, transB,
          aBatchStrides: broadcastStrides(aBatch, batchShape).map((s) => s * m * k),
          bBatchStrides: broadcastStrides(bBatch, batchShape).map((s) => s * k * n),
        };
        const [g, c] = await readBoth(gpu.matmul(ag, bg, p), cpu.matmul(ac, bc, p));
        expectClose(g, c, 1e-6 * k * 9, 1e-5, 'matmul');
        freeAll(ag, bg);
      }), RUNS);
  });

  it('matmulWithSums: the product is matmul\'s bit for bit and the sums match the CPU within 1e-6·k, whichever variant runs (the static rule or each variant forced through the tuner), empty products included', async () => {
    const variants = MATMUL_VARIANTS.filter((v) => {
      const f = MATMUL_VARIANT_FEATURE[v];
      return (f === undefined || gpu.device.features.has(f)) && matmulWorkgroupBytes(v) <= gpu.device.limits.maxComputeWorkgroupStorageSize;
    });
    const size = fc.oneof(fc.integer({ min: 0, max: 9 }), fc.integer({ min: 10, max: 40 }));
    const caseArb = fc.record({
      batch: fc.constantFrom<number[]>([], [2], [3]), aOne: fc.boolean(), bOne: fc.boolean(), m: size, n: size, k: size,
      transA: fc.boolean(), transB: fc.boolean(), sums: fc.constantFrom<MatmulSums>('colsOfB', 'rowsOfA'), bias: fc.boolean(),
      variant: fc.constantFrom<MatmulVariant | 'static'>('static', ...variants), sd: seed,
    });
    await fc.assert(fc.asyncProperty(caseArb, async (c) => {
      const { m, n, k } = c;
      const aBatch = c.aOne ? [] : c.batch;
      const bBatch = c.bOne ? c.batch.map(() => 1) : c.batch;
      const p = {
        batchShape: c.batch, m, n, k, transA: c.transA, transB: c.transB, biasBatchStride: 0,
        aBatchStrides: broadcastStrides(aBatch, c.batch).map((s) => s * m * k),
        bBatchStrides: broadcastStrides(bBatch, c.batch).map((s) => s * k * n),
      };
      const [ag, ac] = both('f32', seededValues(c.sd, sizeOf(aBatch) * m * k));
      const [bg, bc] = both('f32', seededValues(c.sd + 1, sizeOf(bBatch) * k * n));
      const [biasG, biasC] = c.bias ? both('f32', seededValues(c.sd + 2, n)) : [null, null];
      if (c.variant !== 'static') {
        gpu.setMatmulTuning(true);
        gpu.matmulTuner!.record(tuneKey(p, 'f32'), c.variant);
      }
      try {
        const got = gpu.matmulWithSums(ag, bg, p, c.sums, biasG);
        const plainOut = gpu.matmul(ag, bg, p, biasG);
        const plain = await gpu.read(plainOut);
        gpu.free(plainOut);
        const want = cpu.matmulWithSums(ac, bc, p, c.sums, biasC);
        const [gs, cs] = await readBoth(got.sums, want.sums);
        expect(gs.length).toBe(sizeOf(c.batch) * (c.sums === 'colsOfB' ? n : m));
        expectClose(gs, cs, 1e-6 * k, 1e-6, `${c.sums} sums (${c.variant})`);
        const [go, co] = await readBoth(got.out, want.out);
        expect(Array.from(go)).toEqual(Array.from(plain));
        expectClose(go, co, 1e-6 * k * 9 + 1e-6, 1e-5, `product (${c.variant})`);
      } finally {
        gpu.setMatmulTuning(false);
        freeAll(ag, bg, ...(biasG ? [biasG] : []));
      }
      // Nearly every case compiles a new pipeline (variant × layout × bias × sums): with a cold
      // shader cache (a fresh machine) that is seconds each, so this property gets minutes, not
      // the global 20 s.
    }), { numRuns: 40, interruptAfterTimeLimit: 240_000 });
  }, 300_000);

  it('matmulEpilogue (GELU erf or tanh with or without the pre-activation; a residual) equals matmul then unary or binary add bit for bit, and the CPU within tolerance, whichever variant runs, f32 or f16 operands', async () => {
    const variants = MATMUL_VARIANTS.filter((v) => {
      const f = MATMUL_VARIANT_FEATURE[v];
      return (f === undefined || gpu.device.features.has(f)) && matmulWorkgroupBytes(v) <= gpu.device.limits.maxComputeWorkgroupStorageSize;
    });
    const precisions = gpu.device.features.has('shader-f16') ? ['highest', 'medium'] as const : ['highest'] as const;
    const size = fc.oneof(fc.integer({ min: 0, max: 9 }), fc.integer({ min: 10, max: 40 }));
    const caseArb = fc.record({
      batch: fc.constantFrom<number[]>([], [2], [3]), bOne: fc.boolean(), m: size, n: size, k: size, transA: fc.boolean(), transB: fc.boolean(),
      form: fc.constantFrom<MatmulActivation | 'residual'>('gelu', 'geluTanh', 'residual'), keepPre: fc.boolean(), bias: fc.boolean(), biasPerBatch: fc.boolean(),
      precision: fc.constantFrom(...precisions), variant: fc.constantFrom<MatmulVariant | 'static'>('static', ...variants), sd: seed,
    });
    await fc.assert(fc.asyncProperty(caseArb, async (c) => {
      // tiled64 has no f16 form; the backend would not pick it there.
      if (c.precision === 'medium' && c.variant === 'tiled64') return;
      const { m, n, k } = c;
      const bBatch = c.bOne ? c.batch.map(() => 1) : c.batch;
      const perBatch = c.bias && c.biasPerBatch && c.batch.length > 0;
      const p = {
        batchShape: c.batch, m, n, k, transA: c.transA, transB: c.transB, biasBatchStride: perBatch ? n : 0,
        aBatchStrides: broadcastStrides(c.batch, c.batch).map((s) => s * m * k),
        bBatchStrides: broadcastStrides(bBatch, c.batch).map((s) => s * k * n),
      };
      const outSize = sizeOf(c.batch) * m * n;
      const [ag, ac] = both('f32', seededValues(c.sd, sizeOf(c.batch) * m * k));
      const [bg, bc] = both('f32', seededValues(c.sd + 1, sizeOf(bBatch) * k * n));
      const [biasG, biasC] = c.bias ? both('f32', seededValues(c.sd + 2, perBatch ? sizeOf(c.batch) * n : n)) : [null, null];
      const [resG, resC] = c.form === 'residual' ? both('f32', seededValues(c.sd + 3, outSize)) : [null, null];
      const activation = c.form === 'residual' ? null : c.form;
      const keepPre = activation !== null && c.keepPre;
      if (c.variant !== 'static') {
        gpu.setMatmulTuning(true);
        gpu.matmulTuner!.record(tuneKey(p, c.precision === 'medium' ? 'f16' : 'f32'), c.variant);
      }
      gpu.setMatmulPrecision(c.precision);
      try {
        const got = gpu.matmulEpilogue(ag, bg, p, { bias: biasG, activation, keepPre, residual: resG });
        expect(got.pre === null).toBe(!keepPre);
        const plain = gpu.matmul(ag, bg, p, biasG);
        const unfused = activation ? gpu.unary(activation, plain) : gpu.binary('add', resG!, plain, [outSize], [1], [1]);
        const bitsOf = async (x: Storage) => Array.from(new Uint32Array(Float32Array.from(await gpu.read(x)).buffer));
        const what = `${c.form}${keepPre ? '+pre' : ''} (${c.variant}, ${c.precision})`;
        expect(await bitsOf(got.out), what).toEqual(await bitsOf(unfused));
        if (got.pre) expect(await bitsOf(got.pre), `${what} pre`).toEqual(await bitsOf(plain));
        const want = cpu.matmulEpilogue(ac, bc, p, { bias: biasC, activation, keepPre, residual: resC });
        expect(want.pre === null).toBe(!keepPre);
        if (c.precision === 'highest') {
          // The product's bound (as matmul's above), then GELU (slope <= 1.13, erf within 5e-7 of the
          // CPU's, times |x|) or the residual add (one more rounding).
          const [go, co] = await readBoth(got.out, want.out);
          expectClose(go, co, 1e-6 * k * 9 * 1.2 + 1e-5, 1e-5, what);
        } else {
          gpu.free(got.out);
          cpu.free(want.out);
        }
        for (const x of [plain, unfused, ...(got.pre ? [got.pre] : [])]) gpu.free(x);
        if (want.pre) cpu.free(want.pre);
      } finally {
        gpu.setMatmulTuning(false);
        gpu.setMatmulPrecision('highest');
        freeAll(ag, bg, ...(biasG ? [biasG] : []), ...(resG ? [resG] : []));
      }
      // As matmulWithSums: nearly every case compiles a pipeline or two.
    }), { numRuns: 30, interruptAfterTimeLimit: 240_000 });
  }, 300_000);

  it('matmulEpilogue rejects an activation with a residual, keepPre without an activation and a residual of another size, naming the method', () => {
    const p = { batchShape: [], aBatchStrides: [], bBatchStrides: [], m: 2, n: 3, k: 2, transA: false, transB: false };
    const [a, b, r] = [gpu.upload('f32', [1, 2, 3, 4]), gpu.upload('f32', [1, 2, 3, 4, 5, 6]), gpu.upload('f32', [1, 2, 3, 4, 5])];
    for (const backend of [gpu, cpu] as const) {
      const [x, y, z] = backend === gpu ? [a, b, r] : [cpu.upload('f32', [1, 2, 3, 4]), cpu.upload('f32', [1, 2, 3, 4, 5, 6]), cpu.upload('f32', [1, 2, 3, 4, 5])];
      expect(() => backend.matmulEpilogue(x, y, p, { activation: 'gelu', residual: z })).toThrow(/matmulEpilogue: an activation and a residual/);
      expect(() => backend.matmulEpilogue(x, y, p, { keepPre: true })).toThrow(/matmulEpilogue: keepPre needs an activation/);
      expect(() => backend.matmulEpilogue(x, y, p, { residual: z })).toThrow(/matmulEpilogue: residual f32\[5\] does not match the output f32\[6\]/);
    }
    freeAll(a, b, r);
  });

  it('matmulWithSums with f16 operands (\'medium\' precision) sums the f32 operand, as the unfused reduce did', async (t) => {
    if (!gpu.device.features.has('shader-f16')) t.skip();
    const p = { batchShape: [2], aBatchStrides: [0], bBatchStrides: [40 * 24], m: 12, n: 24, k: 40, transA: true, transB: false };
    const [ag, ac] = both('f32', seededValues(5, 12 * 40));
    const [bg, bc] = both('f32', seededValues(6, 2 * 40 * 24));
    try {
      gpu.setMatmulPrecision('medium');
      for (const sums of ['colsOfB', 'rowsOfA'] as const) {
        const [g, c] = await readBoth(gpu.matmulWithSums(ag, bg, p, sums).sums, cpu.matmulWithSums(ac, bc, p, sums).sums);
        // f16-rounded operands would be off by up to 40·3·2^-11 ≈ 0.06; the f32 sums within f32 rounding.
        expectClose(g, c, 1e-5, 1e-6, sums);
      }
    } finally {
      gpu.setMatmulPrecision('highest');
      freeAll(ag, bg);
    }
  });

  it('indexSelect gathers f32 and i32 rows exactly; indexAdd scatter-adds within 1e-6 + 1e-6·|cpu|', async () => {
    await fc.assert(fc.asyncProperty(small, pos, small, small, seed, fc.constantFrom('f32', 'i32'), async (outer, dim, inner, nIdx, sd, dtype) => {
      const [ig, ic] = both('i32', seededValues(sd, nIdx, 0, dim, true));
      const [xg, xc] = both(dtype, seededValues(sd + 1, outer * dim * inner, -9, 9, dtype === 'i32'));
      const [g, c] = await readBoth(gpu.indexSelect(xg, ig, outer, dim, inner), cpu.indexSelect(xc, ic, outer, dim, inner));
      expect([...g]).toEqual([...c]);
      const [sg, sc] = both('f32', seededValues(sd + 2, outer * nIdx * inner));
      const [ga, ca] = await readBoth(gpu.indexAdd(sg, ig, outer, dim, inner), cpu.indexAdd(sc, ic, outer, dim, inner));
      expectClose(ga, ca, 1e-6, 1e-6, 'indexAdd');
      freeAll(ig, xg, sg);
    }), RUNS);
  });

  it('softmax and log-softmax, forward and backward, match the CPU within 1e-6 + 1e-5·|cpu|', async () => {
    await fc.assert(fc.asyncProperty(small, pos, seed, fc.boolean(), async (rows, cols, sd, log) => {
      // Some entries masked to −1e9 as attention does.
      const x = seededValues(sd, rows * cols, -8, 8).map((v, i) => (i % 5 === 3 ? -1e9 : v));
      const [xg, xc] = both('f32', x);
      const [g, c] = await readBoth(gpu.softmax(xg, rows, cols, log), cpu.softmax(xc, rows, cols, log));
      expectClose(g, c, 1e-6, 1e-5, 'softmax');
      const [yg, yc] = both('f32', c);
      const [dg, dc] = both('f32', seededValues(sd + 1, rows * cols));
      const [bg, bc] = await readBoth(gpu.softmaxBackward(yg, dg, rows, cols, log), cpu.softmaxBackward(yc, dc, rows, cols, log));
      expectClose(bg, bc, 1e-5, 1e-5, 'softmaxBackward');
      freeAll(xg, yg, dg);
    }), RUNS);
  });

  it('layerNorm forward and backward match the CPU within 1e-5 + 1e-4·|cpu|', async () => {
    await fc.assert(fc.asyncProperty(small, pos, seed, async (rows, cols, sd) => {
      const [xg, xc] = both('f32', seededValues(sd, rows * cols, -3, 5));
      const [wg, wc] = both('f32', seededValues(sd + 1, cols, 0.5, 1.5));
      const [bg, bc] = both('f32', seededValues(sd + 2, cols));
      const fg = gpu.layerNorm(xg, wg, bg, rows, cols, 1e-5);
      const fcpu = cpu.layerNorm(xc, wc, bc, rows, cols, 1e-5);
      const [dyg, dyc] = both('f32', seededValues(sd + 3, rows * cols));
      const dg = gpu.layerNormBackward(dyg, xg, wg, fg.mean, fg.rstd, rows, cols);
      const dcpu = cpu.layerNormBackward(dyc, xc, wc, fcpu.mean, fcpu.rstd, rows, cols);
      for (const key of ['y', 'mean', 'rstd'] as const) expectClose(...(await readBoth(fg[key], fcpu[key])), 1e-5, 1e-4, key);
      for (const key of ['dx', 'dgamma', 'dbeta'] as const) expectClose(...(await readBoth(dg[key]!, dcpu[key]!)), 1e-5, 1e-4, key);
      freeAll(xg, wg, bg, dyg);
    }), RUNS);
  });

  it('gatherLogProbs and its backward (with ignored targets) match the CPU within 1e-5 + 1e-5·|cpu|', async () => {
    await fc.assert(fc.asyncProperty(small, pos, seed, async (rows, cols, sd) => {
      const [lg, lc] = both('f32', seededValues(sd, rows * cols, -6, 6));
      const [tg, tc] = both('i32', seededValues(sd + 1, rows, -1, cols, true));
      const fg = gpu.gatherLogProbs(lg, tg, rows, cols);
      const fcpu = cpu.gatherLogProbs(lc, tc, rows, cols);
      const [dg, dc] = both('f32', seededValues(sd + 2, rows));
      const bg = gpu.gatherLogProbsBackward(dg, lg, fg.lse, tg, rows, cols);
      const bcpu = cpu.gatherLogProbsBackward(dc, lc, fcpu.lse, tc, rows, cols);
      expectClose(...(await readBoth(bg, bcpu)), 1e-5, 1e-5, 'dlogits');
      expectClose(...(await readBoth(fg.logp, fcpu.logp)), 1e-5, 1e-5, 'logp');
      expectClose(...(await readBoth(fg.lse, fcpu.lse)), 1e-5, 1e-5, 'lse');
      freeAll(lg, tg, dg);
    }), RUNS);
  });

  it('random uniform is bit-identical to the CPU and normal within 1e-6·(1 + |z|)', async () => {
    const u32 = fc.integer({ min: 0, max: 2 ** 32 - 1 });
    await fc.assert(fc.asyncProperty(fc.integer({ min: 0, max: 300 }), u32, u32, fc.integer({ min: 0, max: MAX_OFFSET - 1000 }), async (n, k0, k1, offset) => {
      for (const kind of ['uniform', 'normal'] as const) {
        const [g, c] = await readBoth(gpu.random(kind, 'f32', n, [k0, k1], offset), cpu.random(kind, 'f32', n, [k0, k1], offset));
        if (kind === 'uniform') expect([...g]).toEqual([...c]);
        else expectClose(g, c, 1e-6, 1e-6, 'normal');
      }
    }), RUNS);
  });

  it('dropoutMask is bit-identical to the CPU and to (u < 1 − p) · 1/(1 − p) for the dropout uniforms u of fillDropoutUniform', async () => {
    const u32 = fc.integer({ min: 0, max: 2 ** 32 - 1 });
    const offset = fc.oneof(streamOffsetArb, fc.integer({ min: MAX_OFFSET - 4000, max: MAX_OFFSET - 3000 }), fc.integer({ min: 0, max: MAX_OFFSET - 4000 }));
    await fc.assert(fc.asyncProperty(fc.integer({ min: 0, max: 3000 }), u32, u32, offset, fc.constantFrom(0.1, 0.5, 0.01, 0.9),
      async (n, k0, k1, offset, p) => {
        const [g, c] = await readBoth(gpu.dropoutMask('f32', n, [k0, k1], offset, p), cpu.dropoutMask('f32', n, [k0, k1], offset, p));
        expect([...g]).toEqual([...c]);
        const u = new Float32Array(n);
        fillDropoutUniform(u, [k0, k1], offset);
        const keep = Math.fround(1 - p);
        expect([...c]).toEqual([...u].map((x) => (x < keep ? Math.fround(1 / (1 - p)) : 0)));
      }), RUNS);
  });

  it('dropoutMask with one stream offset per slab is bit-identical to the CPU and to the slabs drawn alone', async () => {
    const u32 = fc.integer({ min: 0, max: 2 ** 32 - 1 });
    const offset = fc.oneof(streamOffsetArb, fc.integer({ min: 0, max: MAX_OFFSET - 4000 }));
    await fc.assert(fc.asyncProperty(fc.integer({ min: 0, max: 700 }), fc.array(offset, { minLength: 1, maxLength: 4 }), u32, u32, fc.constantFrom(0.1, 0.5),
      async (slab, offsets, k0, k1, p) => {
        const n = slab * offsets.length;
        const [g, c] = await readBoth(gpu.dropoutMask('f32', n, [k0, k1], offsets, p), cpu.dropoutMask('f32', n, [k0, k1], offsets, p));
        expect([...g]).toEqual([...c]);
        const alone = offsets.flatMap((o) => [...cpu.readSync(cpu.dropoutMask('f32', slab, [k0, k1], o, p))]);
        expect([...c]).toEqual(alone);
      }), RUNS);
  });

  it('dropoutApply returns dropoutMask and x times it, bit for bit, on the GPU and the CPU, with one or several slab offsets', async () => {
    const u32 = fc.integer({ min: 0, max: 2 ** 32 - 1 });
    const offset = fc.oneof(streamOffsetArb, fc.integer({ min: 0, max: MAX_OFFSET - 4000 }));
    await fc.assert(fc.asyncProperty(fc.integer({ min: 0, max: 700 }), fc.array(offset, { minLength: 1, maxLength: 4 }), u32, u32, fc.constantFrom(0.1, 0.5), seed,
      async (slab, offsets, k0, k1, p, sd) => {
        const n = slab * offsets.length;
        const x = seededValues(sd, n).map(Math.fround);
        const [xg, xc] = both('f32', x);
        const rg = gpu.dropoutApply(xg, [k0, k1], offsets, p);
        const rc = cpu.dropoutApply(xc, [k0, k1], offsets, p);
        const [gm, cm] = await readBoth(rg.mask, rc.mask);
        const [g, c] = await readBoth(rg.y, rc.y);
        const mask = cpu.readSync(cpu.dropoutMask('f32', n, [k0, k1], offsets, p));
        expect([...gm]).toEqual([...mask]);
        expect([...cm]).toEqual([...mask]);
        const want = x.map((v, i) => Math.fround(v * mask[i]));
        expect([...g]).toEqual(want);
        expect([...c]).toEqual(want);
        gpu.free(xg);
      }), RUNS);
  });

  it('powerIteration of a batch of matrices equals each matrix\'s own iteration on the CPU and GPU', async () => {
    await fc.assert(fc.asyncProperty(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 9 }), fc.integer({ min: 1, max: 300 }), seed, async (batch, rows, cols, sd) => {
      const w = seededValues(sd, batch * rows * cols);
      const u = seededValues(sd + 1, batch * rows);
      const v = seededValues(sd + 2, batch * cols);
      const [wg, wc] = both('f32', w);
      const [ug, uc] = both('f32', u);
      const [vg, vc] = both('f32', v);
      gpu.powerIteration(wg, ug, vg, rows, cols, 1e-12, batch);
      cpu.powerIteration(wc, uc, vc, rows, cols, 1e-12, batch);
      const [gv, cv] = await readBoth(vg, vc);
      const [gu, cu] = await readBoth(ug, uc);
      expectClose(gv, cv, 1e-5, 0, 'batched powerIteration v');
      expectClose(gu, cu, 1e-5, 0, 'batched powerIteration u');
      for (let b = 0; b < batch; b++) {
        const wb = cpu.upload('f32', w.slice(b * rows * cols, (b + 1) * rows * cols));
        const ub = cpu.upload('f32', u.slice(b * rows, (b + 1) * rows));
        const vb = cpu.upload('f32', v.slice(b * cols, (b + 1) * cols));
        cpu.powerIteration(wb, ub, vb, rows, cols, 1e-12);
        expect([...cpu.readSync(ub)]).toEqual([...cu.slice(b * rows, (b + 1) * rows)]);
        expect([...cpu.readSync(vb)]).toEqual([...cv.slice(b * cols, (b + 1) * cols)]);
      }
      gpu.free(wg);
    }), { numRuns: 12 });
  });

  it('powerIteration updates u and v in place like the CPU within 1e-5 (unit vectors; rows and cols past the workgroup)', async () => {
    const side = fc.oneof(fc.integer({ min: 1, max: 9 }), fc.integer({ min: 250, max: 600 }));
    await fc.assert(fc.asyncProperty(side, side, seed, async (rows, cols, sd) => {
      const [wg, wc] = both('f32', seededValues(sd, rows * cols));
      const [ug, uc] = both('f32', seededValues(sd + 1, rows));
      const [vg, vc] = both('f32', seededValues(sd + 2, cols));
      gpu.powerIteration(wg, ug, vg, rows, cols, 1e-12);
      cpu.powerIteration(wc, uc, vc, rows, cols, 1e-12);
      expectClose(...(await readBoth(vg, vc)), 1e-5, 0, 'powerIteration v');
      expectClose(...(await readBoth(ug, uc)), 1e-5, 0, 'powerIteration u');
      gpu.free(wg);
    }), { numRuns: 12 });
  });

  it('adamw updates param, m and v in place like the CPU within 1e-6 + 1e-5·|cpu|', async () => {
    await fc.assert(fc.asyncProperty(fc.integer({ min: 0, max: 50 }), fc.integer({ min: 1, max: 20 }), seed, async (n, step, sd) => {
      const p = { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1, step };
      const [pg, pc] = both('f32', seededValues(sd, n));
      const [gg, gc] = both('f32', seededValues(sd + 1, n));
      const [mg, mc] = both('f32', seededValues(sd + 2, n, -0.1, 0.1));
      const [vg, vc] = both('f32', seededValues(sd + 3, n, 0, 0.1));
      gpu.adamw(pg, gg, mg, vg, p);
      cpu.adamw(pc, gc, mc, vc, p);
      for (const [g, c] of [[pg, pc], [mg, mc], [vg, vc]] as const) expectClose(...(await readBoth(g, c)), 1e-6, 1e-5, 'adamw');
      gpu.free(gg);
    }), RUNS);
  });
});
