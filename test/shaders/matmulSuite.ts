// Every matmul variant the static rule or the tuner can pick agrees with the CPU backend over
// random batched, broadcast and transposed shapes (odd sizes, 1, non-multiples of 4, so every
// operand layout, vec4 or strided, comes up), including a batch past 65535 workgroups; and so do
// the f16-operand forms, against the CPU on the same operands rounded to f16. The same holds with
// the sums epilogue (each variant's operand sums against the CPU's matmulWithSums), whose product
// is bit for bit the product without it. The store epilogues (a GELU, erf or tanh form, with or
// without the pre-activation kept; a residual added) equal the unfused kernels (matmul with its
// bias, then the unary GELU or the binary add) bit for bit, in every variant and output layout,
// f32 and f16 operands, and the CPU's matmulEpilogue within tolerance.
//
// Defines the tests; test/shaders/matmul.test.ts and matmulMore.test.ts run them for their halves
// of the variants (see FIRST_FILE_VARIANTS).

import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import {
  chooseMatmulVariant, layoutName, MATMUL_VARIANT_FEATURE, matmulCandidates, matmulLaunch, matmulLayout,
  matmulWorkgroupBytes, packF16Launch, supportsOperandType, type MatmulOperandType, type MatmulVariant,
} from '../../src/shaders/matmul.js';
import { binaryLaunch, unaryLaunch } from '../../src/shaders/elementwise.js';
import type { MatmulStoreEpilogue } from '../../src/shaders/matmulEpilogue.js';
import type { MatmulParams, MatmulSums } from '../../src/tensor/backend.js';
import { CpuBackend } from '../../src/tensor/backends/cpu/index.js';
import { expectClose, maxAbs, nanFilled, openHarness, seededFloats } from '../helpers/kernelHarness.js';


/**
 * Time limit of the sums properties: each case may compile a new pipeline (layout × bias × sums),
 * seconds apiece with a cold shader cache (a fresh machine), so they get more than the global 20 s.
 */
const COLD_COMPILE_LIMIT = 100_000;
const h = await openHarness('matmul WGSL tests');
afterAll(() => h?.destroy());
const cpu = new CpuBackend();

interface Case {
  batch: number[];
  aBroadcast: boolean[];
  bBroadcast: boolean[];
  m: number;
  n: number;
  k: number;
  transA: boolean;
  transB: boolean;
  seed: number;
  /** Run the bias epilogue (a fourth binding, n values added to every row). */
  bias?: boolean;
  /** With bias: one bias row per batch element (biasBatchStride = n) instead of one shared. */
  biasPerBatch?: boolean;
  /** Run the sums epilogue too (one more binding), checked along with the product. */
  sums?: MatmulSums;
}

function contiguous(shape: number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i]!;
  }
  return s;
}

/** f32 → nearest f16 bits (ties to even), as WGSL's pack2x16float rounds on lavapipe and hardware. */
function toHalfBits(x: number): number {
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer)[0]!;
  const sign = (u >>> 16) & 0x8000;
  const exp = (u >>> 23) & 0xff;
  let mant = u & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && (half & 1))) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (half & 1))) half++;
  return sign | half;
}

