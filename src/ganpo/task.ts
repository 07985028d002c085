// The embedded default task (the DPO paper's controlled-sentiment setting, in miniature): prompts
// are the openings of held-out corpus sentences; preference pairs are the most and least positive
// of several base-model continuations under the AFINN oracle.

import { loadCorpus, splitSentences } from '../nn/corpus.js';
import type { GPT } from '../nn/gpt.js';
import type { Tokenizer } from '../nn/tokenizer.js';
import { Generator, seedToKey, uniformAt } from '../tensor/random/philox.js';
import { seededPermutation, type TokenizedPair } from './data.js';
import { continuationText, sampleContinuations } from './evaluate.js';
import { sentiment } from './oracle.js';
import type { PreferenceRecord } from './jsonl.js';

export interface Prompt {
  text: string;
  ids: number[];
}

/**
 * Openings of validation-split sentences of at least minWords words: their first `words` words.
 * Deterministic for a seed; distinct texts only.
 */
export function sentencePrompts(tok: Tokenizer, count: number, words: number, seed: number, minWords = 12): Prompt[] {
  const seen = new Set<string>();
  const pool: string[] = [];
  for (const para of loadCorpus().validation) {
    for (const s of splitSentences(para)) {
      const w = s.split(' ');
      if (w.length < minWords || !/^[A-Z]/.test(s)) continue;
      const opening = w.slice(0, words).join(' ');
      if (!seen.has(opening)) {
        seen.add(opening);
        pool.push(opening);
      }
    }
  }
  if (pool.length < count) throw new Error(`only ${pool.length} prompt sentences available, ${count} requested`);
  const perm = seededPermutation(pool.length, new Generator(seed));
  return perm.slice(0, count).map((i) => ({ text: pool[i], ids: tok.encode(pool[i]) }));
}

export interface LabeledPair {
  prompt: Prompt;
  chosen: number[];
  rejected: number[];
  chosenScore: number;
  rejectedScore: number;
  /** True when label noise swapped chosen and rejected. */
  flipped: boolean;
}

export interface PairGenOptions {
  samplesPerPrompt: number;
  maxNewTokens: number;
  temperature: number;
  seed: number;
  onProgress?: (done: number) => void;
}

/** Samples K continuations per prompt and keeps (best, worst) by oracle score, skipping ties. */
export async function makePreferencePairs(model: GPT, tok: Tokenizer, prompts: readonly Prompt[], o: PairGenOptions): Promise<{ pairs: LabeledPair[]; ties: number }> {
  const K = o.samplesPerPrompt;
  const pairs: LabeledPair[] = [];
  let ties = 0;
  const chunk = 32;
  for (let s = 0; s < prompts.length; s += chunk) {
    const ps = prompts.slice(s, s + chunk);
    const flat = ps.flatMap((p) => Array.from({ length: K }, () => p.ids));
    const samples = await sampleContinuations(model, tok, flat, { temperature: o.temperature, maxNewTokens: o.maxNewTokens, seed: o.seed * 1000003 + s });
    ps.forEach((p, i) => {
      const cands = samples.slice(i * K, (i + 1) * K).filter((c) => continuationText(tok, c).trim().length > 0);
      const scored = cands.map((c) => ({ c, r: sentiment(continuationText(tok, c)).score }));
      if (scored.length < 2) return void ties++;
      scored.sort((a, b) => b.r - a.r);
      const best = scored[0];
      const worst = scored[scored.length - 1];
      if (best.r === worst.r) return void ties++;
      pairs.push({ prompt: p, chosen: best.c, rejected: worst.c, chosenScore: best.r, rejectedScore: worst.r, flipped: false });
    });
    o.onProgress?.(Math.min(prompts.length, s + chunk));
  }
  return { pairs, ties };
}

/** Swaps chosen and rejected in a seeded fraction of pairs (the label-noise sweep). */
export function flipLabels(pairs: readonly LabeledPair[], fraction: number, seed: number): LabeledPair[] {
  const key = seedToKey(seed);
  return pairs.map((p, i) => (uniformAt(key, 0, i) < fraction
    ? { ...p, chosen: p.rejected, rejected: p.chosen, chosenScore: p.rejectedScore, rejectedScore: p.chosenScore, flipped: true }
    : p));
}

export function toTokenizedPairs(pairs: readonly LabeledPair[]): TokenizedPair[] {
  return pairs.map((p, index) => ({ index, prompt: p.prompt.ids, chosen: p.chosen, rejected: p.rejected }));
}

/** The pairs as TRL-style records (plain strings), for report/data/pairs.jsonl and `ganpo train`. */
export function toRecords(tok: Tokenizer, pairs: readonly LabeledPair[]): (PreferenceRecord & { chosen_score: number; rejected_score: number })[] {
  return pairs.map((p) => ({
    prompt: p.prompt.text,
    chosen: continuationText(tok, p.chosen),
    rejected: continuationText(tok, p.rejected),
    chosen_score: p.chosenScore,
    rejected_score: p.rejectedScore,
  }));
}
