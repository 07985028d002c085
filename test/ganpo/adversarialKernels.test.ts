// The fused adversarial kernels (src/ganpo/adversarialKernels.ts) against the composition of
// built-in ops they replace (GANPO.md §5 term by term), in f64 on the CPU backend with gradients
// for the scores and the means against finite differences, and on WebGPU against the CPU for batch
// sizes around the kernels' 64-wide loop (one workgroup loops over the batch and reduces).

import fc from 'fast-check';
import { expect, it } from 'vitest';
import { criticAccuracy, criticLosses, generatorLoss, RunningMeans, TERMS } from '../../src/ganpo/adversarial.js';
import {
  add, backward, gradcheck, gt, indexSelect, keep, mean, mul, reshape, softplus, sub, tensor, tidy, type Backend, type Tensor,
} from '../../src/tensor/index.js';
import { cpu, describeGpu, expectClose, gpu } from '../helpers/webgpu.js';

/** The composition the critic-loss kernel replaced: gather (score, mean, sign) per term, softplus, two means. */
function composedCriticLosses(scores: Tensor, means: Tensor, contrastive = true): Tensor {
  const B = scores.shape[2];
  const terms = TERMS.map((t, k) => t.slice(0, contrastive ? 4 : 2).map(([j, i, sign]) => [3 * k + j, 3 * k + i, sign]));
  const n = terms.flat().length;
  const opts = { backend: scores.backend };
  const col = (f: (t: number[]) => number, dtype: 'i32' | 'f32' | 'f64') => tensor(terms.flat().map(f), [n], { ...opts, dtype });
  const s = indexSelect(reshape(scores, [6, B]), 0, col((t) => t[0], 'i32'));
  const m = reshape(indexSelect(means, 0, col((t) => t[1], 'i32')), [n, 1]);
  const z = mul(sub(s, m), reshape(col((t) => t[2], scores.dtype as 'f32' | 'f64'), [n, 1]));
  return mean(reshape(mean(softplus(z), 1), [2, n / 2]), 1);
}

function composedGeneratorLoss(scores: Tensor, means: Tensor): Tensor {
  const m = reshape(indexSelect(means, 0, tensor([1, 5], [2], { backend: scores.backend, dtype: 'i32' })), [2, 1]);
  return mean(softplus(sub(m, scores)));
}

function composedAccuracy(scores: Tensor): Tensor {
  const flat = reshape(scores, [6, scores.shape[2]]);
  const rows = (r: number[]) => indexSelect(flat, 0, tensor(r, [2], { backend: scores.backend, dtype: 'i32' }));
  return mean(gt(rows([1, 5]), rows([0, 3])));
}

const f64 = (v: readonly number[], shape: number[]) => tensor(v, shape, { dtype: 'f64' });
const values = (n: number, max = 4) => fc.array(fc.double({ min: -max, max, noNaN: true }), { minLength: n, maxLength: n });
const close = (got: ArrayLike<number>, want: ArrayLike<number>, tol: number) =>
  Array.from(want).forEach((w, i) => expect(Math.abs(got[i] - w), `element ${i}: ${got[i]} vs ${w}`).toBeLessThanOrEqual(tol * (1 + Math.abs(w))));

it('critic losses equal the term-by-term composition in f64, forward and gradients (scores and means)', () => {
  fc.assert(fc.property(fc.integer({ min: 1, max: 70 }), fc.boolean(), fc.integer({ min: 0, max: 2 ** 31 - 1 }), (B, contrastive, seed) => {
    const rnd = mulberry(seed);
    const sv = Array.from({ length: 6 * B }, () => 8 * rnd() - 4);
    const mv = Array.from({ length: 6 }, () => 4 * rnd() - 2);
    const grads = (f: typeof criticLosses) => tidy(() => {
      const s = tensor(sv, [2, 3, B], { dtype: 'f64', requiresGrad: true });
      const m = tensor(mv, [6], { dtype: 'f64', requiresGrad: true });
      const out = f(s, m, contrastive);
      // Different weights per critic so a swapped critic shows.
      backward(add(mul(out.slice(0, 0, 1), 0.7), mul(out.slice(0, 1, 2), -1.3)).sum());
      return [out.dataSync(), s.grad!.dataSync(), m.grad!.dataSync()].map((x) => Array.from(x));
    });
    const got = grads(criticLosses);
    const want = grads(composedCriticLosses);
    got.forEach((g, i) => close(g, want[i], 1e-12));
  }), { numRuns: 40 });
});

it('the generator loss equals the composition in f64, forward and gradients', () => {
  fc.assert(fc.property(fc.integer({ min: 1, max: 70 }), fc.integer({ min: 0, max: 2 ** 31 - 1 }), (B, seed) => {
    const rnd = mulberry(seed);
    const sv = Array.from({ length: 2 * B }, () => 8 * rnd() - 4);
    const mv = Array.from({ length: 6 }, () => 4 * rnd() - 2);
    const grads = (f: typeof generatorLoss) => tidy(() => {
      const s = tensor(sv, [2, B], { dtype: 'f64', requiresGrad: true });
      const m = tensor(mv, [6], { dtype: 'f64', requiresGrad: true });
      const out = f(s, m);
      backward(mul(out, 1.7));
      return [out.dataSync(), s.grad!.dataSync(), m.grad!.dataSync()].map((x) => Array.from(x));
    });
    const got = grads(generatorLoss);
    const want = grads(composedGeneratorLoss);
    got.forEach((g, i) => close(g, want[i], 1e-12));
  }), { numRuns: 40 });
});

