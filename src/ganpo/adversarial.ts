// The GANPO adversarial losses (GANPO.md §5): relativistic-average "quad" critic losses with six
// running means of the critic scores, and the generator (policy) loss. Scores stay one stacked
// tensor [critic, input, B] and every loss is a few whole-tensor ops: gathering the (score, mean,
// sign) triples of all terms at once costs a handful of dispatches where a term-by-term
// composition cost dozens.

import type { Tensor } from '../tensor/index.js';
import { add, concat, gt, indexSelect, keep, mean, mul, noGrad, reshape, slice, softplus, sub, tensor } from '../tensor/index.js';

/**
 * Critic scores of one step as one tensor [2, 3, B]: critic (Dc, Dr) × input (the critic's own
 * policy half, ref-chosen, ref-rejected). In GANPO.md's letters: [[a, b, c], [a', b', c']].
 */
export type StackedScores = Tensor;

/** The six score vectors of a step by name, [B] each (for reading and tests). */
export interface CriticScores {
  a: Tensor; // Dc(Hθw)
  b: Tensor; // Dc(Hrw)
  c: Tensor; // Dc(Hrl)
  a2: Tensor; // Dr(Hθl)
  b2: Tensor; // Dr(Hrw)
  c2: Tensor; // Dr(Hrl)
}

const NAMES = ['a', 'b', 'c', 'a2', 'b2', 'c2'] as const;

/** The named scores of a stacked [2, 3, B] tensor (copies). */
export function scoreParts(scores: StackedScores): CriticScores {
  const B = scores.shape[2];
  const flat = reshape(scores, [6, B]);
  return Object.fromEntries(NAMES.map((n, i) => [n, reshape(slice(flat, 0, i, i + 1), [B])])) as unknown as CriticScores;
}

/** Named scores stacked into [2, 3, B]. */
export function stackScores(s: CriticScores): StackedScores {
  const B = s.a.shape[0];
  return reshape(concat(NAMES.map((n) => reshape(s[n], [1, B])), 0), [2, 3, B]);
}

export const RUNNING_MEAN_NAMES = ['m_a', 'm_b', 'm_c', "m_a'", "m_b'", "m_c'"] as const;

/**
 * The six running means, kept on the device as one [6] tensor (no readback per step) in the order
 * of the stacked scores (m_a, m_b, m_c, m_a', m_b', m_c'). The first update sets them to the batch
 * means; later ones blend with momentum μ.
 */
export class RunningMeans {
  value: Tensor | null = null;

  constructor(readonly momentum = 0.9) {
    if (!(momentum >= 0 && momentum < 1)) throw new Error(`running means: momentum must be in [0, 1), got ${momentum}`);
  }

  update(scores: StackedScores): void {
    noGrad(() => {
      const batch = reshape(mean(scores, 2), [6]);
      const next = this.value ? add(mul(this.value, this.momentum), mul(batch, 1 - this.momentum)) : batch;
      this.setValue(keep(next));
    });
  }

  private setValue(v: Tensor | null): void {
    this.value?.dispose();
    this.value = v;
  }

  /** The [6] means; an error before the first update. */
  current(): Tensor {
    if (!this.value) throw new Error('running means used before the first critic update');
    return this.value;
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

/**
 * Each critic's loss terms as (input j, mean i, sign σ), the term being batch-mean softplus(σ·(s[k, j]
 * − m[k, i])) with m[k] the critic's three running means. Dc: ref-chosen above m_a, policy below
 * m_b (the RaGAN real/fake pair), policy above m_c, ref-rejected below m_a (the contrastive pair);
 * Dr the same with the roles of the references swapped.
 */
const TERMS: readonly (readonly [number, number, number])[][] = [
  [[1, 0, -1], [0, 1, 1], [0, 2, -1], [2, 0, 1]],
  [[2, 0, -1], [0, 2, 1], [0, 1, -1], [1, 0, 1]],
];

/**
 * Critic losses [L_Dc, L_Dr] for stacked scores computed on detached states, with means [6]. Dc
 * learns ref-chosen ≻ policy-chosen ≻ ref-rejected; Dr learns ref-rejected ≻ policy-rejected ≻
 * ref-chosen. Each is the mean of its four terms (¼ of the sum), or without the contrastive pair
 * of the first two (½ of the sum).
 */
export function criticLosses(scores: StackedScores, means: Tensor, contrastive = true): Tensor {
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

/**
 * L_adv = ½ [ sp(−(Dc(Hθw) − m_b)) + sp(−(Dr(Hθl) − m_c')) ] from eval-mode scores [2, B] (Dc's on
 * the policy's chosen rows, Dr's on its rejected rows): the mean over both rows of sp(m − score).
 */
export function generatorLoss(scores: Tensor, means: Tensor): Tensor {
  const m = reshape(indexSelect(means, 0, tensor([1, 5], [2], { backend: scores.backend, dtype: 'i32' })), [2, 1]);
  return mean(softplus(sub(m, scores)));
}

/**
 * Critic accuracy: the fraction of comparisons each critic orders as it is trained to — Dc puts
 * ref-chosen above policy-chosen (b > a) and Dr ref-rejected above policy-rejected (c' > a') —
 * averaged over the two critics.
 */
export function criticAccuracy(scores: StackedScores): Tensor {
  return noGrad(() => {
    const flat = reshape(scores, [6, scores.shape[2]]);
    const rows = (r: number[]) => indexSelect(flat, 0, tensor(r, [2], { backend: scores.backend, dtype: 'i32' }));
    return mean(gt(rows([1, 5]), rows([0, 3])));
  });
}
