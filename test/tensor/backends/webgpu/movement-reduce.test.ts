// WebGPU strided copy and reductions agree with the CPU reference: copies bit for bit (permute,
// slice, pad with offsets), max/min exactly, f32 sums within rounding, i32 sums exactly.

import fc from 'fast-check';
import { expect, it } from 'vitest';
import type { ReduceOp } from '../../../../src/tensor/backend.js';
import { contiguousStrides, sizeOf } from '../../../../src/tensor/shape.js';
import { dim, seed, seededValues, shape } from '../../../helpers/backendArbitraries.js';
import { both, cpu, describeGpu, expectClose, gpu, readBoth } from '../../../helpers/webgpu.js';

const RUNS = { numRuns: 30 };

/** A source shape, a permutation, a slice per dim, and padding of the destination along one axis. */
const copyCase = fc.tuple(shape(5), seed, fc.array(fc.nat(), { minLength: 5, maxLength: 5 }), fc.nat(3), fc.nat(3)).map(([src, sd, picks, before, after]) => {
  const perm = src.map((_, i) => i);
  for (let i = perm.length - 1; i > 0; i--) {
    const j = picks[i] % (i + 1);
    [perm[i], perm[j]] = [perm[j], perm[i]];
  }
  const srcStrides = contiguousStrides(src);
  const lo = src.map((d, i) => (d === 0 ? 0 : picks[i] % d));
  const hi = src.map((d, i) => (d === 0 ? 0 : lo[i] + 1 + ((picks[i] >> 3) % (d - lo[i]))));
  const outShape = perm.map((a) => hi[a] - lo[a]);
  const strides = perm.map((a) => srcStrides[a]);
  const offset = lo.reduce((s, l, i) => s + l * srcStrides[i], 0);
  const padAxis = outShape.length > 0 ? sd % outShape.length : -1;
  const dstShape = outShape.map((d, i) => (i === padAxis ? d + before + after : d));
  const dstStrides = contiguousStrides(dstShape);
  const dstOffset = padAxis >= 0 ? before * dstStrides[padAxis] : 0;
  return { src, sd, outShape, strides, offset, dstShape, dstStrides, dstOffset };
});