it('both losses have finite-difference gradients for the scores and the means (f64)', () => {
  fc.assert(fc.property(values(12), values(6, 2), fc.boolean(), (sv, mv, contrastive) => {
    const critic = gradcheck((s, m) => mul(criticLosses(s, m, contrastive), tensor([0.6, -1.1], [2], { dtype: 'f64' })).sum(), [f64(sv, [2, 3, 2]), f64(mv, [6])]);
    const gen = gradcheck((s, m) => generatorLoss(s, m), [f64(sv.slice(0, 6), [2, 3]), f64(mv, [6])]);
    expect(critic.ok, critic.report).toBe(true);
    expect(gen.ok, gen.report).toBe(true);
  }), { numRuns: 20 });
});

it('accuracy equals the composition, ties counting as wrong', () => {
  fc.assert(fc.property(fc.integer({ min: 1, max: 70 }), fc.integer({ min: 0, max: 2 ** 31 - 1 }), (B, seed) => {
    const rnd = mulberry(seed);
    // Values on a coarse grid so ties happen.
    const s = f64(Array.from({ length: 6 * B }, () => Math.floor(3 * rnd())), [2, 3, B]);
    expect(criticAccuracy(s).itemSync()).toBe(composedAccuracy(s).itemSync());
  }), { numRuns: 40 });
});

it('scores of the wrong shape fail with the op name and both shapes', () => {
  const m = f64([0, 0, 0, 0, 0, 0], [6]);
  expect(() => criticLosses(f64([1, 2, 3, 4, 5, 6], [3, 2, 1]), m)).toThrow(/criticLosses.*scores must be \[2, 3, B\].*\[3, 2, 1\]/);
  expect(() => generatorLoss(f64([1, 2, 3], [3, 1]), m)).toThrow(/generatorLoss.*scores must be \[2, B\]/);
  expect(() => criticLosses(f64(Array(6).fill(0), [2, 3, 1]), f64([1, 2], [2]))).toThrow(/means must be \[6\], got \[2\]/);
});

/** A tiny seeded generator for test data (fast-check shrinks the seed). */
function mulberry(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describeGpu('adversarial kernels on WebGPU', () => {
  /** Losses, gradients, means and accuracy of one draw on a backend (f32). */
  async function run(backend: Backend, sv: number[], mv: number[], B: number, contrastive: boolean): Promise<number[][]> {
    const rm = new RunningMeans(0.9);
    const outs = tidy(() => {
      const o = { backend, dtype: 'f32' as const, requiresGrad: true };
      const s = tensor(sv, [2, 3, B], o);
      const m = tensor(mv, [6], o);
      const losses = criticLosses(s, m, contrastive);
      const gs = tensor(sv.slice(0, 2 * B), [2, B], o);
      const adv = generatorLoss(gs, m);
      backward(add(mul(losses.slice(0, 0, 1), 0.7), add(mul(losses.slice(0, 1, 2), -1.3), adv)).sum());
      rm.update(s);
      const first = mul(rm.current(), 1);
      rm.update(mul(s, 0.5));
      return [losses, adv, s.grad!, m.grad!, gs.grad!, criticAccuracy(s), first, rm.current()].map((t) => keep(mul(t, 1)));
    });
    const values: number[][] = [];
    for (const t of outs) {
      values.push(Array.from(await t.data()));
      t.dispose();
    }
    rm.dispose();
    return values;
  }

  it('match the CPU for batches across the 64-wide loop, with large scores (softplus and sigmoid tails)', async () => {
    for (const B of [1, 3, 63, 64, 65, 200]) {
      for (const contrastive of [true, false]) {
        const rnd = mulberry(B * 7 + (contrastive ? 1 : 0));
        const sv = Array.from({ length: 6 * B }, (_, i) => (i % 17 === 0 ? 60 * rnd() - 30 : 8 * rnd() - 4));
        // Ties in every third comparison of the accuracy (b = a, c' = a'), which count as wrong.
        for (let b = 0; b < B; b += 3) {
          sv[B + b] = sv[b];
          sv[5 * B + b] = sv[3 * B + b];
        }
        const mv = Array.from({ length: 6 }, () => 4 * rnd() - 2);
        const g = await run(gpu, sv, mv, B, contrastive);
        const c = await run(cpu, sv, mv, B, contrastive);
        const names = ['losses', 'generator loss', 'dscores', 'dmeans', 'generator dscores', 'accuracy', 'first means', 'blended means'];
        g.forEach((x, i) => expectClose(x, c[i], 1e-6, 1e-5, `${names[i]} (B ${B}, contrastive ${contrastive})`));
      }
    }
  });
});
