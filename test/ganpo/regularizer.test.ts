// GanpoRegularizer on its stacked critics (CriticPair) against the plain two-critic computation of
// GANPO.md §5 with separate Critic modules (the form this code had before the critics were stacked):
// the same scores, running means, losses, critic gradients, dropout draws and generator-loss
// gradient, for every calling mode (batched or the reference's three calls, two critics or one
// shared, pooled or not), in f64. Also: per-critic state and optimizer names round-trip.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Critic, type CriticConfig } from '../../src/nn/critic.js';
import { member } from '../../src/nn/stacked.js';
import { defaultGanpo, GanpoRegularizer, type GanpoConfig } from '../../src/ganpo/regularizer.js';
import { criticLosses, generatorLoss, RunningMeans, scoreParts, stackScores, type CriticScores } from '../../src/ganpo/adversarial.js';
import { backward, concat, Generator, randn, slice, sum, tensor, tidy, type Tensor } from '../../src/tensor/index.js';

const f64 = { dtype: 'f64' as const };
const SEED = 40;

function ganpo(over: Partial<GanpoConfig>): GanpoConfig {
  return { ...defaultGanpo(1e-3, 6), criticWidth: 4, criticHeads: 2, criticLayers: 2, criticDropout: 0.2, ...over };
}

/** GANPO.md §5 with one Critic module per critic, called as the regularizer's modes describe. */
class TwoCritics {
  readonly dropout = new Generator(SEED + 1);
  readonly chosen: Critic;
  readonly rejected: Critic;
  readonly means: RunningMeans;

  constructor(readonly config: GanpoConfig, dIn: number) {
    const cfg: CriticConfig = { dIn, dModel: config.criticWidth, nLayers: config.criticLayers, nHeads: config.criticHeads, maxLen: config.criticMaxLen, dropout: config.criticDropout };
    this.chosen = new Critic(cfg, { ...f64, generator: new Generator(SEED + 2), dropoutGenerator: this.dropout });
    this.rejected = config.sharedCritic ? this.chosen : new Critic(cfg, { ...f64, generator: new Generator(SEED + 3), dropoutGenerator: this.dropout });
    this.means = new RunningMeans(config.momentum);
  }

  criticLoss(pol: Tensor, ref: Tensor, mask: Tensor | undefined) {
    const B = pol.shape[0] / 2;
    const half = (t: Tensor, i: number) => slice(t, 0, i * B, (i + 1) * B);
    const mk = (i: number) => (mask ? half(mask, i) : undefined);
    this.chosen.train();
    this.rejected.train();
    let s: CriticScores;
    if (this.config.batchCriticCalls) {
      const three = (c: Critic, i: number) => {
        const out = c.forward(concat([half(pol, i), ref], 0), mask ? concat([mk(i)!, mask], 0) : undefined);
        return [0, 1, 2].map((j) => half(out, j));
      };
      const [a, b, c] = three(this.chosen, 0);
      const [a2, b2, c2] = three(this.rejected, 1);
      s = { a, b, c, a2, b2, c2 };
    } else {
      s = {
        a: this.chosen.forward(half(pol, 0), mk(0)), b: this.chosen.forward(half(ref, 0), mk(0)), c: this.chosen.forward(half(ref, 1), mk(1)),
        a2: this.rejected.forward(half(pol, 1), mk(1)), b2: this.rejected.forward(half(ref, 0), mk(0)), c2: this.rejected.forward(half(ref, 1), mk(1)),
      };
    }
    this.means.update(stackScores(s));
    return { s, losses: criticLosses(stackScores(s), this.means.current(), this.config.contrastive) };
  }

  generatorLoss(pol: Tensor, mask: Tensor | undefined): Tensor {
    const B = pol.shape[0] / 2;
    this.chosen.eval().freeze();
    this.rejected.eval().freeze();
    const a = this.chosen.forward(slice(pol, 0, 0, B), mask && slice(mask, 0, 0, B));
    const a2 = this.rejected.forward(slice(pol, 0, B, 2 * B), mask && slice(mask, 0, B, 2 * B));
    const loss = generatorLoss(concat([a.reshape([1, B]), a2.reshape([1, B])], 0), this.means.current());
    this.chosen.unfreeze();
    this.rejected.unfreeze();
    return loss;
  }

  dispose(): void {
    this.chosen.dispose();
    if (!this.config.sharedCritic) this.rejected.dispose();
    this.means.dispose();
  }
}

const close = (got: ArrayLike<number>, want: ArrayLike<number>, what: string, tol = 1e-11): void => {
  expect(got.length, what).toBe(want.length);
  for (let i = 0; i < want.length; i++) expect(Math.abs(got[i] - want[i]), `${what}[${i}]: ${got[i]} vs ${want[i]}`).toBeLessThan(tol * (1 + Math.abs(want[i])));
};

