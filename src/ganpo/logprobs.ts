// Sequence log-probabilities of the response tokens, through the fused gatherLogProbs kernel
// (log-softmax and the target's entry in one pass, never materializing the softmax).

import type { Tensor } from '../tensor/index.js';
import { div, gatherLogProbs, matmul, sum, tensor } from '../tensor/index.js';
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

/** Flat positions r·T + t that predict a response token (targets ≥ 0), in row order. */
export function responseRows(batch: PairBatch): Int32Array {
  const rows: number[] = [];
  batch.targets.forEach((t, i) => t >= 0 && rows.push(i));
  return Int32Array.from(rows);
}

/**
 * Response log-probs from logits computed only at responseRows(batch) ([n, V], see GPT's
 * headRows): the same values as responseLogProbs at a fraction of the LM-head cost.
 */
export function responseLogProbsAtRows(logits: Tensor, batch: PairBatch, rows: Int32Array): ResponseLogProbs {
  const seqs = 2 * batch.pairs;
  const opts = { backend: logits.backend };
  const targets = tensor(Array.from(rows, (i) => batch.targets[i]), [rows.length], { ...opts, dtype: 'i32' });
  const perToken = gatherLogProbs(logits, targets);
  // Sum per sequence with a [2B, n] membership matrix (a matmul keeps the gradient simple).
  const member = new Float32Array(seqs * rows.length);
  rows.forEach((flat, j) => (member[Math.floor(flat / batch.length) * rows.length + j] = 1));
  const total = matmul(tensor(member, [seqs, rows.length], { ...opts, dtype: logits.dtype }), perToken);
  const lengths = tensor(batch.responseLengths, [seqs], { ...opts, dtype: logits.dtype });
  return { sum: total, mean: div(total, lengths), lengths };
}
