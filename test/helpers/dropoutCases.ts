// Cases for the fused dropout ops (dropoutAdd, geluDropout), shared by the CPU and WebGPU suites:
// a random stack of S slabs (a leading dim, as stacked models), p, a generator position, and
// optionally one explicit stream offset per slab; and a runner giving the fused op's and the
// composed ops' values, gradients and generator position on one backend, for bit-for-bit comparison.

import fc from 'fast-check';
import { add, backward, type Backend, dropout, dropoutAdd, gelu, geluDropout, Generator, mul, sum, type Tensor, tensor, tidy } from '../../src/tensor/index.js';
import { seed, seededValues } from './backendArbitraries.js';
import { shapeArb, sizeOfShape } from './arbitraries.js';

/**
 * Stream positions for dropout masks: small ones (every phase mod 4, so masks start and end inside
 * Philox blocks), ones whose blocks cross 2^32 (positions near 2^34: the block index's high-word
 * carry), and anywhere below 2^40.
 */
export const streamOffsetArb: fc.Arbitrary<number> = fc.oneof(
  fc.integer({ min: 0, max: 64 }),
  fc.integer({ min: 2 ** 34 - 1200, max: 2 ** 34 + 3 }),
  fc.integer({ min: 0, max: 2 ** 40 }),
);

export type FusedOp = 'dropoutAdd' | 'geluDropout' | 'geluDropout(tanh)';

export interface DropoutCase {
  op: FusedOp;
  /** The tensor's shape is [slabs, ...rest]. */
  slabs: number;
  rest: number[];
  p: number;
  seed: number;
  /** The generator's starting position. */
  start: number;
  /** One stream position per slab, or null to draw from the generator. */
  offsets: number[] | null;
  dataSeed: number;
}

export const dropoutCaseArb: fc.Arbitrary<DropoutCase> = fc.record({
  op: fc.constantFrom<FusedOp>('dropoutAdd', 'geluDropout', 'geluDropout(tanh)'),
  slabs: fc.integer({ min: 1, max: 4 }),
  rest: shapeArb({ maxRank: 3, maxDim: 7, maxSize: 300 }),
  p: fc.constantFrom(0.1, 0.5, 0.01, 0.9),
  seed,
  start: fc.oneof(fc.constant(0), streamOffsetArb),
  offsets: fc.option(fc.array(streamOffsetArb, { minLength: 4, maxLength: 4 }), { nil: null }),
  dataSeed: seed,
}).map((c) => ({ ...c, offsets: c.offsets && c.offsets.slice(0, c.slabs) }));

export interface DropoutRun {
  /** The op's output. */
  value: number[];
  /** Gradients of sum(y · w) (w fixed, random) for each input: [residual, x] or [x]. */
  grads: number[][];
  /** The generator's position afterwards. */
  generatorOffset: number;
}

/** The fused op and its composition (dropout after add's residual or gelu), on one backend and dtype. */
export async function fusedAndComposed(backend: Backend, dtype: 'f32' | 'f64', c: DropoutCase): Promise<[DropoutRun, DropoutRun]> {
  return [await runCase(backend, dtype, c, true), await runCase(backend, dtype, c, false)];
}

export async function runCase(backend: Backend, dtype: 'f32' | 'f64', c: DropoutCase, fused: boolean): Promise<DropoutRun> {
  const shape = [c.slabs, ...c.rest];
  const n = sizeOfShape(shape);
  const generator = new Generator(c.seed, c.start);
  const opts = { generator, offsets: c.offsets ?? undefined };
  const approximate = c.op === 'geluDropout(tanh)' ? 'tanh' : 'none';
  // The inputs are returned too: their .grad lives as long as they do.
  const { y, grads, inputs } = tidy(() => {
    const make = (s: number, lo = -4, hi = 4) => tensor(seededValues(c.dataSeed + s, n, lo, hi), shape, { backend, dtype, requiresGrad: true });
    const x = make(0);
    const residual = make(1);
    const w = tensor(seededValues(c.dataSeed + 2, n, 0.5, 1.5), shape, { backend, dtype });
    let out: Tensor;
    if (c.op === 'dropoutAdd') out = fused ? dropoutAdd(residual, x, c.p, opts) : add(residual, dropout(x, c.p, opts));
    else out = fused ? geluDropout(x, c.p, { ...opts, approximate }) : dropout(gelu(x, approximate), c.p, opts);
    backward(sum(mul(out, w)));
    const inputs = c.op === 'dropoutAdd' ? [residual, x] : [x];
    return { y: out, grads: inputs.map((t) => t.grad!), inputs };
  });
  const run: DropoutRun = { value: Array.from(await y.data()), grads: [], generatorOffset: generator.state().offset };
  for (const g of grads) run.grads.push(Array.from(await g.data()));
  [y, ...grads, ...inputs].forEach((t) => t.dispose());
  return run;
}
