// Batched autoregressive sampling from a GPT: greedy or temperature / top-k / top-p sampling,
// seeded with the counter-based multinomial, with a KV cache, stopping per row at end-of-text.
//
// Prompts of unequal length are right-aligned: shorter ones are left-padded, the padding is
// masked out of attention, and each row's position ids start at 0 at its first real token, so a
// row produces the same tokens as it would alone (up to float rounding).

import { noGrad } from '../tensor/autograd.js';
import { Generator, multinomial } from '../tensor/random/philox.js';
import { tensor } from '../tensor/ops/creation.js';
import { tidy } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import type { GPT } from './gpt.js';

export interface GenerateOptions {
  maxNewTokens: number;
  /** 0 means greedy (argmax). Default 1. */
  temperature?: number;
  /** Keep only the k most likely tokens (0 or undefined: all). */
  topK?: number;
  /** Keep the smallest set of most likely tokens whose probability reaches p (1 or undefined: all). */
  topP?: number;
  /** A row stops after sampling this token (GPT-2's <|endoftext|> is 50256). */
  eosTokenId?: number;
  /** Include the stop token in the returned row (default false). */
  includeStopToken?: boolean;
  /** Id used for left padding (any valid id; padded positions are masked out). Default eosTokenId ?? 0. */
  padTokenId?: number;
  /** Sampling generator (default: a fresh Generator(0), so unseeded calls are still reproducible). */
  generator?: Generator;
  /** Use the KV cache (default true); false recomputes the whole sequence each step. */
  useCache?: boolean;
}

/**
 * Samples continuations for each prompt; returns only the new tokens per row. Prompts must be
 * non-empty; prompt + maxNewTokens must fit in the model's context length. The model runs in
 * eval mode (dropout off) and its mode is restored afterwards.
 */
export async function generate(model: GPT, promptIds: readonly (readonly number[])[], opts: GenerateOptions): Promise<number[][]> {
  const B = promptIds.length;
  if (B === 0) return [];
  const V = model.config.vocabSize;
  for (const [r, p] of promptIds.entries()) {
    if (p.length === 0) throw new Error(`generate: prompt ${r} is empty (start it with a token such as <|endoftext|>)`);
    for (const id of p) if (!Number.isInteger(id) || id < 0 || id >= V) throw new Error(`generate: prompt ${r} has token ${id} outside [0, ${V})`);
  }
  const L = Math.max(...promptIds.map((p) => p.length));
  if (L + opts.maxNewTokens > model.config.contextLength) {
    throw new Error(`generate: longest prompt ${L} + maxNewTokens ${opts.maxNewTokens} exceeds the context length ${model.config.contextLength}`);
  }
  const gen = opts.generator ?? new Generator(0);
  const pad = opts.padTokenId ?? opts.eosTokenId ?? 0;
  const backend = model.parameters()[0].backend;
  const i32 = { dtype: 'i32' as const, backend };
  const padLen = promptIds.map((p) => L - p.length);
  // The sequences so far, right-aligned; the mask and positions follow from padLen.
  const seqs = promptIds.map((p, r) => [...new Array<number>(padLen[r]).fill(pad), ...p]);
  const maskRows = (from: number, to: number) => padLen.map((n) => Array.from({ length: to - from }, (_, j) => (from + j < n ? 0 : 1)));
  const posRows = (from: number, to: number) => padLen.map((n) => Array.from({ length: to - from }, (_, j) => Math.max(0, from + j - n)));

  const wasTraining = model.training;
  model.eval();
  const useCache = opts.useCache ?? true;
  const cache = useCache ? model.newCache() : null;
  const out: number[][] = promptIds.map(() => []);
  const done = new Array<boolean>(B).fill(false);
  try {
    for (let step = 0; step < opts.maxNewTokens && done.some((d) => !d); step++) {
      const len = seqs[0].length;
      // With a cache only the new positions run (the whole prompt on the first step).
      const from = cache && step > 0 ? len - 1 : 0;
      const last = tidy(() =>
        noGrad(() => {
          const ids = tensor(seqs.map((s) => s.slice(from)), [B, len - from], i32);
          const attentionMask = tensor(maskRows(from, len), [B, len - from], i32);
          const positionIds = tensor(posRows(from, len), [B, len - from], i32);
          return model.forward(ids, { attentionMask, positionIds, kvCache: cache ?? undefined, lastOnly: true }).logits;
        }),
      );
      const logits = await readAndDispose(last);
      const next = pick(logits, B, V, opts, gen);
      for (let r = 0; r < B; r++) {
        seqs[r].push(next[r]);
        if (done[r]) continue;
        if (next[r] === opts.eosTokenId) {
          done[r] = true;
          if (opts.includeStopToken) out[r].push(next[r]);
        } else {
          out[r].push(next[r]);
        }
      }
    }
  } finally {
    cache?.dispose();
    model.train(wasTraining);
  }
  return out;
}

async function readAndDispose(t: Tensor): Promise<Float64Array> {
  try {
    return Float64Array.from(await t.data());
  } finally {
    t.dispose();
  }
}

/**
 * The next token per row from last-position logits [B, V], on the CPU. The generator advances by
 * B counters per step whatever the rows do, so a run is reproducible from its seed alone.
 */
function pick(logits: Float64Array, B: number, V: number, opts: GenerateOptions, gen: Generator): number[] {
  const temperature = opts.temperature ?? 1;
  const offset = gen.next(B);
  if (temperature === 0) return Array.from({ length: B }, (_, r) => argmax(logits.subarray(r * V, (r + 1) * V)));
  const probs = new Float64Array(B * V);
  for (let r = 0; r < B; r++) filteredProbs(logits.subarray(r * V, (r + 1) * V), temperature, opts.topK ?? 0, opts.topP ?? 1, probs.subarray(r * V, (r + 1) * V));
  return Array.from(multinomial(probs, B, V, gen.key, offset));
}

function argmax(row: Float64Array): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
}

/** softmax(row / temperature) restricted to the top-k and then the top-p nucleus (unnormalized is fine for multinomial). */
export function filteredProbs(row: Float64Array, temperature: number, topK: number, topP: number, out: Float64Array): void {
  const V = row.length;
  if ((topK <= 0 || topK >= V) && topP >= 1) {
    // Plain temperature sampling needs no sort: that is most calls, and sorting V per row per step dominates.
    let maxLogit = -Infinity;
    for (let i = 0; i < V; i++) if (row[i] > maxLogit) maxLogit = row[i];
    for (let i = 0; i < V; i++) out[i] = Math.exp((row[i] - maxLogit) / temperature);
    return;
  }
  const order = Array.from({ length: V }, (_, i) => i).sort((a, b) => row[b] - row[a] || a - b);
  const maxLogit = row[order[0]];
  for (let i = 0; i < V; i++) out[i] = Math.exp((row[i] - maxLogit) / temperature);
  const k = topK > 0 ? Math.min(topK, V) : V;
  // Walk tokens by decreasing probability; keep the first k, stopping once the kept mass reaches
  // topP (the token that crosses it is kept, so at least one token always survives).
  let keep = 0;
  let mass = 0;
  const kTotal = order.slice(0, k).reduce((s, i) => s + out[i], 0);
  while (keep < k) {
    mass += out[order[keep]];
    keep++;
    if (topP < 1 && mass / kTotal >= topP) break;
  }
  for (let j = keep; j < V; j++) out[order[j]] = 0;
}
