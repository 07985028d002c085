// WebGPU elementwise kernels (unary, binary with broadcasting, where, cast, fill) agree with the
// CPU reference on the same inputs, for f32 and i32, including size-0 and size-1 dims and a
// dispatch over more than 65535 workgroups. Error bounds are stated per op below.

import fc from 'fast-check';
import { expect, it } from 'vitest';
import type { BinaryOp, UnaryOp } from '../../../../src/tensor/backend.js';
import { broadcastStrides, sizeOf } from '../../../../src/tensor/shape.js';
import { broadcastPair, seed, seededValues, shape } from '../../../helpers/backendArbitraries.js';
import { both, cpu, describeGpu, expectClose, gpu, readBoth } from '../../../helpers/webgpu.js';

const RUNS = { numRuns: 20 };

// [op, input range, |gpu − cpu| <= abs + rel·|cpu|, params]
type UnaryCase = [UnaryOp, [number, number], number, number, [number, number?]?];
const EXACT = [0, 0] as const;
const TRANSCENDENTAL = [1e-6, 2e-5] as const;
const unaryCases: UnaryCase[] = [
  ['neg', [-5, 5], ...EXACT], ['abs', [-5, 5], ...EXACT], ['sign', [-2, 2], ...EXACT], ['relu', [-5, 5], ...EXACT],
  ['step', [-2, 2], ...EXACT], ['square', [-5, 5], ...EXACT], ['clamp', [-5, 5], ...EXACT, [-1.5, 2]],
  ['affine', [-5, 5], 1e-6, 1e-6, [1.5, -0.25]],
  ['exp', [-10, 10], ...TRANSCENDENTAL], ['log', [1e-3, 100], ...TRANSCENDENTAL], ['sqrt', [0, 100], ...TRANSCENDENTAL],
  ['rsqrt', [1e-3, 100], ...TRANSCENDENTAL], ['tanh', [-20, 20], ...TRANSCENDENTAL], ['sigmoid', [-30, 30], ...TRANSCENDENTAL],
  ['softplus', [-30, 30], ...TRANSCENDENTAL], ['logSigmoid', [-30, 30], ...TRANSCENDENTAL], ['reciprocal', [0.01, 10], ...TRANSCENDENTAL],
  ['powScalar', [0.1, 10], ...TRANSCENDENTAL, [2.5]], ['powScalar', [-4, 4], ...TRANSCENDENTAL, [3]],
  // erf is a polynomial approximation: about 5e-7 absolute (see src/shaders/elementwise.ts).
  ['gelu', [-6, 6], 2e-6, 2e-5], ['geluGrad', [-6, 6], 2e-6, 2e-5],
  // The tanh form cancels terms of size ~|x| in f32 (the CPU works in f64): 5e-6 absolute.
  ['geluTanh', [-6, 6], 5e-6, 2e-5], ['geluTanhGrad', [-6, 6], 5e-6, 2e-5],
];

