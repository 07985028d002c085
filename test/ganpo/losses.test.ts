import { describe, expect, test } from 'vitest';
import fc from 'fast-check';
import { gradcheck, slice, tensor, type Tensor } from '../../src/index.js';
import { preferenceLoss, defaultBaseLoss, type BaseLossConfig, type PairLogProbs } from '../../src/ganpo/losses.js';
import { criticLosses, generatorLoss, RunningMeans, criticAccuracy, scoreParts, stackScores, type CriticScores } from '../../src/ganpo/adversarial.js';

const f64 = (xs: number[]): Tensor => tensor(xs, [xs.length], { dtype: 'f64' });
const logsig = (x: number): number => -Math.log1p(Math.exp(-x));
const sp = (x: number): number => Math.log1p(Math.exp(x));
const meanOf = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

const pw = [-10, -12.5, -3];
const pl = [-11, -12, -4.5];
const rw = [-10.5, -12, -3.2];
const rl = [-10.8, -12.4, -4];
const lw = [5, 6, 2];
const ll = [4, 6, 3];
const pairs = (): PairLogProbs => ({
  policyChosen: f64(pw), policyRejected: f64(pl), refChosen: f64(rw), refRejected: f64(rl),
  chosenLength: f64(lw), rejectedLength: f64(ll),
});

describe('base losses match the formulas of GANPO.md §2 (and TRL) by hand', () => {
  const z = pw.map((_, i) => pw[i] - rw[i] - (pl[i] - rl[i]));
  test('DPO sigmoid: −mean log σ(β z), rewards β·Δ', () => {
    const cfg = { ...defaultBaseLoss('dpo'), beta: 0.5 };
    const out = preferenceLoss(cfg, pairs());
    expect(out.loss.itemSync()).toBeCloseTo(-meanOf(z.map((v) => logsig(0.5 * v))), 12);
    expect([...out.chosenRewards.dataSync()]).toEqual(pw.map((v, i) => 0.5 * (v - rw[i])));
    expect([...out.rejectedRewards.dataSync()]).toEqual(pl.map((v, i) => 0.5 * (v - rl[i])));
  });
  test('robust / label smoothing: −(1−ε) log σ(βz) − ε log σ(−βz)', () => {
    const cfg: BaseLossConfig = { ...defaultBaseLoss('robust'), beta: 0.3, labelSmoothing: 0.2 };
    const want = meanOf(z.map((v) => -0.8 * logsig(0.3 * v) - 0.2 * logsig(-0.3 * v)));
    expect(preferenceLoss(cfg, pairs()).loss.itemSync()).toBeCloseTo(want, 12);
  });
  test('IPO: mean((Δ_w/|y_w| − Δ_l/|y_l|) − 1/(2β))²', () => {
    const cfg = { ...defaultBaseLoss('ipo'), beta: 0.25 };
    const want = meanOf(pw.map((_, i) => ((pw[i] - rw[i]) / lw[i] - (pl[i] - rl[i]) / ll[i] - 1 / 0.5) ** 2));
    expect(preferenceLoss(cfg, pairs()).loss.itemSync()).toBeCloseTo(want, 12);
  });
  test('hinge: mean relu(1 − β z)', () => {
    const cfg = { ...defaultBaseLoss('hinge'), beta: 2 };
    expect(preferenceLoss(cfg, pairs()).loss.itemSync()).toBeCloseTo(meanOf(z.map((v) => Math.max(0, 1 - 2 * v))), 12);
  });
  test('SimPO: −mean log σ(β/|y_w| log π_w − β/|y_l| log π_l − γ), reference-free', () => {
    const cfg = { ...defaultBaseLoss('simpo'), beta: 2.5, simpoGamma: 1.2 };
    const lp = pairs();
    delete lp.refChosen;
    delete lp.refRejected;
    const want = -meanOf(pw.map((_, i) => logsig((2.5 * pw[i]) / lw[i] - (2.5 * pl[i]) / ll[i] - 1.2)));
    const out = preferenceLoss(cfg, lp);
    expect(out.loss.itemSync()).toBeCloseTo(want, 12);
    expect(out.chosenRewards.dataSync()[0]).toBeCloseTo((2.5 * pw[0]) / lw[0], 12);
  });
  test('DPO-family losses without reference log-probs fail with a named error', () => {
    const lp = pairs();
    delete lp.refChosen;
    expect(() => preferenceLoss(defaultBaseLoss('dpo'), lp)).toThrow(/dpo loss needs reference log-probs/);
  });
  test('every base loss has gradients equal to finite differences w.r.t. the policy log-probs', () => {
    fc.assert(fc.property(
      fc.constantFrom(...(['dpo', 'ipo', 'hinge', 'robust', 'simpo'] as const)),
      fc.array(fc.double({ min: -20, max: -0.5, noNaN: true }), { minLength: 8, maxLength: 8 }),
      (kind, v) => {
        const cfg = defaultBaseLoss(kind);
        const ref = pairs();
        const r = gradcheck((a, b) => preferenceLoss(cfg, { ...ref, policyChosen: a, policyRejected: b }).loss,
          [f64(v.slice(0, 3)), f64(v.slice(3, 6))]);
        // hinge has a kink at βz = 1; random values land on it with probability 0.
        expect(r.ok, r.report).toBe(true);
      }), { numRuns: 30 });
  });
});