describeGpu('webgpu movement and reduce', () => {
  it('copy through permuted, sliced source strides into a padded destination matches the CPU bit for bit', async () => {
    await fc.assert(fc.asyncProperty(copyCase, fc.constantFrom('f32', 'i32'), async (c, dtype) => {
      const [sg, sc] = both(dtype, seededValues(c.sd, sizeOf(c.src), -50, 50, dtype === 'i32'));
      const n = sizeOf(c.dstShape);
      const dg = gpu.alloc(dtype, n);
      const dc = cpu.alloc(dtype, n);
      gpu.fill(dg, -1);
      cpu.fill(dc, -1);
      gpu.copy(sg, dg, c.outShape, c.strides, c.offset, c.dstStrides, c.dstOffset);
      cpu.copy(sc, dc, c.outShape, c.strides, c.offset, c.dstStrides, c.dstOffset);
      const [g, r] = await readBoth(dg, dc);
      expect([...g]).toEqual([...r]);
      gpu.free(sg);
    }), RUNS);
  });

  it('concatInto: 1-20 sources (some empty, some shared by every row) side by side in an [outer, row] destination matches the CPU bit for bit', async () => {
    const sources = fc.array(fc.record({ width: fc.integer({ min: 0, max: 9 }), shared: fc.boolean() }), { minLength: 1, maxLength: 20 });
    await fc.assert(fc.asyncProperty(fc.integer({ min: 0, max: 5 }), sources, seed, fc.constantFrom('f32', 'i32'),
      async (outer, specs, sd, dtype) => {
        const widths = specs.map((x) => x.width);
        const shared = specs.map((x) => x.shared);
        // A shared source is one [width] block, read for every row.
        const srcs = specs.map((x, k) => both(dtype, seededValues(sd + k, (x.shared ? 1 : outer) * x.width, -50, 50, dtype === 'i32')));
        const n = outer * widths.reduce((a, w) => a + w, 0);
        const dg = gpu.alloc(dtype, n);
        const dc = cpu.alloc(dtype, n);
        gpu.fill(dg, -1);
        cpu.fill(dc, -1);
        gpu.concatInto(srcs.map((s) => s[0]), dg, outer, widths, shared);
        cpu.concatInto(srcs.map((s) => s[1]), dc, outer, widths, shared);
        const [g, r] = await readBoth(dg, dc);
        expect([...g]).toEqual([...r]);
        // The CPU reference by hand: row o is the sources' rows o (a shared source's only row), in order.
        const want: number[] = [];
        const data = srcs.map((s) => [...cpu.readSync(s[1])]);
        for (let o = 0; o < outer; o++) widths.forEach((w, k) => want.push(...data[k].slice((shared[k] ? 0 : o) * w, ((shared[k] ? 0 : o) + 1) * w)));
        expect([...r]).toEqual(want);
        srcs.forEach(([a, b]) => (gpu.free(a), cpu.free(b)));
      }), RUNS);
  });

  it('concat of many tensors takes one dispatch per eight sources', () => {
    const xs = Array.from({ length: 9 }, (_, k) => gpu.upload('f32', [k, k + 0.5]));
    const out = gpu.alloc('f32', 18);
    gpu.resetCounters();
    gpu.concatInto(xs, out, 1, xs.map(() => 2));
    expect(gpu.counters().dispatches).toBe(2);
    [...xs, out].forEach((s) => gpu.free(s));
  });

  const reduceCase = fc.tuple(shape(4, dim), fc.array(fc.boolean(), { minLength: 4, maxLength: 4 }), seed, fc.boolean())
    .map(([s, which, sd, long]) => {
      // Sometimes a long last dim, so the workgroup-per-row path runs too.
      const sh = long && s.length > 0 ? [...s.slice(0, -1), 300] : s;
      return { shape: sh, axes: sh.map((_, i) => i).filter((i) => which[i]), sd };
    });

  for (const op of ['sum', 'max', 'min'] as ReduceOp[]) {
    // f32 sums differ from the CPU's left-to-right order by rounding: <= 1e-6·n·max|x| absolute.
    it(`reduce ${op} over any axes (f32) matches the CPU${op === 'sum' ? ' within 1e-6·n·max|x| + 1e-6·|cpu|' : ' exactly'}`, async () => {
      await fc.assert(fc.asyncProperty(reduceCase, async ({ shape: s, axes, sd }) => {
        const [xg, xc] = both('f32', seededValues(sd, sizeOf(s), -4, 4));
        const nRed = axes.reduce((p, a) => p * s[a], 1);
        const [g, c] = await readBoth(gpu.reduce(op, xg, s, axes), cpu.reduce(op, xc, s, axes));
        if (op === 'sum') expectClose(g, c, 1e-6 * nRed * 4, 1e-6, `sum ${JSON.stringify(s)} axes ${axes}`);
        else expect([...g]).toEqual([...c]);
        gpu.free(xg);
      }), RUNS);
    });
  }

  it('a scaled sum (mean in one pass) equals the sum times the scale, bit for bit on each backend, in both kernel forms', async () => {
    await fc.assert(fc.asyncProperty(reduceCase, async ({ shape: s, axes, sd }) => {
      const n = axes.reduce((p, a) => p * s[a], 1);
      const scale = 1 / Math.max(1, n);
      const [xg, xc] = both('f32', seededValues(sd, sizeOf(s), -4, 4));
      const [sumG, sumC] = [gpu.reduce('sum', xg, s, axes), cpu.reduce('sum', xc, s, axes)];
      const [g, c] = await readBoth(gpu.reduce('sum', xg, s, axes, scale), cpu.reduce('sum', xc, s, axes, scale));
      const [sg, sc] = await readBoth(sumG, sumC);
      // The GPU multiplies by the f32 scale, as its affine kernel did; the CPU by the f64 one, as its mul did.
      const f32Scale = Math.fround(scale);
      expect([...g]).toEqual([...sg].map((v) => Math.fround(v * f32Scale)));
      expect([...c]).toEqual([...sc].map((v) => Math.fround(v * scale)));
      gpu.free(xg);
    }), RUNS);
  });

  it('a scale on anything but a float sum is an error', () => {
    const [xg, xc] = both('i32', [1, 2, 3]);
    expect(() => gpu.reduce('sum', xg, [3], [0], 0.5)).toThrow(/webgpu reduce: a scale needs a float sum, got sum of i32/);
    expect(() => cpu.reduce('max', cpu.upload('f32', [1]), [1], [0], 0.5)).toThrow(/cpu reduce: a scale needs a float sum, got max of f32/);
    gpu.free(xg);
    cpu.free(xc);
  });

  it('reduce sum over i32 matches the CPU exactly', async () => {
    await fc.assert(fc.asyncProperty(reduceCase, async ({ shape: s, axes, sd }) => {
      const [xg, xc] = both('i32', seededValues(sd, sizeOf(s), -100, 100, true));
      const [g, c] = await readBoth(gpu.reduce('sum', xg, s, axes), cpu.reduce('sum', xc, s, axes));
      expect([...g]).toEqual([...c]);
      gpu.free(xg);
    }), RUNS);
  });

  it('reduce of all elements of a large vector (workgroup-parallel path) is accurate', async () => {
    const n = 100_003;
    const [xg, xc] = both('f32', seededValues(7, n, 0, 1));
    const [g, c] = await readBoth(gpu.reduce('sum', xg, [n], [0]), cpu.reduce('sum', xc, [n], [0]));
    expectClose(g, c, 0, 1e-5, 'sum of 100003');
    gpu.free(xg);
  });
});
