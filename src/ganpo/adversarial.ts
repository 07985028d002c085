// The GANPO adversarial losses (GANPO.md §5): relativistic-average "quad" critic losses with six
// running means of the critic scores, and the generator (policy) loss. Scores stay one stacked
// tensor [critic, input, B]; every loss, the running-mean update and the accuracy are one fused
// kernel each (adversarialKernels.ts), where a term-by-term composition cost dozens of dispatches.

import type { Tensor } from '../tensor/index.js';
import { concat, keep, noGrad, reshape, slice, tensor, zeros } from '../tensor/index.js';
import { accuracyKernel, fusedCriticLosses, fusedGeneratorLoss, runningMeansKernel } from './adversarialKernels.js';

export { TERMS } from './adversarialKernels.js';

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
  private readonly blend: ReturnType<typeof runningMeansKernel>;
  // The first update: μ = 0 against zeros gives the batch means exactly.
  private readonly start = runningMeansKernel(0);

  constructor(readonly momentum = 0.9) {
    if (!(momentum >= 0 && momentum < 1)) throw new Error(`running means: momentum must be in [0, 1), got ${momentum}`);
    this.blend = runningMeansKernel(momentum);
  }

  /** Blends in the batch means of scores [2, 3, B] (one kernel; no gradient flows into the means). */
  update(scores: StackedScores): void {
    noGrad(() => {
      const next = this.value
        ? this.blend(scores, this.value)[0]
        : this.start(scores, zeros([6], { backend: scores.backend, dtype: scores.dtype }))[0];
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
 * Critic losses [L_Dc, L_Dr] for stacked scores computed on detached states, with means [6]. Dc
 * learns ref-chosen ≻ policy-chosen ≻ ref-rejected; Dr learns ref-rejected ≻ policy-rejected ≻
 * ref-chosen. Each is the mean of its four terms (TERMS), or without the contrastive pair of the
 * first two. One kernel forward, one backward (gradients for the scores and the means).
 */
export function criticLosses(scores: StackedScores, means: Tensor, contrastive = true): Tensor {
  return (contrastive ? fusedCriticLosses.contrastive : fusedCriticLosses.pair)(scores, means);
}

/**
 * L_adv = ½ [ sp(−(Dc(Hθw) − m_b)) + sp(−(Dr(Hθl) − m_c')) ] from eval-mode scores [2, B] (Dc's on
 * the policy's chosen rows, Dr's on its rejected rows): the mean over both rows of sp(m − score).
 */
export function generatorLoss(scores: Tensor, means: Tensor): Tensor {
  return fusedGeneratorLoss(scores, means);
}

/**
 * Critic accuracy: the fraction of comparisons each critic orders as it is trained to — Dc puts
 * ref-chosen above policy-chosen (b > a) and Dr ref-rejected above policy-rejected (c' > a') —
 * averaged over the two critics.
 */
export function criticAccuracy(scores: StackedScores): Tensor {
  return accuracyKernel(scores)[0];
}
