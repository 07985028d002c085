// CriticPair: each member is the Critic its generator builds (state, scores, power iterations,
// dropout draws and gradients equal to that critic run alone, in f64), its input gradient passes
// gradcheck, state converts to and from Critic names, and WebGPU agrees with the CPU; its fused
// epilogues (linear1's and the head's GELU, the residual adds without dropout) equal the separate
// ops bit for bit on WebGPU, saving exactly the dispatches they should.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Critic, type CriticConfig } from '../../src/nn/critic.js';
import { CriticPair } from '../../src/nn/criticPair.js';
import { member } from '../../src/nn/stacked.js';
import { backward, concat, Generator, gradcheck, mul, randn, reshape, stack, sum, tensor, tidy, type Backend, type Tensor } from '../../src/tensor/index.js';
import { cpu as cpuBackend, describeGpu, gpu } from '../helpers/webgpu.js';

const f64 = { dtype: 'f64' as const };
const cfg: CriticConfig = { dIn: 3, dModel: 4, nLayers: 2, nHeads: 2, maxLen: 5, dropout: 0.3 };

/** A pair and the K critics it should equal, all from the same generators (dropout streams separate but equal). */
function build(K: number, seed: number, config: CriticConfig, dtype: 'f32' | 'f64' = 'f64', backend?: Backend) {
  const gens = () => Array.from({ length: K }, (_, k) => new Generator(seed + k));
  const pairDrop = new Generator(seed + 100);
  const criticDrop = new Generator(seed + 100);
  const pair = new CriticPair(config, { dtype, backend, generators: gens(), dropoutGenerator: pairDrop });
  const critics = gens().map((generator) => new Critic(config, { dtype, backend, generator, dropoutGenerator: criticDrop }));
  return { pair, critics, pairDrop, criticDrop };
}

function maskFor(K: number, N: number, T: number, seed: number): number[] {
  // Every row keeps its first position; others drop pseudo-randomly.
  return Array.from({ length: K * N * T }, (_, i) => (i % T === 0 || (i * 7 + seed) % 3 !== 0 ? 1 : 0));
}

