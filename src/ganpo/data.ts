// Preference data as model input: tokenization, truncation, padding, the three masks, seeded
// shuffling and batching, and the held-out split.

import type { Tokenizer } from '../nn/tokenizer.js';
import { Generator, uniformAt } from '../tensor/random/philox.js';
import { recordToText, type PreferenceRecord } from './jsonl.js';

export interface TokenizeOptions {
  /** Longest prompt + response, in tokens (default 64). */
  maxLength: number;
  /** Longest prompt, in tokens (default maxLength / 2). */
  maxPromptLength: number;
  /**
   * Which end of an over-long prompt is kept: 'keep_end' (default, as TRL: the tokens next to the
   * response) or 'keep_start'. Responses always keep their start.
   */
  truncationMode: 'keep_end' | 'keep_start';
  /** Append the end-of-text token to responses (default true), so the model learns to stop. */
  appendEot: boolean;
}

export const DEFAULT_TOKENIZE: TokenizeOptions = { maxLength: 64, maxPromptLength: 32, truncationMode: 'keep_end', appendEot: true };

export interface TokenizedPair {
  /** Index of the record in its source. */
  index: number;
  prompt: number[];
  chosen: number[];
  rejected: number[];
}

export interface TokenizeReport {
  pairs: TokenizedPair[];
  /** Records whose prompt was shortened. */
  promptsTruncated: number;
  /** Records with a response shortened to fit maxLength. */
  responsesTruncated: number;
  /** Records dropped because no response token fit. */
  dropped: number;
}

/** Tokenizes and truncates records; fails when nothing survives. */
export function tokenizePairs(records: readonly PreferenceRecord[], tok: Tokenizer, opts: Partial<TokenizeOptions> = {}): TokenizeReport {
  const o = { ...DEFAULT_TOKENIZE, ...opts };
  if (opts.maxLength !== undefined && opts.maxPromptLength === undefined) o.maxPromptLength = Math.floor(o.maxLength / 2);
  if (!(Number.isInteger(o.maxLength) && o.maxLength >= 2)) throw new Error(`maxLength must be an integer >= 2, got ${o.maxLength}`);
  if (!(Number.isInteger(o.maxPromptLength) && o.maxPromptLength >= 1 && o.maxPromptLength < o.maxLength)) {
    throw new Error(`maxPromptLength must be an integer in [1, maxLength), got ${o.maxPromptLength}`);
  }
  const report: TokenizeReport = { pairs: [], promptsTruncated: 0, responsesTruncated: 0, dropped: 0 };
  records.forEach((rec, index) => {
    const text = recordToText(rec);
    let prompt = tok.encode(text.prompt);
    if (prompt.length > o.maxPromptLength) {
      prompt = o.truncationMode === 'keep_end' ? prompt.slice(prompt.length - o.maxPromptLength) : prompt.slice(0, o.maxPromptLength);
      report.promptsTruncated++;
    }
    const room = o.maxLength - prompt.length;
    const enc = (s: string): number[] => tok.encode(s, { appendEot: o.appendEot });
    let chosen = enc(text.chosen);
    let rejected = enc(text.rejected);
    if (chosen.length > room || rejected.length > room) report.responsesTruncated++;
    chosen = chosen.slice(0, room);
    rejected = rejected.slice(0, room);
    if (chosen.length === 0 || rejected.length === 0) {
      report.dropped++;
      return;
    }
    report.pairs.push({ index, prompt, chosen, rejected });
  });
  if (report.pairs.length === 0) {
    throw new Error(`no preference pair survives tokenization (${records.length} records, ${report.dropped} dropped: every response was truncated away; raise maxLength or lower maxPromptLength)`);
  }
  return report;
}

/**
 * A padded batch of B pairs as 2B sequences, chosen rows first (0..B−1) then rejected rows.
 * All arrays are row-major [2B, T].
 */
export interface PairBatch {
  pairs: number;
  length: number;
  ids: Int32Array;
  /** 1 for real tokens (prompt and response), 0 for padding. */
  attentionMask: Float32Array;
  /** 1 for response tokens (the ones whose log-prob counts). */
  responseMask: Float32Array;
  /** targets[r, t] = ids[r, t+1] when token t+1 is a response token, else −1 (ignored). */
  targets: Int32Array;
  /** Response tokens per row, [2B]. */
  responseLengths: Float32Array;
  /** Real tokens per row, [2B]. */
  tokenCounts: Float32Array;
}

