// Sequence log-probabilities of the response tokens, through the fused gatherLogProbs kernel
// (log-softmax and the target's entry in one pass, never materializing the softmax).

import type { Tensor } from '../tensor/index.js';
import { div, gatherLogProbs, sum, tensor } from '../tensor/index.js';
import type { PairBatch } from './data.js';

export interface ResponseLogProbs {
  /** Σ over response tokens of log p(token), [2B] (chosen rows first). */
  sum: Tensor;
  /** The same divided by the response length, [2B]. */
  mean: Tensor;
  /** Response lengths as a tensor, [2B]. */
  lengths: Tensor;
}

/** Response log-probs from logits [2B, T, V] of a collated batch. */
export function responseLogProbs(logits: Tensor, batch: PairBatch): ResponseLogProbs {
  const rows = 2 * batch.pairs;
  const opts = { backend: logits.backend };
  const targets = tensor(batch.targets, [rows, batch.length], { ...opts, dtype: 'i32' });
  const perToken = gatherLogProbs(logits, targets);
  const total = sum(perToken, 1);
  const lengths = tensor(batch.responseLengths, [rows], { ...opts, dtype: logits.dtype });
  return { sum: total, mean: div(total, lengths), lengths };
}