describeGpu('webgpu elementwise', () => {
  for (const [op, [lo, hi], abs, rel, params] of unaryCases) {
    it(`unary ${op}${params ? `(${params.join(', ')})` : ''} f32 matches the CPU within ${abs} + ${rel}·|cpu|`, async () => {
      await fc.assert(fc.asyncProperty(shape(3), seed, async (s, sd) => {
        const [xg, xc] = both('f32', seededValues(sd, sizeOf(s), lo, hi));
        const [g, c] = await readBoth(gpu.unary(op, xg, params), cpu.unary(op, xc, params));
        expectClose(g, c, abs, rel, op);
        gpu.free(xg);
      }), RUNS);
    });
  }

  const intUnary: [UnaryOp, [number, number]?][] = [['neg'], ['abs'], ['sign'], ['relu'], ['step'], ['square'], ['affine', [3, -2]], ['clamp', [-4, 5]]];
  it('unary ops on i32 match the CPU exactly', async () => {
    for (const [op, params] of intUnary) {
      const data = seededValues(op.length, 50, -100, 100, true);
      const [xg, xc] = both('i32', data);
      const [g, c] = await readBoth(gpu.unary(op, xg, params), cpu.unary(op, xc, params));
      expect([...g], op).toEqual([...c]);
      gpu.free(xg);
    }
  });

  // add/sub/mul are correctly rounded on both sides; WGSL allows 2.5 ulp for division and pow is exp2∘log2.
  const binaryTol: Record<BinaryOp, [number, number]> = {
    add: [0, 0], sub: [0, 0], mul: [0, 0], div: [0, 1e-6], maximum: [0, 0], minimum: [0, 0], pow: [1e-6, 2e-5],
    eq: [0, 0], ne: [0, 0], lt: [0, 0], le: [0, 0], gt: [0, 0], ge: [0, 0],
    // g · gelu'(x): the unary derivatives' tolerances (2e-6 and 5e-6 absolute, see above) times |g| <= 5.
    geluBackward: [1e-5, 2e-5], geluTanhBackward: [2.5e-5, 2e-5],
  };
  const floatOnly: BinaryOp[] = ['geluBackward', 'geluTanhBackward'];
  for (const op of Object.keys(binaryTol) as BinaryOp[]) {
    const [abs, rel] = binaryTol[op];
    it(`binary ${op} f32 with broadcasting matches the CPU within ${abs} + ${rel}·|cpu|`, async () => {
      await fc.assert(fc.asyncProperty(broadcastPair, seed, async ({ out, a, b }, sd) => {
        // Small integers make comparisons hit equality; pow needs a positive base.
        const [lo, hi, int] = op === 'pow' ? [0.1, 4, false] : ['eq', 'ne', 'le', 'ge', 'maximum', 'minimum'].includes(op) ? [-3, 3, true] : [-5, 5, false];
        const [ag, ac] = both('f32', seededValues(sd, sizeOf(a), lo, hi, int));
        const [bg, bc] = both('f32', seededValues(sd + 1, sizeOf(b), op === 'div' ? 0.5 : lo, hi, int));
        const as = broadcastStrides(a, out);
        const bs = broadcastStrides(b, out);
        const [g, c] = await readBoth(gpu.binary(op, ag, bg, out, as, bs), cpu.binary(op, ac, bc, out, as, bs));
        expectClose(g, c, abs, rel, op);
        gpu.free(ag);
        gpu.free(bg);
      }), RUNS);
    });
  }

  it('binary ops on i32 (all ops, broadcasting, division by zero) match the CPU exactly', async () => {
    await fc.assert(fc.asyncProperty(broadcastPair, seed, fc.constantFrom<BinaryOp>(...(Object.keys(binaryTol) as BinaryOp[]).filter((op) => !floatOnly.includes(op))), async ({ out, a, b }, sd, op) => {
      const [ag, ac] = both('i32', seededValues(sd, sizeOf(a), op === 'pow' ? 1 : -20, 20, true));
      const [bg, bc] = both('i32', seededValues(sd + 1, sizeOf(b), op === 'pow' ? -1 : -20, op === 'pow' ? 5 : 20, true));
      const as = broadcastStrides(a, out);
      const bs = broadcastStrides(b, out);
      const [g, c] = await readBoth(gpu.binary(op, ag, bg, out, as, bs), cpu.binary(op, ac, bc, out, as, bs));
      expect([...g], op).toEqual([...c]);
      gpu.free(ag);
      gpu.free(bg);
    }), { numRuns: 40 });
  });

  it('where selects through broadcast strides for f32 and i32 conditions and values', async () => {
    await fc.assert(fc.asyncProperty(broadcastPair, seed, fc.constantFrom('f32', 'i32'), fc.constantFrom('f32', 'i32'), async ({ out, a, b }, sd, condType, valType) => {
      const [cg, cc] = both(condType, seededValues(sd, sizeOf(a), 0, 2, true));
      const [ag, ac] = both(valType, seededValues(sd + 1, sizeOf(b), -9, 9, valType === 'i32'));
      const [bg, bc] = both(valType, seededValues(sd + 2, sizeOf(out), -9, 9, valType === 'i32'));
      const st = [broadcastStrides(a, out), broadcastStrides(b, out), broadcastStrides(out, out)] as const;
      const [g, c] = await readBoth(gpu.where(cg, ag, bg, out, ...st), cpu.where(cc, ac, bc, out, ...st));
      expect([...g]).toEqual([...c]);
      for (const s of [cg, ag, bg]) gpu.free(s);
    }), RUNS);
  });

  it('where(ne(t, ignore), t, -1) on i32 remaps ignored targets as crossEntropy does', async () => {
    const t = [3, -100, 0, 7, 7, 2];
    const [tg, tc] = both('i32', t);
    const [ig, ic] = both('i32', [7]);
    const [mg, mc] = both('i32', [-1]);
    const neG = gpu.binary('ne', tg, ig, [6], [1], [0]);
    const neC = cpu.binary('ne', tc, ic, [6], [1], [0]);
    const [g, c] = await readBoth(gpu.where(neG, tg, mg, [6], [1], [1], [0]), cpu.where(neC, tc, mc, [6], [1], [1], [0]));
    expect([...g]).toEqual([3, -100, 0, -1, -1, 2]);
    expect([...g]).toEqual([...c]);
  });

  it('cast f32 → i32 truncates toward zero and i32 → f32 is exact, as on the CPU', async () => {
    await fc.assert(fc.asyncProperty(shape(3), seed, async (s, sd) => {
      const [xg, xc] = both('f32', seededValues(sd, sizeOf(s), -1000, 1000));
      const [ig, ic] = [gpu.cast(xg, 'i32'), cpu.cast(xc, 'i32')];
      const [fg, fc2] = [gpu.cast(ig, 'f32'), cpu.cast(ic, 'f32')];
      const [same] = [gpu.cast(xg, 'f32')];
      expect([...(await gpu.read(ig))]).toEqual([...cpu.readSync(ic)]);
      expect([...(await gpu.read(fg))]).toEqual([...cpu.readSync(fc2)]);
      expect([...(await gpu.read(same))]).toEqual([...cpu.readSync(xc)]);
      for (const x of [xg, ig, fg, same]) gpu.free(x);
    }), RUNS);
  });

  it('fill writes f32 and i32 values (including 0 and -0) to every element', async () => {
    for (const [dtype, v] of [['f32', 1.25], ['f32', 0], ['f32', -0], ['f32', -Infinity], ['i32', -7], ['i32', 0]] as const) {
      const g = gpu.alloc(dtype, 37);
      gpu.fill(g, 3);
      gpu.fill(g, v);
      const out = await gpu.read(g);
      expect(out.every((x) => Object.is(x, v)), `${dtype} ${v}`).toBe(true);
      gpu.free(g);
    }
  });

  it('an elementwise op over more than 65535 workgroups covers every element', async () => {
    const n = 256 * 65536 + 17; // > 65535 workgroups of 256: grid1d spreads them over y
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = (i % 1000) - 500;
    const xg = gpu.upload('f32', data);
    const out = await gpu.read(gpu.unary('affine', xg, [2, 1]));
    let bad = -1;
    for (let i = 0; i < n; i++) if (out[i] !== 2 * data[i] + 1) { bad = i; break; }
    expect(bad).toBe(-1);
    gpu.free(xg);
  });
});
