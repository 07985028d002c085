// Evaluation of a policy on held-out prompts: sampled continuations scored by the oracle, win
// rate against the base model, Monte Carlo KL from the reference, length and diversity, and the
// latent drift of the final hidden states.

import type { GPT } from '../nn/gpt.js';
import type { Tokenizer } from '../nn/tokenizer.js';
import { generate } from '../nn/generate.js';
import { Generator } from '../tensor/random/philox.js';
import { div, gatherLogProbs, keep, noGrad, sqrt, square, sub, sum, tensor, tidy } from '../tensor/index.js';
import { sentiment } from './oracle.js';

export interface SampleOptions {
  temperature: number;
  maxNewTokens: number;
  seed: number;
  /** Prompts per generation batch. */
  batchSize?: number;
  topK?: number;
}

/** Samples one continuation per prompt (token ids, the end-of-text token included when sampled). */
export async function sampleContinuations(model: GPT, tok: Tokenizer, prompts: readonly number[][], o: SampleOptions): Promise<number[][]> {
  const gen = new Generator(o.seed);
  const bs = o.batchSize ?? 64;
  const out: number[][] = [];
  for (let s = 0; s < prompts.length; s += bs) {
    out.push(...(await generate(model, prompts.slice(s, s + bs), {
      maxNewTokens: o.maxNewTokens, temperature: o.temperature, topK: o.topK, eosTokenId: tok.eotId, includeStopToken: true, generator: gen,
    })));
  }
  return out;
}

/** Continuation text without a trailing end-of-text token. */
export function continuationText(tok: Tokenizer, ids: readonly number[]): string {
  return tok.decode(ids.at(-1) === tok.eotId ? ids.slice(0, -1) : ids);
}

const WORDS = /[A-Za-z']+|[0-9]+|[^\sA-Za-z0-9']/g;

export interface TextStats {
  /** Mean continuation length in tokens. */
  length: number;
  /** Distinct n-grams / total n-grams over all continuations (words; Li et al. 2016). */
  distinct1: number;
  distinct2: number;
  /** Mean fraction of a continuation's word 3-grams that occur more than once in it (loops show up). */
  repetition: number;
}

export function textStats(texts: readonly string[], lengths: readonly number[]): TextStats {
  const grams = (n: number): { unique: number; total: number } => {
    const set = new Set<string>();
    let total = 0;
    for (const t of texts) {
      const w = t.toLowerCase().match(WORDS) ?? [];
      for (let i = 0; i + n <= w.length; i++) {
        set.add(w.slice(i, i + n).join(' '));
        total++;
      }
    }
    return { unique: set.size, total };
  };
  const d1 = grams(1);
  const d2 = grams(2);
  const rep = texts.map((t) => {
    const w = t.toLowerCase().match(WORDS) ?? [];
    const counts = new Map<string, number>();
    for (let i = 0; i + 3 <= w.length; i++) {
      const g = w.slice(i, i + 3).join(' ');
      counts.set(g, (counts.get(g) ?? 0) + 1);
    }
    const total = Math.max(0, w.length - 2);
    let repeated = 0;
    for (const c of counts.values()) if (c > 1) repeated += c;
    return total > 0 ? repeated / total : 0;
  });
  const mean = (xs: readonly number[]): number => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);
  return {
    length: mean(lengths),
    distinct1: d1.total ? d1.unique / d1.total : 0,
    distinct2: d2.total ? d2.unique / d2.total : 0,
    repetition: mean(rep),
  };
}

/** Oracle rewards (AFINN sentiment per word) of continuations. */
export function rewards(tok: Tokenizer, samples: readonly number[][]): number[] {
  return samples.map((s) => sentiment(continuationText(tok, s)).score);
}

/** Fraction of prompts where the policy's reward beats the base's (ties count half). */
export function winRate(policy: readonly number[], base: readonly number[]): number {
  let w = 0;
  policy.forEach((r, i) => (w += r > base[i] ? 1 : r === base[i] ? 0.5 : 0));
  return policy.length ? w / policy.length : 0;
}

/** log p(continuation | prompt) summed over continuation tokens, per row, for a model. */
export async function sequenceLogProbs(model: GPT, prompts: readonly number[][], conts: readonly number[][], padId: number, batchSize = 32): Promise<number[]> {
  const out: number[] = [];
  const backend = model.parameters()[0].backend;
  const wasTraining = model.training;
  model.eval();
  try {
    for (let s = 0; s < prompts.length; s += batchSize) {
      const P = prompts.slice(s, s + batchSize);
      const C = conts.slice(s, s + batchSize);
      const T = Math.max(...P.map((p, i) => p.length + C[i].length));
      const ids = new Int32Array(P.length * T).fill(padId);
      const tg = new Int32Array(P.length * T).fill(-1);
      const mask = new Float32Array(P.length * T);
      P.forEach((p, r) => {
        const row = [...p, ...C[r]];
        row.forEach((id, t) => {
          ids[r * T + t] = id;
          mask[r * T + t] = 1;
          if (t >= p.length) tg[r * T + t - 1] = id;
        });
      });
      const lp = noGrad(() => tidy(() => {
        const idsT = tensor(ids, [P.length, T], { dtype: 'i32', backend });
        const logits = model.forward(idsT, { attentionMask: tensor(mask, [P.length, T], { backend }) }).logits;
        return keep(sum(gatherLogProbs(logits, tensor(tg, [P.length, T], { dtype: 'i32', backend })), 1));
      }));
      out.push(...Array.from(await lp.data()));
      lp.dispose();
    }
  } finally {
    model.train(wasTraining);
  }
  return out;
}

/**
 * Monte Carlo KL(π ‖ π_ref) per continuation: the mean over the policy's own temperature-1 samples
 * of log π(y|x) − log π_ref(y|x).
 */
export async function klFromReference(policy: GPT, ref: GPT, prompts: readonly number[][], samples: readonly number[][], padId: number): Promise<number> {
  const lp = await sequenceLogProbs(policy, prompts, samples, padId);
  const lr = await sequenceLogProbs(ref, prompts, samples, padId);
  return lp.reduce((a, v, i) => a + v - lr[i], 0) / Math.max(1, lp.length);
}

/**
 * Latent drift: mean over positions of ‖h_π − h_ref‖ / mean ‖h_ref‖, on the final hidden states
 * (after ln_f) of held-out text windows [N, T].
 */
export async function latentDrift(policy: GPT, ref: GPT, windows: Int32Array, rows: number, T: number): Promise<number> {
  const backend = policy.parameters()[0].backend;
  const modes = [policy.training, ref.training];
  policy.eval();
  ref.eval();
  try {
    const d = noGrad(() => tidy(() => {
      const ids = tensor(windows, [rows, T], { dtype: 'i32', backend });
      const hp = policy.forward(ids, { returnHidden: true }).hidden!;
      const hr = ref.forward(ids, { returnHidden: true }).hidden!;
      return keep(div(sum(sqrt(sum(square(sub(hp, hr)), 2))), sum(sqrt(sum(square(hr), 2)))));
    }));
    const v = await d.item();
    d.dispose();
    return v;
  } finally {
    policy.train(modes[0]);
    ref.train(modes[1]);
  }
}