describe('CriticPair', () => {
  it('starts with each member equal to the Critic built from the same generator', () => {
    for (const K of [1, 2]) {
      const { pair, critics } = build(K, 11, cfg);
      tidy(() => {
        critics.forEach((c, k) => {
          const state = pair.memberState(k);
          expect([...state.keys()].sort()).toEqual([...c.stateDict().keys()].sort());
          for (const [n, t] of c.stateDict()) {
            expect(state.get(n)!.shape, n).toEqual(t.shape);
            expect(Array.from(state.get(n)!.dataSync()), n).toEqual(Array.from(t.dataSync()));
          }
        });
      });
      pair.dispose();
      for (const c of critics) c.dispose();
    }
  });

  it('scores, power iterations, dropout draws and parameter gradients equal K critics run one after another (f64)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 2 }), fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 7 }), fc.boolean(), fc.boolean(), fc.integer({ min: 0, max: 1000 }),
        (K, N, T, masked, training, seed) => {
          const { pair, critics, pairDrop, criticDrop } = build(K, seed, cfg);
          pair.train(training);
          for (const c of critics) c.train(training);
          tidy(() => {
            const h = randn([K, N, T, cfg.dIn], { ...f64, generator: new Generator(seed + 7) });
            const mask = masked ? tensor(maskFor(K, N, T, seed), [K, N, T], f64) : undefined;
            const r = randn([K, N], { ...f64, generator: new Generator(seed + 8) });
            const scores = pair.forward(h, mask);
            backward(sum(mul(scores, r)));
            const one = (t: Tensor, k: number) => reshape(member(t, k), t.shape.slice(1));
            const alone = critics.map((c, k) => c.forward(one(h, k), mask ? one(mask, k) : undefined));
            backward(sum(mul(stack(alone), r)));
            expect(scores.shape).toEqual([K, N]);
            const got = Array.from(scores.dataSync());
            const want = Array.from(stack(alone).dataSync());
            got.forEach((x, i) => expect(Math.abs(x - want[i]), `score ${i}`).toBeLessThan(1e-12 * (1 + Math.abs(want[i]))));
            expect(pairDrop.state().offset).toBe(criticDrop.state().offset);
            critics.forEach((c, k) => {
              const state = pair.memberState(k);
              // u and v after the power iterations.
              for (const [n, t] of c.namedBuffers()) {
                const a = state.get(n)!.dataSync();
                t.dataSync().forEach((x, i) => expect(Math.abs(a[i] - x), n).toBeLessThan(1e-12));
              }
              for (const [n, p] of c.namedParameters()) {
                const g = member(pair.getTensor(n).grad!, k).dataSync();
                p.grad!.dataSync().forEach((x, i) => expect(Math.abs(g[i] - x), `grad ${n}[${i}]`).toBeLessThan(1e-10 * (1 + Math.abs(x))));
              }
            });
          });
          pair.dispose();
          for (const c of critics) c.dispose();
        }),
      { numRuns: 15 },
    );
  });

  it('uses the dropout bases it is given for each member', () => {
    const { pair, critics, criticDrop } = build(2, 5, cfg);
    tidy(() => {
      const h = randn([2, 2, 4, cfg.dIn], { ...f64, generator: new Generator(1) });
      // Member 1 draws first, then member 0: bases in the opposite order of the default.
      const per = pair.dropoutDraws(2, 4);
      const got = Array.from(pair.forward(h, undefined, { dropoutBases: [per, 0] }).dataSync());
      const one = (k: number) => reshape(member(h, k), [2, 4, cfg.dIn]);
      const s1 = critics[1].forward(one(1));
      const s0 = critics[0].forward(one(0));
      expect(criticDrop.state().offset).toBe(2 * per);
      const want = [...s0.dataSync(), ...s1.dataSync()];
      got.forEach((x, i) => expect(Math.abs(x - want[i])).toBeLessThan(1e-12 * (1 + Math.abs(want[i]))));
    });
    pair.dispose();
    for (const c of critics) c.dispose();
  });

  it('passes gradcheck with respect to its input (f64, eval), with and without a mask', () => {
    const { pair, critics } = build(2, 3, { ...cfg, dropout: 0 });
    pair.eval();
    const h = randn([2, 2, 3, cfg.dIn], { ...f64, generator: new Generator(4) });
    const mask = tensor(maskFor(2, 2, 3, 1), [2, 2, 3], f64);
    for (const m of [undefined, mask]) {
      const r = gradcheck((x) => pair.forward(x, m), [h]);
      expect(r.ok, r.report).toBe(true);
    }
    h.dispose();
    mask.dispose();
    pair.dispose();
    for (const c of critics) c.dispose();
  });

  it('loadMember and memberState round-trip a Critic state dict, and loadMember checks names and shapes before writing', () => {
    const { pair, critics } = build(2, 9, cfg);
    const other = new Critic(cfg, { ...f64, generator: new Generator(77) });
    tidy(() => {
      pair.loadMember(1, other.stateDict());
      const back = pair.memberState(1);
      for (const [n, t] of other.stateDict()) expect(Array.from(back.get(n)!.dataSync()), n).toEqual(Array.from(t.dataSync()));
      const first = pair.memberState(0);
      for (const [n, t] of critics[0].stateDict()) expect(Array.from(first.get(n)!.dataSync()), n).toEqual(Array.from(t.dataSync()));
      const partial = new Map(other.stateDict());
      partial.delete('pos_embedding');
      expect(() => pair.loadMember(0, partial)).toThrow(/missing keys: pos_embedding/);
      const wrong = new Map(other.stateDict());
      wrong.set('head.2.bias', tensor([1, 2], [2], f64));
      expect(() => pair.loadMember(0, wrong)).toThrow(/'head.2.bias' is \[2\] f64, a member's is \[1\] f64/);
    });
    pair.dispose();
    other.dispose();
    for (const c of critics) c.dispose();
  });

  it('rejects inputs whose first dim is not the member count', () => {
    const { pair, critics } = build(2, 1, cfg);
    tidy(() => expect(() => pair.forward(randn([3, 1, 2, cfg.dIn], f64))).toThrow(/must be \[2, N, T, 3\]/));
    pair.dispose();
    for (const c of critics) c.dispose();
  });
});