function halfToFloat(h16: number): number {
  const s = h16 & 0x8000 ? -1 : 1;
  const e = (h16 >>> 10) & 0x1f;
  const m = h16 & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? Number.NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** Values rounded to f16, and the same packed two per word as the f16 kernels read them. */
function toHalf(xs: Float32Array): { rounded: Float32Array; packed: Uint32Array } {
  const rounded = new Float32Array(xs.length);
  const packed = new Uint32Array(Math.max(4, Math.ceil(xs.length / 2)));
  for (let i = 0; i < xs.length; i++) {
    const bits = toHalfBits(xs[i]!);
    rounded[i] = halfToFloat(bits);
    packed[i >> 1]! |= bits << ((i & 1) * 16);
  }
  return { rounded, packed };
}

function paramsOf(c: Case): { p: MatmulParams; aCount: number; bCount: number; batch: number } {
  const { m, n, k } = c;
  // Each operand stores its own batch shape (1 where broadcast); its batch strides are 0 there.
  const aShape = c.batch.map((d, i) => (c.aBroadcast[i] ? 1 : d));
  const bShape = c.batch.map((d, i) => (c.bBroadcast[i] ? 1 : d));
  const aStrides = contiguous(aShape).map((s, i) => (aShape[i] === 1 ? 0 : s * m * k));
  const bStrides = contiguous(bShape).map((s, i) => (bShape[i] === 1 ? 0 : s * k * n));
  const p: MatmulParams = { batchShape: c.batch, aBatchStrides: aStrides, bBatchStrides: bStrides, m, n, k, transA: c.transA, transB: c.transB };
  return { p, aCount: aShape.reduce((x, y) => x * y, 1), bCount: bShape.reduce((x, y) => x * y, 1), batch: c.batch.reduce((x, y) => x * y, 1) };
}

/**
 * A case's operands (a and b as the CPU sees them: rounded to f16 for f16 operands; `inputs` as
 * the kernel reads them) and its bias.
 */
function operands(c: Case, type: MatmulOperandType) {
  const { m, n, k } = c;
  const { p, aCount, bCount, batch } = paramsOf(c);
  let a = seededFloats(aCount * m * k, c.seed);
  let b = seededFloats(bCount * k * n, c.seed + 1, 2);
  let inputs: [Float32Array | Uint32Array, Float32Array | Uint32Array] = [a, b];
  if (type === 'f16') {
    const ha = toHalf(a);
    const hb = toHalf(b);
    a = ha.rounded;
    b = hb.rounded;
    inputs = [ha.packed, hb.packed];
  }
  const perBatch = !!c.bias && !!c.biasPerBatch;
  if (perBatch) p.biasBatchStride = n;
  const bias = c.bias ? seededFloats(perBatch ? batch * n : n, c.seed + 2, 3) : null;
  return { p, batch, a, b, inputs, bias };
}

/** The error bound of a product (with its bias) against the CPU's float64 one, see check(). */
function productTol(k: number, a: Float32Array, b: Float32Array, bias: Float32Array | null): number {
  return 2.5e-7 * k * Math.sqrt(k) * maxAbs(a) * maxAbs(b) + 1e-7 + (bias ? 1.2e-7 * (maxAbs(bias) + k * maxAbs(a) * maxAbs(b)) : 0);
}

/** With unchangedProduct (and c.sums), also runs the kernel without sums and expects the same product bits. */
async function check(c: Case, variant: MatmulVariant, type: MatmulOperandType = 'f32', unchangedProduct = false): Promise<void> {
  const { m, n, k } = c;
  const { p, batch, a, b, inputs, bias } = operands(c, type);
  const sumsLen = batch * (c.sums === 'colsOfB' ? n : m);
  const bufs = [...inputs, nanFilled(batch * m * n), ...(bias ? [bias] : [])];
  const [, , out, ...rest] = await h!.run(matmulLaunch(p, variant, type, !!bias, c.sums ?? null), [...bufs, ...(c.sums ? [nanFilled(sumsLen)] : [])], c.sums ? [2, bufs.length] : [2]);
  const [ca, cb] = [cpu.upload('f32', a), cpu.upload('f32', b)];
  const want = cpu.readSync(cpu.matmul(ca, cb, p, bias ? cpu.upload('f32', bias) : null));
  // f32 accumulation of k terms each at most max|a|·max|b|: rounding error grows like sqrt(k)·eps
  // relative to that sum in practice (k·eps in the worst case), so allow 2·eps·k^1.5·max|a|·max|b|.
  // (The f16 forms multiply the same rounded values exactly in f32, so the bound is the same.)
  // The bias is added to the rounded product: one more rounding of a value up to |bias| + k·|a|·|b|.
  const tol = productTol(k, a, b, bias);
  const name = `matmul[${variant} ${layoutName(matmulLayout(p, variant))} ${type}${bias ? ' +bias' : ''}${c.sums ? ` +${c.sums}` : ''}] ${JSON.stringify(c)}`;
  expectClose(name, out!, want, () => tol);
  if (c.sums) {
    // Sums of k values of the operand, the same bound.
    const sums = cpu.readSync(cpu.matmulWithSums(ca, cb, p, c.sums).sums);
    const sumsTol = 2.5e-7 * k * Math.sqrt(k) * maxAbs(c.sums === 'colsOfB' ? b : a) + 1e-7;
    expectClose(`${name} sums`, rest[rest.length - 1]!, sums, () => sumsTol);
  }
  if (c.sums && unchangedProduct) {
    const [, , plain] = await h!.run(matmulLaunch(p, variant, type, !!bias), bufs, [2]);
    expect(Array.from(out!), `${name}: product with sums = without`).toEqual(Array.from(plain!));
  }
}

/** The store epilogues under test: an activation (with its input kept, or not) or a residual. */
type StoreForm = 'gelu' | 'gelu+pre' | 'geluTanh' | 'geluTanh+pre' | 'residual';
const STORE_FORMS: readonly StoreForm[] = ['gelu', 'gelu+pre', 'geluTanh', 'geluTanh+pre', 'residual'];

function storeOf(form: StoreForm): MatmulStoreEpilogue {
  if (form === 'residual') return { residual: true };
  const [activation, pre] = form.split('+') as ['gelu' | 'geluTanh', string | undefined];
  return { activation, keepPre: pre === 'pre' };
}

const bits = (x: ArrayLike<number>) => Array.from(new Uint32Array(Float32Array.from(x).buffer));

/**
 * The store epilogue `form` of a variant on case c: out (and pre) bit for bit the unfused kernels'
 * (the same variant's matmul with the bias, then the unary GELU on its output, or the binary add of
 * the residual and it), and within tolerance of the CPU's matmulEpilogue.
 */
async function checkStore(c: Case, variant: MatmulVariant, form: StoreForm, type: MatmulOperandType = 'f32'): Promise<void> {
  const { m, n, k } = c;
  const { p, batch, a, b, inputs, bias } = operands(c, type);
  const store = storeOf(form);
  const size = batch * m * n;
  const residual = store.residual ? seededFloats(size, c.seed + 3, 4) : null;
  const extra = residual ?? (store.keepPre ? nanFilled(size) : null);
  const bufs = [...inputs, nanFilled(size), ...(bias ? [bias] : []), ...(extra ? [extra] : [])];
  const got = await h!.run(matmulLaunch(p, variant, type, !!bias, null, store), bufs, [2, ...(store.keepPre ? [bufs.length - 1] : [])]);
  const out = got[2]!;
  const [, , plain] = await h!.run(matmulLaunch(p, variant, type, !!bias), [...inputs, nanFilled(size), ...(bias ? [bias] : [])], [2]);
  const unfused = store.activation
    ? (await h!.run(unaryLaunch(store.activation, 'f32', size), [plain!, nanFilled(size)]))[1]!
    : (await h!.run(binaryLaunch('add', 'f32', [size], [1], [1]), [residual!, plain!, nanFilled(size)]))[2]!;
  const name = `matmul[${variant} ${layoutName(matmulLayout(p, variant))} ${type}${bias ? ' +bias' : ''} +${form}] ${JSON.stringify(c)}`;
  expect(bits(out), `${name}: fused = unfused`).toEqual(bits(unfused));
  if (store.keepPre) expect(bits(got[bufs.length - 1]!), `${name}: pre = the plain product`).toEqual(bits(plain!));
  const [ca, cb] = [cpu.upload('f32', a), cpu.upload('f32', b)];
  const e = { bias: bias ? cpu.upload('f32', bias) : null, activation: store.activation, residual: residual ? cpu.upload('f32', residual) : null };
  const want = cpu.readSync(cpu.matmulEpilogue(ca, cb, p, e).out);
  // GELU's slope is at most 1.13, and its erf within 5e-7 absolute (elementwise.ts) of the CPU's,
  // times |x|/2; the residual add rounds once more.
  const tol = productTol(k, a, b, bias);
  const big = maxAbs(plain!);
  const bound = store.activation ? 1.2 * tol + 5e-7 * (1 + big) : tol + 1.2e-7 * (maxAbs(residual!) + big);
  expectClose(name, out, want, () => bound);
}

const dim = fc.integer({ min: 1, max: 3 });
// Sizes: small odd ones, multiples of 4 (the vec4 layouts) and anything up to 80.
const size = (max: number) => fc.oneof(fc.integer({ min: 1, max: 9 }), fc.integer({ min: 1, max: 20 }).map((x) => 4 * x), fc.integer({ min: 1, max }));
const caseArb: fc.Arbitrary<Case> = fc.integer({ min: 0, max: 3 }).chain((rank) =>
  fc.record({
    batch: fc.array(dim, { minLength: rank, maxLength: rank }),
    aBroadcast: fc.array(fc.boolean(), { minLength: rank, maxLength: rank }),
    bBroadcast: fc.array(fc.boolean(), { minLength: rank, maxLength: rank }),
    m: size(80),
    n: size(80),
    k: size(70),
    transA: fc.boolean(),
    transB: fc.boolean(),
    seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
    bias: fc.boolean(),
    biasPerBatch: fc.boolean(),
  }),
);
const sumsArb = fc.constantFrom<MatmulSums>('colsOfB', 'rowsOfA');
// Each case may compile a new pipeline (a second of lavapipe time, several for the big tiles). The
// tile variants' sums add workgroup-memory values, the same code whatever the operand layout:
// fewer runs for them.
const sumsRuns = (v: MatmulVariant) => (v.startsWith('tile') ? 2 : 6);
const sumsCaseArb = fc.tuple(caseArb, sumsArb).map(([c, sums]) => ({ ...c, sums }));

const available = (v: MatmulVariant) => {
  const f = MATMUL_VARIANT_FEATURE[v];
  return (f === undefined || h!.device.features.has(f)) && matmulWorkgroupBytes(v) <= h!.device.limits.maxComputeWorkgroupStorageSize;
};
const hasF16 = () => h!.device.features.has('shader-f16');

/**
 * The variants of the first test file (matmul.test.ts); matmulMore.test.ts takes the rest. The
 * split shares the compile time between vitest's two workers: on a fresh machine (empty shader
 * cache) one file took 14 of the suite's 20 minutes, tile128x128k16 alone 5 (its pipelines compile
 * for seconds each on lavapipe), the other tiles together about as long, the register and
 * subgroup variants 4.
 */
export const FIRST_FILE_VARIANTS: readonly MatmulVariant[] = ['tile128x128k16', 'subgroup8x4', 'subgroup8x8', 'subgroup8x4w16'];

/** The tests of the given variants, and the variant-independent ones when `misc`. */
export function matmulSuite(name: string, variants: readonly MatmulVariant[], misc: boolean): void {
  describe.skipIf(!h)(name, () => {
    for (const variant of variants) {
      it(`${variant} matches the CPU on random batched, broadcast, transposed shapes`, async (t) => {
        if (!available(variant)) t.skip();
        await fc.assert(fc.asyncProperty(caseArb, (c) => check(c, variant)), { numRuns: 16 });
      });

      it(`${variant} handles k = 0 (zeros) and 65537 batch elements (batch folded into y)`, async (t) => {
        if (!available(variant)) t.skip();
        await check({ batch: [], aBroadcast: [], bBroadcast: [], m: 5, n: 6, k: 0, transA: false, transB: false, seed: 1 }, variant);
        await check({ batch: [], aBroadcast: [], bBroadcast: [], m: 8, n: 8, k: 0, transA: true, transB: false, seed: 1 }, variant);
        await check({ batch: [65537], aBroadcast: [false], bBroadcast: [true], m: 2, n: 3, k: 2, transA: false, transB: true, seed: 2 }, variant);
      });

      it(`${variant} with the sums epilogue: op(b)'s column sums or op(a)'s row sums match the CPU, the product unchanged`, async (t) => {
        if (!available(variant)) t.skip();
        await fc.assert(fc.asyncProperty(sumsCaseArb, (c) => check(c, variant, 'f32', true)), { numRuns: sumsRuns(variant), interruptAfterTimeLimit: COLD_COMPILE_LIMIT });
      });

      it(`${variant} sums: k = 0 gives zeros, k = 1 the operand itself, and (register family) 65537 batch elements one sum row each`, async (t) => {
        if (!available(variant)) t.skip();
        await check({ batch: [], aBroadcast: [], bBroadcast: [], m: 5, n: 6, k: 0, transA: false, transB: false, seed: 1, sums: 'rowsOfA' }, variant);
        await check({ batch: [3], aBroadcast: [false], bBroadcast: [true], m: 7, n: 9, k: 1, transA: true, transB: false, seed: 4, sums: 'colsOfB' }, variant);
        // (The workgroup-memory variants index their sums by the batch their product uses, which the
        // test above folds; 65537 of their big workgroups take seconds on lavapipe.)
        if (matmulWorkgroupBytes(variant) > 0) return;
        await check({ batch: [65537], aBroadcast: [false], bBroadcast: [false], m: 2, n: 3, k: 2, transA: false, transB: true, seed: 2, sums: 'rowsOfA' }, variant);
      });

      if (supportsOperandType(variant, 'f16')) {
        it(`${variant} with f16 operands matches the CPU on the rounded operands`, async (t) => {
          if (!available(variant) || !hasF16()) t.skip();
          await fc.assert(fc.asyncProperty(caseArb, (c) => check(c, variant, 'f16')), { numRuns: 8 });
        });
      }
    }

    // The store epilogues: each form on both output layouts (vec4 rows, n % 4 = 0, and scalar
    // rows), with and without a bias (one per batch element too); the operand layouts (which the
    // store does not depend on) come up in the random cases after.
    const storeCases = (seed: number): Case[] => [
      { batch: [2], aBroadcast: [false], bBroadcast: [true], m: 9, n: 12, k: 8, transA: false, transB: false, seed, bias: true },
      { batch: [], aBroadcast: [], bBroadcast: [], m: 6, n: 7, k: 5, transA: true, transB: true, seed: seed + 10 },
      { batch: [3], aBroadcast: [false], bBroadcast: [false], m: 13, n: 20, k: 12, transA: true, transB: false, seed: seed + 20, bias: true, biasPerBatch: true },
      { batch: [2], aBroadcast: [true], bBroadcast: [false], m: 5, n: 9, k: 16, transA: false, transB: true, seed: seed + 30, bias: true },
    ];
    const storeFormArb = fc.constantFrom(...STORE_FORMS);
    // The big tiles store through the same code as tile64x64 (matmulTiles.ts, only the block size
    // differs) and compile for seconds each on lavapipe: three forms for them, one per output path.
    const bigTile = (v: MatmulVariant) => v.startsWith('tile128');
    for (const variant of variants) {
      it(`${variant} store epilogues (GELU erf or tanh, the pre-activation kept or not; a residual) equal the unfused kernels bit for bit on both output layouts`, async (t) => {
        if (!available(variant)) t.skip();
        if (bigTile(variant)) {
          await checkStore(storeCases(1)[0]!, variant, 'gelu+pre');
          await checkStore(storeCases(2)[1]!, variant, 'geluTanh');
          await checkStore(storeCases(3)[3]!, variant, 'residual');
          return;
        }
        // Each form on a vec4-row case and a scalar-row one (cases alternate between the two).
        for (const [i, form] of STORE_FORMS.entries()) {
          const cases = storeCases(100 * i);
          await checkStore(cases[i % 2]!, variant, form);
          await checkStore(cases[2 + ((i + 1) % 2)]!, variant, form);
        }
      }, 2 * COLD_COMPILE_LIMIT);

      it(`${variant} store epilogues on random batched, broadcast, transposed shapes`, async (t) => {
        if (!available(variant)) t.skip();
        await fc.assert(fc.asyncProperty(caseArb, storeFormArb, (c, form) => checkStore(c, variant, form)), { numRuns: bigTile(variant) ? 1 : 2, interruptAfterTimeLimit: COLD_COMPILE_LIMIT });
      }, 2 * COLD_COMPILE_LIMIT);

      if (supportsOperandType(variant, 'f16')) {
        it(`${variant} store epilogues with f16 operands equal the unfused kernels bit for bit`, async (t) => {
          if (!available(variant) || !hasF16()) t.skip();
          await checkStore(storeCases(7)[0]!, variant, 'geluTanh+pre', 'f16');
          if (bigTile(variant)) return;
          await checkStore(storeCases(8)[1]!, variant, 'gelu', 'f16');
          await checkStore(storeCases(9)[2]!, variant, 'residual', 'f16');
        }, 2 * COLD_COMPILE_LIMIT);
      }
    }

    // The sizes above fit one 128×128 tile; these span several tiles in m, n and k (both tile
    // buffers in turn, partial edge tiles) for the workgroup-memory variants.
    const bigSize = fc.oneof(fc.integer({ min: 100, max: 300 }), fc.integer({ min: 25, max: 75 }).map((x) => 4 * x));
    const bigCase: fc.Arbitrary<Case> = fc.record({
      batch: fc.constantFrom<number[]>([], [2]), aBroadcast: fc.constant([false]), bBroadcast: fc.constant([true]),
      m: bigSize, n: bigSize, k: fc.oneof(fc.integer({ min: 17, max: 90 }), fc.integer({ min: 5, max: 24 }).map((x) => 4 * x)),
      transA: fc.boolean(), transB: fc.boolean(), seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }), bias: fc.boolean(), biasPerBatch: fc.boolean(),
    }).map((c) => ({ ...c, aBroadcast: c.batch.map(() => false), bBroadcast: c.batch.map(() => true) }));
    for (const variant of variants.filter((v) => v.startsWith('tile'))) {
      it(`${variant} matches the CPU over several tiles in m, n and k`, async (t) => {
        if (!available(variant)) t.skip();
        await fc.assert(fc.asyncProperty(bigCase, (c) => check(c, variant)), { numRuns: 6 });
      });
    }
    // The sums are written by the first row (column) block only: every variant over several blocks.
    for (const variant of variants) {
      it(`${variant} sums match the CPU over several row and column blocks`, async (t) => {
        if (!available(variant)) t.skip();
        await fc.assert(fc.asyncProperty(bigCase, sumsArb, (c, sums) => check({ ...c, sums }, variant)), { numRuns: Math.ceil(sumsRuns(variant) / 2), interruptAfterTimeLimit: COLD_COMPILE_LIMIT });
      });
    }

    if (!misc) return;
    it('shapes with one layout reuse one pipeline per variant', async () => {
      const before = h!.pipelineCount();
      const base: Case = { batch: [2], aBroadcast: [false], bBroadcast: [true], m: 12, n: 20, k: 8, transA: false, transB: false, seed: 3 };
      await check(base, 'register4x4');
      const after = h!.pipelineCount();
      await check({ ...base, m: 36, n: 44, k: 16, batch: [3] }, 'register4x4');
      await check({ ...base, m: 3, n: 4, k: 4, batch: [1] }, 'register4x4');
      expect(h!.pipelineCount()).toBe(after);
      expect(after - before).toBeLessThanOrEqual(1);
    });

    it('a store epilogue takes an activation or a residual, not both, nor sums; keepPre needs an activation', () => {
      const p: MatmulParams = { batchShape: [], aBatchStrides: [], bBatchStrides: [], m: 4, n: 4, k: 4, transA: false, transB: false };
      expect(() => matmulLaunch(p, 'register4x4', 'f32', true, null, { activation: 'gelu', residual: true })).toThrow(/activation and a residual/);
      expect(() => matmulLaunch(p, 'register4x4', 'f32', true, null, { keepPre: true })).toThrow(/keepPre/);
      expect(() => matmulLaunch(p, 'register4x4', 'f32', false, 'colsOfB', { residual: true })).toThrow(/sums.*store epilogue/);
    });

    it('the sums epilogue has no f16-operand form (the backend sums the f32 operand instead)', () => {
      const p: MatmulParams = { batchShape: [], aBatchStrides: [], bBatchStrides: [], m: 4, n: 4, k: 4, transA: false, transB: false };
      expect(() => matmulLaunch(p, 'register4x4', 'f16', false, 'colsOfB')).toThrow(/sums.*f16/);
    });

    it('packF16 rounds to nearest f16 and pads an odd count with zero', async () => {
      const xs = new Float32Array([1, -2.5, 1 / 3, 65504, 1e-8, 70000, 0.1]);
      const [, packed] = await h!.run(packF16Launch(xs.length, 4), [xs, new Uint32Array(4)]);
      const want = toHalf(xs).packed;
      expect(Array.from(packed!)).toEqual(Array.from(want));
    });

    it('the static rule: subgroups first on a software adapter (8x8 for large products), register blocking without, tiles on hardware', () => {
      const p: MatmulParams = { batchShape: [], aBatchStrides: [], bBatchStrides: [], m: 512, n: 512, k: 512, transA: false, transB: false };
      expect(chooseMatmulVariant(p, true, true)).toBe('subgroup8x8');
      expect(chooseMatmulVariant({ ...p, k: 128 }, true, true)).toBe('subgroup8x4');
      expect(chooseMatmulVariant({ ...p, m: 64 }, true, true)).toBe('subgroup8x4');
      expect(chooseMatmulVariant(p, true).startsWith('register')).toBe(true);
      // Hardware: the biggest tile that still makes 256 workgroups.
      expect(chooseMatmulVariant({ ...p, m: 4096, n: 4096, k: 4096 }, false)).toBe('tile128x128');
      expect(chooseMatmulVariant({ ...p, m: 1024, n: 2048 }, false)).toBe('tile128x64');
      expect(chooseMatmulVariant({ ...p, m: 1024, n: 1024 }, false)).toBe('tile64x64');
      expect(chooseMatmulVariant({ ...p, batchShape: [16], aBatchStrides: [0], bBatchStrides: [0], m: 512, n: 512 }, false)).toBe('tile128x128');
      expect(chooseMatmulVariant({ ...p, m: 16 }, false)).toBe('register4x4');
      // Tuner candidates need the feature they use.
      expect(matmulCandidates(true, new Set()).some((v) => v.startsWith('subgroup'))).toBe(false);
      expect(matmulCandidates(true, new Set(['subgroups']))).toContain('subgroup8x4');
    });

    it('layouts: vec4 only where the contiguous dim and batch strides are multiples of 4', () => {
      const p = (m: number, n: number, k: number, transA: boolean, transB: boolean, strides: number[] = []): MatmulParams =>
        ({ batchShape: strides.map(() => 2), aBatchStrides: strides, bBatchStrides: strides, m, n, k, transA, transB });
      expect(layoutName(matmulLayout(p(8, 8, 8, false, false), 'register4x4'))).toBe('aK.bN.o4');
      expect(layoutName(matmulLayout(p(8, 8, 8, true, true), 'register4x4'))).toBe('aM.bK.o4');
      expect(layoutName(matmulLayout(p(8, 8, 8, true, true), 'subgroup8x4'))).toBe('aS.bK.o4');
      expect(layoutName(matmulLayout(p(6, 7, 5, false, false), 'register4x4'))).toBe('aS.bS.o1');
      expect(layoutName(matmulLayout(p(8, 8, 8, false, false, [6]), 'register4x4'))).toBe('aS.bS.o4');
      expect(layoutName(matmulLayout(p(8, 8, 8, false, false), 'tiled64'))).toBe('aS.bS.o1');
    });
  });
}