/** Pads pairs into one batch (right padding with padId); T is the longest sequence in the batch (at least minLength). */
export function collatePairs(pairs: readonly TokenizedPair[], padId: number, minLength = 0): PairBatch {
  const B = pairs.length;
  const rows = [...pairs.map((p) => [p.prompt, p.chosen] as const), ...pairs.map((p) => [p.prompt, p.rejected] as const)];
  const T = Math.max(minLength, ...rows.map(([p, r]) => p.length + r.length));
  const n = 2 * B * T;
  const batch: PairBatch = {
    pairs: B,
    length: T,
    ids: new Int32Array(n).fill(padId),
    attentionMask: new Float32Array(n),
    responseMask: new Float32Array(n),
    targets: new Int32Array(n).fill(-1),
    responseLengths: new Float32Array(2 * B),
    tokenCounts: new Float32Array(2 * B),
  };
  rows.forEach(([prompt, resp], r) => {
    const o = r * T;
    prompt.forEach((id, t) => {
      batch.ids[o + t] = id;
      batch.attentionMask[o + t] = 1;
    });
    resp.forEach((id, j) => {
      const t = prompt.length + j;
      batch.ids[o + t] = id;
      batch.attentionMask[o + t] = 1;
      batch.responseMask[o + t] = 1;
      // The logit at position t−1 predicts token t.
      batch.targets[o + t - 1] = id;
    });
    batch.responseLengths[r] = resp.length;
    batch.tokenCounts[r] = prompt.length + resp.length;
  });
  return batch;
}

/** A seeded permutation of 0..n−1 (Fisher–Yates on the counter-based generator). */
export function seededPermutation(n: number, gen: Generator): number[] {
  const perm = Array.from({ length: n }, (_, i) => i);
  const offset = gen.next(n);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(uniformAt(gen.key, offset, i) * (i + 1));
    [perm[i], perm[j]] = [perm[j], perm[i]];
  }
  return perm;
}

/** Splits pairs into train and held-out parts with a seeded shuffle; heldOut is a fraction or a count. */
export function splitHeldOut<T>(items: readonly T[], heldOut: number, seed: number): { train: T[]; eval: T[] } {
  const k = heldOut < 1 ? Math.round(items.length * heldOut) : Math.floor(heldOut);
  if (k < 0 || k >= items.length) throw new Error(`held-out size ${heldOut} leaves no training data (${items.length} items)`);
  const perm = seededPermutation(items.length, new Generator(seed));
  return { eval: perm.slice(0, k).map((i) => items[i]), train: perm.slice(k).map((i) => items[i]) };
}

/**
 * Epoch-based batch order: each epoch is a fresh seeded permutation. The position (epoch, step)
 * is all the state needed to resume exactly.
 */
export class BatchSampler {
  private perm: number[] = [];
  private permEpoch = -1;

  constructor(readonly size: number, readonly batchSize: number, readonly seed: number, readonly dropLast = true) {
    if (size <= 0) throw new Error('BatchSampler: empty dataset');
    if (!(Number.isInteger(batchSize) && batchSize >= 1)) throw new Error(`BatchSampler: batch size must be a positive integer, got ${batchSize}`);
    if (dropLast && batchSize > size) throw new Error(`BatchSampler: batch size ${batchSize} exceeds the dataset size ${size}`);
  }

  get batchesPerEpoch(): number {
    return this.dropLast ? Math.floor(this.size / this.batchSize) : Math.ceil(this.size / this.batchSize);
  }

  /** Indices of the b-th batch overall (epochs continue one after another). */
  batch(b: number): number[] {
    const epoch = Math.floor(b / this.batchesPerEpoch);
    const within = b % this.batchesPerEpoch;
    if (epoch !== this.permEpoch) {
      // Seed per epoch so any batch can be computed without replaying earlier epochs.
      this.perm = seededPermutation(this.size, new Generator((BigInt(this.seed) * 1000003n + BigInt(epoch)) & 0xffffffffffffffffn));
      this.permEpoch = epoch;
    }
    return this.perm.slice(within * this.batchSize, Math.min((within + 1) * this.batchSize, this.size));
  }
}
