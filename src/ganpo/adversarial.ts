// The GANPO adversarial losses (GANPO.md §5): relativistic-average "quad" critic losses with six
// running means of the critic scores, and the generator (policy) loss.

import type { Tensor } from '../tensor/index.js';
import { add, mean, mul, neg, noGrad, softplus, stack, sub, tensor, keep } from '../tensor/index.js';

/** Critic scores of one step, [B] each: Dc on (policy chosen, ref chosen, ref rejected), Dr likewise. */
export interface CriticScores {
  a: Tensor; // Dc(Hθw)
  b: Tensor; // Dc(Hrw)
  c: Tensor; // Dc(Hrl)
  a2: Tensor; // Dr(Hθl)
  b2: Tensor; // Dr(Hrw)
  c2: Tensor; // Dr(Hrl)
}

export const RUNNING_MEAN_NAMES = ['m_a', 'm_b', 'm_c', "m_a'", "m_b'", "m_c'"] as const;

/**
 * The six running means, kept on the device as one [6] tensor (no readback per step). The first
 * update sets them to the batch means; later ones blend with momentum μ.
 */
export class RunningMeans {
  value: Tensor | null = null;
  /** The six scalars of value, sliced once per update (the critic and generator losses share them). */
  private cached: Tensor[] | null = null;

  constructor(readonly momentum = 0.9) {
    if (!(momentum >= 0 && momentum < 1)) throw new Error(`running means: momentum must be in [0, 1), got ${momentum}`);
  }

  update(s: CriticScores): void {
    noGrad(() => {
      const batch = stack([s.a, s.b, s.c, s.a2, s.b2, s.c2].map((x) => mean(x)));
      const next = this.value ? add(mul(this.value, this.momentum), mul(batch, 1 - this.momentum)) : batch;
      this.setValue(keep(next === batch ? batch : next));
    });
  }

  private setValue(v: Tensor | null): void {
    this.value?.dispose();
    for (const t of this.cached ?? []) t.dispose();
    this.cached = null;
    this.value = v;
  }

  /** The six means as scalars [m_a, m_b, m_c, m_a', m_b', m_c'] (each a [] tensor on the device). */
  parts(): Tensor[] {
    if (!this.value) throw new Error('running means used before the first critic update');
    const v = this.value;
    this.cached ??= noGrad(() => [0, 1, 2, 3, 4, 5].map((i) => keep(v.slice(0, i, i + 1).reshape([]))));
    return this.cached;
  }

  async toArray(): Promise<number[] | null> {
    return this.value ? Array.from(await this.value.data()) : null;
  }

  load(values: readonly number[] | null, like: Tensor): void {
    this.setValue(values ? keep(tensor(values, [6], { backend: like.backend, dtype: like.dtype })) : null);
  }

  dispose(): void {
    this.setValue(null);
  }
}

const sp = (x: Tensor): Tensor => mean(softplus(x));

export interface CriticLosses {
  chosen: Tensor; // L_Dc
  rejected: Tensor; // L_Dr
}

/**
 * Critic losses for scores computed on detached states. Dc learns ref-chosen ≻ policy-chosen ≻
 * ref-rejected; Dr learns ref-rejected ≻ policy-rejected ≻ ref-chosen. Without the contrastive
 * pair, only the RaGAN real/fake pair is kept (½ of 2 terms).
 */
export function criticLosses(s: CriticScores, means: readonly Tensor[], contrastive = true): CriticLosses {
  const [ma, mb, mc, ma2, mb2, mc2] = means;
  const dcPair = [sp(neg(sub(s.b, ma))), sp(sub(s.a, mb))];
  const drPair = [sp(neg(sub(s.c2, ma2))), sp(sub(s.a2, mc2))];
  if (!contrastive) {
    return { chosen: mul(add(dcPair[0], dcPair[1]), 0.5), rejected: mul(add(drPair[0], drPair[1]), 0.5) };
  }
  const dc = [...dcPair, sp(neg(sub(s.a, mc))), sp(sub(s.c, ma))];
  const dr = [...drPair, sp(neg(sub(s.a2, mb2))), sp(sub(s.b2, ma2))];
  const quarterSum = (xs: Tensor[]): Tensor => mul(xs.reduce((p, x) => add(p, x)), 0.25);
  return { chosen: quarterSum(dc), rejected: quarterSum(dr) };
}

/** L_adv = ½ [ sp(−(Dc(Hθw) − m_b)) + sp(−(Dr(Hθl) − m_c')) ], critics frozen and in eval mode. */
export function generatorLoss(aEval: Tensor, a2Eval: Tensor, means: readonly Tensor[]): Tensor {
  const mb = means[1];
  const mc2 = means[5];
  return mul(add(sp(neg(sub(aEval, mb))), sp(neg(sub(a2Eval, mc2)))), 0.5);
}

/**
 * Critic accuracy: the fraction of comparisons each critic orders as it is trained to — Dc puts
 * ref-chosen above policy-chosen (b > a) and Dr ref-rejected above policy-rejected (c' > a').
 */
export function criticAccuracy(s: CriticScores): Tensor {
  return noGrad(() => mul(add(mean(s.b.gt(s.a)), mean(s.c2.gt(s.a2))), 0.5));
}
