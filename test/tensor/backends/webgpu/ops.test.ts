// The tensor ops (src/tensor) on tensors created with { backend: gpu } give the same values and
// gradients as on the CPU. Each case is loss = sum(op(inputs) · r) for a fixed random r, so every
// output element carries a distinct gradient. Bound: 2e-5 + 2e-4·|cpu| (f32 through several
// kernels; the CPU reference accumulates matmul in f64).

import fc from 'fast-check';
import { expect, it } from 'vitest';
import {
  add, attention, crossEntropy, gatherLogProbs, gelu, layerNorm, logSoftmax, logsumexp, matmul, max, mean, mul, permute,
  slice, softmax, sum, tensor, type Backend, type Tensor, valueAndGrad,
} from '../../../../src/tensor/index.js';
import { seed, seededValues } from '../../../helpers/backendArbitraries.js';
import { cpu, describeGpu, expectClose, gpu } from '../../../helpers/webgpu.js';

interface Case {
  name: string;
  /** Input shapes from the sizes (B, T, D). */
  shapes: (B: number, T: number, D: number) => number[][];
  f: (xs: Tensor[], targets: Tensor) => Tensor;
}

const cases: Case[] = [
  { name: 'add (broadcast) and matmul', shapes: (B, T, D) => [[B, T, D], [D, T], [D]], f: ([x, w, b]) => matmul(add(x, b), w) },
  { name: 'softmax on a permuted input', shapes: (B, T, D) => [[B, T, D]], f: ([x]) => softmax(permute(x, [0, 2, 1])) },
  { name: 'logSoftmax along a middle axis', shapes: (B, T, D) => [[B, T, D]], f: ([x]) => logSoftmax(x, 1) },
  { name: 'layerNorm then exact gelu', shapes: (B, T, D) => [[B, T, D], [D], [D]], f: ([x, g, b]) => gelu(layerNorm(x, g, b)) },
  { name: 'gatherLogProbs', shapes: (B, T, D) => [[B, T, D]], f: ([x], t) => gatherLogProbs(x, t) },
  { name: 'crossEntropy with an ignore index (mean)', shapes: (B, T, D) => [[B, T, D]], f: ([x], t) => crossEntropy(x, t, { ignoreIndex: 1 }) },
  { name: 'causal attention', shapes: (B, T, D) => [[B, 1, T, D], [B, 1, T, D], [B, 1, T, D]], f: ([q, k, v]) => attention(q, k, v, { causal: true }) },
  // x feeds layerNorm and the residual add: layerNorm's backward adds the residual's gradient in its dx kernel.
  { name: 'pre-LN residual x + layerNorm(x) @ w', shapes: (B, T, D) => [[B, T, D], [D], [D], [D, D]], f: ([x, g, b, w]) => add(x, matmul(layerNorm(x, g, b), w)) },
  // mean's backward: g times 1/n read through broadcast strides, in one pass.
  { name: 'mean over outer axes, and over all (keepdim)', shapes: (B, T, D) => [[B, T, D]], f: ([x]) => add(mean(x, [0, 2]), mean(x, undefined, true)) },
  { name: 'slice, max and logsumexp', shapes: (B, T, D) => [[B, T, D]], f: ([x]) => add(max(slice(x, 2, 0, 1), 1), logsumexp(x, [0, 2])) },
];

async function run(backend: Backend, c: Case, sd: number, B: number, T: number, D: number) {
  const shapes = c.shapes(B, T, D);
  const xs = shapes.map((s, i) => tensor(seededValues(sd + i, s.reduce((p, d) => p * d, 1), -2, 2), s, { backend }));
  const targets = tensor(seededValues(sd + 9, B * T, -1, D, true), [B, T], { backend, dtype: 'i32' });
  const { value, grads } = valueAndGrad((...ins) => {
    const y = c.f(ins, targets);
    const r = tensor(seededValues(sd + 7, y.size, 0.5, 1.5), y.shape, { backend });
    return sum(mul(y, r));
  })(...xs);
  return { value: await value.data(), grads: await Promise.all(grads.map((g) => g.data())) };
}

describeGpu('tensor ops on the webgpu backend', () => {
  for (const c of cases) {
    it(`${c.name}: values and gradients match the CPU within 2e-5 + 2e-4·|cpu|`, async () => {
      const size = fc.integer({ min: 1, max: 4 });
      await fc.assert(fc.asyncProperty(seed, size, size, size, async (sd, B, T, D) => {
        const g = await run(gpu, c, sd, B, T, D + 1);
        const r = await run(cpu, c, sd, B, T, D + 1);
        expectClose(g.value, r.value, 2e-5, 2e-4, 'value');
        g.grads.forEach((gr, i) => expectClose(gr, r.grads[i], 2e-5, 2e-4, `grad ${i}`));
      }), { numRuns: 8 });
    });
  }

  it('layerNorm folds the residual gradient into its dx kernel: bit for bit the unfolded sum, one add dispatch fewer', async () => {
    const [B, T, D] = [3, 5, 24];
    const data = (sd: number, n: number) => seededValues(sd, n, -2, 2);
    const grads = async (fold: boolean) => {
      const ins = [[B, T, D], [D], [D], [D, D]].map((s, i) => tensor(data(40 + i, s.reduce((p, d) => p * d, 1)), s, { backend: gpu }));
      const r = tensor(seededValues(47, B * T * D, 0.5, 1.5), [B, T, D], { backend: gpu });
      const f = valueAndGrad((x, g, b, w) => {
        // Without the fold: layerNorm sees mul(x, 1), a distinct tensor (exact), so backward adds
        // the residual gradient and the layerNorm gradient in a separate pass.
        const y = add(x, matmul(layerNorm(fold ? x : mul(x, 1), g, b), w));
        return sum(mul(y, r));
      });
      f(...ins); // compile
      await gpu.sync();
      gpu.resetCounters();
      const { grads: gs } = f(...ins);
      const out = await gs[0].data();
      return { dx: out, dispatches: gpu.counters().dispatches };
    };
    const folded = await grads(true);
    const plain = await grads(false);
    for (let i = 0; i < plain.dx.length; i++) {
      if (!Object.is(folded.dx[i], plain.dx[i])) throw new Error(`dx element ${i}: folded ${folded.dx[i]}, unfolded ${plain.dx[i]}`);
    }
    // The unfolded graph also runs mul forward and mul backward: 3 dispatches more, one of them the add.
    expect(plain.dispatches - folded.dispatches).toBe(3);
  });
});