describe('GANPO critic and generator losses (GANPO.md §5) by hand', () => {
  const S = { a: [0.3, -0.2, 1.1], b: [0.9, 0.4, 0.2], c: [-0.5, -1, 0.1], a2: [0.2, 0.5, -0.3], b2: [-0.4, 0.8, 0.6], c2: [1.2, 0.1, 0.7] };
  const M = [0.1, 0.5, -0.4, 0.05, 0.3, 0.6];
  const named = (): CriticScores => ({ a: f64(S.a), b: f64(S.b), c: f64(S.c), a2: f64(S.a2), b2: f64(S.b2), c2: f64(S.c2) });
  const scores = (): Tensor => stackScores(named());
  const means = (): Tensor => tensor(M, [6], { dtype: 'f64' });
  const E = (f: (i: number) => number): number => meanOf([0, 1, 2].map(f));

  test('stacked scores are [[a, b, c], [a′, b′, c′]] and scoreParts names them back', () => {
    const s = scores();
    expect(s.shape).toEqual([2, 3, 3]);
    expect(Array.from(s.dataSync())).toEqual([...S.a, ...S.b, ...S.c, ...S.a2, ...S.b2, ...S.c2]);
    const parts = scoreParts(s);
    for (const k of ['a', 'b', 'c', 'a2', 'b2', 'c2'] as const) expect(Array.from(parts[k].dataSync())).toEqual(S[k]);
  });
  test('L_Dc and L_Dr are the quarter sums of the four softplus terms', () => {
    const [ma, mb, mc, ma2, mb2, mc2] = M;
    const wantDc = 0.25 * (E((i) => sp(-(S.b[i] - ma))) + E((i) => sp(S.a[i] - mb)) + E((i) => sp(-(S.a[i] - mc))) + E((i) => sp(S.c[i] - ma)));
    const wantDr = 0.25 * (E((i) => sp(-(S.c2[i] - ma2))) + E((i) => sp(S.a2[i] - mc2)) + E((i) => sp(-(S.a2[i] - mb2))) + E((i) => sp(S.b2[i] - ma2)));
    const [dc, dr] = criticLosses(scores(), means()).dataSync();
    expect(dc).toBeCloseTo(wantDc, 12);
    expect(dr).toBeCloseTo(wantDr, 12);
  });
  test('without the contrastive pair only the RaGAN real/fake pair remains', () => {
    const [ma, mb, , ma2, , mc2] = M;
    const [dc, dr] = criticLosses(scores(), means(), false).dataSync();
    expect(dc).toBeCloseTo(0.5 * (E((i) => sp(-(S.b[i] - ma))) + E((i) => sp(S.a[i] - mb))), 12);
    expect(dr).toBeCloseTo(0.5 * (E((i) => sp(-(S.c2[i] - ma2))) + E((i) => sp(S.a2[i] - mc2))), 12);
  });
  test('L_adv = ½ [sp(−(a − m_b)) + sp(−(a′ − m_c′))]', () => {
    const want = 0.5 * (E((i) => sp(-(S.a[i] - M[1]))) + E((i) => sp(-(S.a2[i] - M[5]))));
    expect(generatorLoss(tensor([S.a, S.a2], undefined, { dtype: 'f64' }), means()).itemSync()).toBeCloseTo(want, 12);
  });
  test('critic and generator losses have finite-difference gradients w.r.t. the scores', () => {
    fc.assert(fc.property(fc.array(fc.double({ min: -3, max: 3, noNaN: true }), { minLength: 18, maxLength: 18 }), fc.boolean(), (v, contrastive) => {
      const s = tensor(v, [2, 3, 3], { dtype: 'f64' });
      const dc = gradcheck((x) => slice(criticLosses(x, means(), contrastive), 0, 0, 1), [s]);
      const dr = gradcheck((x) => slice(criticLosses(x, means(), contrastive), 0, 1, 2), [s]);
      const gen = gradcheck((x) => generatorLoss(x, means()), [tensor(v.slice(0, 6), [2, 3], { dtype: 'f64' })]);
      expect(dc.ok, dc.report).toBe(true);
      expect(dr.ok, dr.report).toBe(true);
      expect(gen.ok, gen.report).toBe(true);
    }), { numRuns: 20 });
  });
  test('running means start at the batch means and then blend with momentum μ', () => {
    const rm = new RunningMeans(0.9);
    rm.update(scores());
    const first = [...rm.value!.dataSync()];
    expect(first.map((x) => +x.toFixed(12))).toEqual([S.a, S.b, S.c, S.a2, S.b2, S.c2].map((x) => +meanOf(x).toFixed(12)));
    rm.update(scores().add(1));
    [...rm.value!.dataSync()].forEach((v, i) => expect(v).toBeCloseTo(first[i] + 0.1, 12));
    rm.dispose();
  });
  test('critic accuracy counts b > a and c′ > a′', () => {
    // b > a: [T, T, F] → 2/3; c' > a': [T, F, T] → 2/3
    expect(criticAccuracy(scores()).itemSync()).toBeCloseTo(2 / 3, 12);
  });
});