describeGpu('CriticPair on WebGPU', () => {
  it('fused epilogues equal the separate ops bit for bit (scores, input and parameter gradients), 3 forward dispatches fewer per layer without dropout and 1 in the head in every mode', async () => {
    const config: CriticConfig = { dIn: 8, dModel: 16, nLayers: 2, nHeads: 4, maxLen: 12, dropout: 0.2 };
    const bitsOf = async (t: Tensor) => Array.from(new Uint32Array(Float32Array.from(await t.data()).buffer));
    for (const training of [false, true]) {
      const run = async (fuse: boolean) => {
        const pair = new CriticPair(config, { backend: gpu, generators: [new Generator(21), new Generator(22)], dropoutGenerator: new Generator(121), fuseEpilogues: fuse });
        pair.train(training);
        const h = randn([2, 3, 10, config.dIn], { backend: gpu, generator: new Generator(5) });
        h.requiresGrad = true;
        const mask = tensor(maskFor(2, 3, 10, 2), [2, 3, 10], { backend: gpu });
        gpu.resetCounters();
        const s = pair.forward(h, mask);
        const forward = gpu.counters().dispatches;
        const loss = sum(mul(s, tensor([0.3, -0.7, 1.1, 0.2, -0.4, 0.9], [2, 3], { backend: gpu })));
        gpu.resetCounters();
        backward(loss);
        const backwardCount = gpu.counters().dispatches;
        const values = await Promise.all([s, h.grad!, ...pair.parameters().map((p) => p.grad!)].map(bitsOf));
        for (const t of [s, loss, h, mask]) t.dispose();
        pair.dispose();
        return { forward, backward: backwardCount, values };
      };
      const [fused, plain] = [await run(true), await run(false)];
      const what = training ? 'training (dropout)' : 'eval';
      expect(fused.values, what).toEqual(plain.values);
      expect(plain.forward - fused.forward, what).toBe((training ? 0 : 3 * config.nLayers) + 1);
      expect(fused.backward, what).toBe(plain.backward);
    }
  });

  it('training forward and parameter gradients match the CPU (f32) within 1e-4', async () => {
    const config: CriticConfig = { dIn: 8, dModel: 16, nLayers: 2, nHeads: 4, maxLen: 12, dropout: 0.2 };
    const on = (backend: Backend) => build(2, 21, config, 'f32', backend);
    const run = async (b: ReturnType<typeof on>, backend: Backend) => {
      const out = tidy(() => {
        const h = randn([2, 3, 10, config.dIn], { backend, generator: new Generator(5) });
        const mask = tensor(maskFor(2, 3, 10, 2), [2, 3, 10], { backend });
        const s = b.pair.forward(h, mask);
        backward(sum(mul(s, tensor([0.3, -0.7, 1.1, 0.2, -0.4, 0.9], [2, 3], { backend }))));
        return concat([s.reshape([6]), ...b.pair.parameters().map((p) => p.grad!.reshape([p.size]))], 0);
      });
      const values = await out.data();
      out.dispose();
      b.pair.dispose();
      for (const c of b.critics) c.dispose();
      return values;
    };
    const g = await run(on(gpu), gpu);
    const c = await run(on(cpuBackend), cpuBackend);
    expect(g.length).toBe(c.length);
    let worst = 0;
    c.forEach((x, i) => (worst = Math.max(worst, Math.abs(g[i] - x) / (1e-3 + Math.abs(x)))));
    expect(worst).toBeLessThan(1e-2);
    let worstAbs = 0;
    c.forEach((x, i) => (worstAbs = Math.max(worstAbs, Math.abs(g[i] - x))));
    expect(worstAbs).toBeLessThan(1e-4);
  });
});
