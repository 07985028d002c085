import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { loadCorpus, normalizeWhitespace, splitSentences, VALIDATION_EVERY } from '../../src/nn/corpus.js';
import { Tokenizer } from '../../src/nn/tokenizer.js';

const corpus = loadCorpus();
const chars = (ps: string[]) => ps.reduce((n, p) => n + p.length, 0);

describe('loadCorpus', () => {
  it('holds several million characters of normalized English paragraphs', () => {
    const total = chars(corpus.train) + chars(corpus.validation);
    console.log(
      `corpus: ${corpus.train.length} train / ${corpus.validation.length} validation paragraphs, ` +
        `${chars(corpus.train)} / ${chars(corpus.validation)} chars (${total} total)`,
    );
    expect(total).toBeGreaterThan(10_000_000);
    for (const p of [...corpus.train, ...corpus.validation]) {
      expect(p.length).toBeGreaterThan(0);
      expect(p).toBe(normalizeWhitespace(p));
    }
    expect(corpus.train.some((p) => p.startsWith('Call me Ishmael.'))).toBe(true);
  });

  it('the split is deterministic, disjoint, and holds out one paragraph in VALIDATION_EVERY', () => {
    const again = loadCorpus();
    expect(again).toEqual(corpus);
    const train = new Set(corpus.train);
    expect(train.size).toBe(corpus.train.length);
    for (const p of corpus.validation) expect(train.has(p)).toBe(false);
    const n = corpus.train.length + corpus.validation.length;
    expect(corpus.validation.length).toBe(Math.floor(n / VALIDATION_EVERY));
  });

  it('returns fresh arrays, so a caller cannot corrupt later loads', () => {
    const a = loadCorpus();
    a.train.length = 0;
    expect(loadCorpus().train.length).toBe(corpus.train.length);
  });

  it('a 4096-token compact vocabulary encodes the whole corpus losslessly', () => {
    let t0 = performance.now();
    const tok = Tokenizer.buildCompact(corpus.train, 4096);
    const buildMs = performance.now() - t0;
    t0 = performance.now();
    let compactTokens = 0;
    const all = [...corpus.train, ...corpus.validation];
    const encoded = all.map((p) => tok.encode(p));
    for (const ids of encoded) compactTokens += ids.length;
    const encodeMs = performance.now() - t0;
    const gpt2 = Tokenizer.gpt2();
    t0 = performance.now();
    let gpt2Tokens = 0;
    for (const p of all) gpt2Tokens += gpt2.encode(p).length;
    const gpt2Ms = performance.now() - t0;
    console.log(
      `compact 4096 built from train in ${buildMs.toFixed(0)} ms; whole corpus encodes to ` +
        `${compactTokens} compact tokens in ${encodeMs.toFixed(0)} ms; ${gpt2Tokens} GPT-2 tokens in ${gpt2Ms.toFixed(0)} ms`,
    );
    for (let i = 0; i < all.length; i += 97) expect(tok.decode(encoded[i])).toBe(all[i]);
    // Rare words fall back to one id per byte, so 4096 ids cost about 1.6x GPT-2's length here;
    // a jump in this ratio means the vocabulary choice or the fallback broke.
    expect(compactTokens / gpt2Tokens).toBeLessThan(1.8);
  });
});

describe('splitSentences', () => {
  it('splits at sentence ends but not after abbreviations or initials', () => {
    expect(splitSentences('Mr. Smith went to Washington.  He met Gen. Grant! Did J. Q. Adams see? "Yes." (Fine.) 1790 was a year.')).toEqual([
      'Mr. Smith went to Washington.',
      'He met Gen. Grant!',
      'Did J. Q. Adams see?',
      '"Yes."',
      '(Fine.)',
      '1790 was a year.',
    ]);
    expect(splitSentences('The U.S. Government is strong. It grows.')).toEqual(['The U.S. Government is strong.', 'It grows.']);
    expect(splitSentences('  \n ')).toEqual([]);
  });

  it('sentences joined by single spaces give the whitespace-normalized text', () => {
    const piece = fc.constantFrom('Mr.', 'word', 'The', 'A.', '.', '!', '?', '"', '”', ')', '(', ' ', '\n', '  ', 'x.', '1', 'É');
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 30 }).map((a) => a.join('')), (text) => {
        const sentences = splitSentences(text);
        expect(sentences.join(' ')).toBe(normalizeWhitespace(text));
        for (const s of sentences) expect(s).toBe(normalizeWhitespace(s));
        for (const s of sentences) expect(s.length).toBeGreaterThan(0);
      }),
      { numRuns: 500 },
    );
  });
});