describe('GanpoRegularizer on stacked critics', () => {
  it('matches two separate critics in every calling mode: scores, means, losses, gradients, dropout draws (f64)', () => {
    fc.assert(
      fc.property(fc.boolean(), fc.boolean(), fc.boolean(), fc.boolean(), fc.integer({ min: 1, max: 3 }), fc.integer({ min: 2, max: 8 }), fc.integer({ min: 0, max: 1000 }),
        (batchCriticCalls, sharedCritic, masked, contrastive, B, T, seed) => {
          const config = ganpo({ batchCriticCalls, sharedCritic, contrastive, pool: masked ? 'nonpad' : 'all' });
          const dIn = 3;
          const reg = new GanpoRegularizer(config, dIn, { dtype: 'f64', seed: SEED, warmupSteps: 0, totalSteps: 10 });
          const ref = new TwoCritics(config, dIn);
          tidy(() => {
            const g = new Generator(seed);
            const pol = randn([2 * B, T, dIn], { ...f64, generator: g });
            const refH = randn([2 * B, T, dIn], { ...f64, generator: g });
            const mask = masked ? tensor(Array.from({ length: 2 * B * T }, (_, i) => (i % T === 0 || (i * 5 + seed) % 4 ? 1 : 0)), [2 * B, T], f64) : undefined;
            // Two critic steps, so the running means blend and the power iterations move on.
            for (let step = 0; step < 2; step++) {
              const got = reg.criticLoss(pol, refH, mask);
              const want = ref.criticLoss(pol, refH, mask);
              const parts = scoreParts(got.scores);
              for (const k of ['a', 'b', 'c', 'a2', 'b2', 'c2'] as const) close(parts[k].dataSync(), want.s[k].dataSync(), `step ${step} score ${k}`);
              close(got.losses.dataSync(), want.losses.dataSync(), 'L_Dc, L_Dr');
              close(reg.means.value!.dataSync(), ref.means.value!.dataSync(), 'running means');
              backward(sum(got.losses));
              backward(sum(want.losses));
              expect(reg.dropout.state().offset).toBe(ref.dropout.state().offset);
            }
            const critics = sharedCritic ? [ref.chosen] : [ref.chosen, ref.rejected];
            critics.forEach((c, k) => {
              for (const [n, p] of c.namedParameters()) close(member(reg.critics.getTensor(n).grad!, k).dataSync(), p.grad!.dataSync(), `critic ${k} grad ${n}`, 1e-9);
              for (const [n, t] of c.namedBuffers()) close(member(reg.critics.getTensor(n), k).dataSync(), t.dataSync(), `critic ${k} ${n}`);
            });
            const polGrad = (loss: (p: Tensor) => Tensor): { value: number; grad: Float64Array } => {
              const p = pol.detach();
              p.requiresGrad = true;
              const l = loss(p);
              backward(l);
              return { value: l.itemSync(), grad: Float64Array.from(p.grad!.dataSync()) };
            };
            const gotGen = polGrad((p) => reg.generatorLoss(p, mask));
            const wantGen = polGrad((p) => ref.generatorLoss(p, mask));
            close([gotGen.value], [wantGen.value], 'L_adv');
            close(gotGen.grad, wantGen.grad, 'dL_adv/dH', 1e-9);
          });
          reg.dispose();
          ref.dispose();
        }),
      { numRuns: 24 },
    );
  });

  it('saves and loads per-critic names (chosen.*, rejected.*) for parameters, buffers and optimizer state', () => {
    for (const sharedCritic of [false, true]) {
      const config = ganpo({ sharedCritic });
      const a = new GanpoRegularizer(config, 3, { dtype: 'f64', seed: 1, warmupSteps: 0, totalSteps: 10 });
      const b = new GanpoRegularizer(config, 3, { dtype: 'f64', seed: 2, warmupSteps: 0, totalSteps: 10 });
      tidy(() => {
        const pol = randn([2, 4, 3], { ...f64, generator: new Generator(3) });
        backward(sum(a.criticLoss(pol, pol, undefined).losses));
        a.criticStep();
        const state = a.stateDict();
        const names = [...state.keys()];
        expect(names.some((n) => n.startsWith('rejected.'))).toBe(!sharedCritic);
        expect(names).toContain('chosen.transformer.layers.1.self_attn.in_proj_weight');
        expect(state.get('chosen.pos_embedding')!.shape).toEqual([1, 6, 4]);
        const opt = a.optimizerState();
        expect([...opt.tensors.keys()]).toContain('chosen.head.2.weight_orig.exp_avg');
        expect(opt.steps.get('chosen.head.2.bias')).toBe(1);
        b.loadStateDict(state);
        b.loadOptimizerState(opt);
        for (const [n, t] of b.stateDict()) expect(Array.from(t.dataSync()), n).toEqual(Array.from(state.get(n)!.dataSync()));
        const back = b.optimizerState();
        for (const [n, t] of back.tensors) expect(Array.from(t.dataSync()), n).toEqual(Array.from(opt.tensors.get(n)!.dataSync()));
        expect(back.steps).toEqual(opt.steps);
        expect(b.optimizerSteps()).toEqual(opt.steps);
        const partial = new Map(state);
        partial.delete('chosen.head.0.bias');
        expect(() => b.loadStateDict(partial, 'critic.')).toThrow(/missing tensor critic\.chosen\.head\.0\.bias/);
        expect(() => b.loadStateDict(new Map([...state, ['other.x', state.get('chosen.pos_embedding')!]]))).toThrow(/unexpected name 'other\.x'/);
      });
      a.dispose();
      b.dispose();
    }
  });
});
