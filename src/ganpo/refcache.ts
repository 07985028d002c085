// The reference model's outputs precomputed once for a dataset and cached on disk: summed
// response log-probs of every pair and, for GANPO, the final hidden states of every sequence.
// The cache is keyed by a fingerprint of the reference weights and the tokenized data, so a
// stale cache (another model, other data, other length) is detected and rebuilt, never reused.

import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import type { GPT } from '../nn/gpt.js';
import { loadCheckpoint, saveCheckpoint } from '../nn/checkpoint.js';
import { cpu, keep, noGrad, tensor, tidy, type Backend, type Tensor } from '../tensor/index.js';
import { collatePairs, type TokenizedPair } from './data.js';
import { responseLogProbs } from './logprobs.js';

export interface ReferenceCache {
  fingerprint: string;
  /** Sequences are stored padded to this length. */
  maxLen: number;
  dModel: number;
  /** [N, 2]: summed response log-probs of (chosen, rejected) for each pair, in dataset order. */
  logps: Float32Array;
  /** [N, 2, maxLen, d] final hidden states (after ln_f), or null when only log-probs are cached. */
  hidden: Float32Array | null;
}

/** sha256 over the reference weights, the token ids of every pair, and what is cached. */
export async function referenceFingerprint(reference: GPT, pairs: readonly TokenizedPair[], withHidden: boolean): Promise<string> {
  const h = createHash('sha256');
  h.update(JSON.stringify({ config: reference.config, withHidden, version: 1 }));
  for (const [name, t] of reference.stateDict()) {
    h.update(name);
    const d = await t.data();
    h.update(new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
  }
  for (const p of pairs) h.update(JSON.stringify([p.prompt, p.chosen, p.rejected]));
  return h.digest('hex');
}

/** Runs the reference once over all pairs (batches padded to the dataset's longest sequence). */
export async function buildReferenceCache(reference: GPT, pairs: readonly TokenizedPair[], padId: number, withHidden: boolean, batchSize = 16): Promise<ReferenceCache> {
  const maxLen = Math.max(...pairs.map((p) => p.prompt.length + Math.max(p.chosen.length, p.rejected.length)));
  const d = reference.config.dModel;
  const N = pairs.length;
  const logps = new Float32Array(N * 2);
  const hidden = withHidden ? new Float32Array(N * 2 * maxLen * d) : null;
  const backend = reference.parameters()[0].backend;
  const wasTraining = reference.training;
  reference.eval();
  try {
    for (let s = 0; s < N; s += batchSize) {
      const chunk = pairs.slice(s, s + batchSize);
      const B = chunk.length;
      // A sentinel pair of the full length makes every batch exactly maxLen wide.
      const batch = collatePairs(chunk, padId, maxLen);
      const out = noGrad(() => tidy(() => {
        const ids = tensor(batch.ids, [2 * B, batch.length], { dtype: 'i32', backend });
        const attn = tensor(batch.attentionMask, [2 * B, batch.length], { backend });
        const r = reference.forward(ids, { attentionMask: attn, returnHidden: withHidden });
        return { lp: keep(responseLogProbs(r.logits, batch).sum), h: r.hidden ? keep(r.hidden) : null };
      }));
      const lp = await out.lp.data();
      for (let i = 0; i < B; i++) {
        logps[2 * (s + i)] = lp[i];
        logps[2 * (s + i) + 1] = lp[B + i];
      }
      if (hidden && out.h) {
        const hd = await out.h.data();
        const row = maxLen * d;
        for (let i = 0; i < B; i++) {
          hidden.set(hd.subarray(i * row, (i + 1) * row), (2 * (s + i)) * row);
          hidden.set(hd.subarray((B + i) * row, (B + i + 1) * row), (2 * (s + i) + 1) * row);
        }
      }
      out.lp.dispose();
      out.h?.dispose();
    }
  } finally {
    reference.train(wasTraining);
  }
  return { fingerprint: '', maxLen, dModel: d, logps, hidden };
}

export interface CacheResult {
  cache: ReferenceCache;
  /** 'reused' (fingerprint matched), 'built' (no cache file), or 'rebuilt' (the file was stale). */
  status: 'reused' | 'built' | 'rebuilt';
}

/** Loads the cache at path when its fingerprint matches; otherwise builds it and writes it atomically. */
export async function loadOrBuildReferenceCache(path: string, reference: GPT, pairs: readonly TokenizedPair[], padId: number, withHidden: boolean): Promise<CacheResult> {
  const fingerprint = await referenceFingerprint(reference, pairs, withHidden);
  let stale = false;
  if (existsSync(path)) {
    const ck = await loadCheckpoint(path);
    const meta = ck.metadata as { fingerprint?: string; maxLen?: number; dModel?: number } | null;
    if (meta?.fingerprint === fingerprint && meta.maxLen !== undefined && meta.dModel !== undefined) {
      const lp = ck.arrays.get('logps');
      const hd = ck.arrays.get('hidden');
      if (lp && (!withHidden || hd)) {
        return {
          status: 'reused',
          cache: { fingerprint, maxLen: meta.maxLen, dModel: meta.dModel, logps: Float32Array.from(lp.data as Float32Array), hidden: hd ? Float32Array.from(hd.data as Float32Array) : null },
        };
      }
    }
    stale = true;
  }
  const cache = { ...(await buildReferenceCache(reference, pairs, padId, withHidden)), fingerprint };
  const tensors = new Map<string, Tensor>([['logps', tensor(cache.logps, [pairs.length, 2], { backend: cpu })]]);
  if (cache.hidden) tensors.set('hidden', tensor(cache.hidden, [pairs.length, 2, cache.maxLen, cache.dModel], { backend: cpu }));
  await saveCheckpoint(path, tensors, { fingerprint, maxLen: cache.maxLen, dModel: cache.dModel });
  for (const t of tensors.values()) t.dispose();
  return { cache, status: stale ? 'rebuilt' : 'built' };
}

/** The cached reference outputs of a batch (pair positions idx, padded to T), as tensors. */
export function cachedReference(cache: ReferenceCache, idx: readonly number[], T: number, backend: Backend): { sum: Tensor; hidden: Tensor | undefined } {
  const B = idx.length;
  const sum = new Float32Array(2 * B);
  idx.forEach((p, i) => {
    sum[i] = cache.logps[2 * p];
    sum[B + i] = cache.logps[2 * p + 1];
  });
  let hidden: Tensor | undefined;
  if (cache.hidden) {
    const d = cache.dModel;
    if (T > cache.maxLen) throw new Error(`reference cache holds ${cache.maxLen} positions, the batch needs ${T}`);
    const out = new Float32Array(2 * B * T * d);
    idx.forEach((p, i) => {
      for (const [side, row] of [[0, i], [1, B + i]] as const) {
        const src = (2 * p + side) * cache.maxLen * d;
        out.set(cache.hidden!.subarray(src, src + T * d), row * T * d);
      }
    });
    hidden = tensor(out, [2 * B, T, d], { backend });
  }
  return { sum: tensor(sum, [2 * B], { backend }), hidden };
}

