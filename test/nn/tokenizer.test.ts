import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { encode as r50kEncode } from 'gpt-tokenizer/encoding/r50k_base';
import { Tokenizer, TokenizerDefinitionError, MAX_COMPACT_VOCAB } from '../../src/nn/tokenizer.js';
import { gpt2Encode } from '../../src/nn/gpt2Vocabulary.js';

const SAMPLE = [
  'The quick brown fox jumps over the lazy dog.\n\nIt was the best of times, it was the worst of times.',
  'Fellow-Citizens of the Senate and House of Representatives: the state of the Union is strong.',
  'Call me Ishmael. Some years ago—never mind how long precisely—I thought I would sail about.',
];

const full = Tokenizer.gpt2();
const compact = Tokenizer.buildCompact(SAMPLE, 400);
const tokenizers = [full, compact];

const loneSurrogate = fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => String.fromCharCode(c));
// Text that stresses the pre-tokenizer: whitespace runs, newlines, digits, punctuation, emoji.
const textish = fc.string({
  unit: fc.oneof(
    fc.constantFrom(' ', '\n', '\n\n', '\t', '  ', ' \n', '.', "'s", '—', '😀', '👨‍👩‍👧', 'é', 'e\u0301', '123', 'the', '<|endoftext|>'),
    fc.string({ unit: 'grapheme', maxLength: 3 }),
  ),
  maxLength: 40,
});
const wellFormed = fc.oneof(
  fc.string({ unit: 'binary' }),
  fc.string({ unit: 'grapheme' }),
  fc.string({ unit: 'grapheme-composite' }),
  textish,
);

/** What a UTF-8 round trip makes of a string: lone surrogates become U+FFFD. */
const viaUtf8 = (s: string) => new TextDecoder('utf-8', { ignoreBOM: true }).decode(new TextEncoder().encode(s));

describe('Tokenizer', () => {
  it('decode(encode(s)) === s for well-formed unicode, both kinds', () => {
    fc.assert(
      fc.property(wellFormed, (s) => {
        for (const tok of tokenizers) expect(tok.decode(tok.encode(s))).toBe(s);
      }),
      { numRuns: 400 },
    );
  });

  it('a leading byte-order mark survives the round trip', () => {
    for (const tok of tokenizers) expect(tok.decode(tok.encode('\uFEFFabc'))).toBe('\uFEFFabc');
  });

  it('lone surrogates decode as U+FFFD, like any UTF-8 encoding', () => {
    const withLone = fc.string({ unit: fc.oneof(loneSurrogate, fc.string({ unit: 'binary', maxLength: 2 })) });
    fc.assert(
      fc.property(withLone, (s) => {
        for (const tok of tokenizers) expect(tok.decode(tok.encode(s))).toBe(viaUtf8(s));
      }),
    );
  });

  it('decodeBytes(encode(s)) is the UTF-8 encoding of s', () => {
    fc.assert(
      fc.property(wellFormed, (s) => {
        for (const tok of tokenizers) expect(tok.decodeBytes(tok.encode(s))).toEqual(new TextEncoder().encode(s));
      }),
    );
  });

  it('full encodes exactly as gpt-tokenizer r50k_base, despite chunking by line', () => {
    fc.assert(
      fc.property(textish, (s) => {
        expect(full.encode(s)).toEqual(r50kEncode(s, { disallowedSpecial: new Set() }));
        expect(gpt2Encode(s)).toEqual(r50kEncode(s, { disallowedSpecial: new Set() }));
      }),
      { numRuns: 400 },
    );
    expect(full.encode('a\n\nb')).toEqual([64, 198, 198, 65]);
  });

  it('every encoded id is below vocabSize, both kinds', () => {
    fc.assert(
      fc.property(wellFormed, (s) => {
        for (const tok of tokenizers) for (const id of tok.encode(s, { appendEot: true })) expect(id).toBeLessThan(tok.vocabSize);
      }),
    );
  });

  it('compact layout: EOT 0, bytes 1..256, then the most frequent multi-byte GPT-2 tokens', () => {
    expect(compact.vocabSize).toBe(400);
    expect(compact.eotId).toBe(0);
    expect(compact.encode('\u0000\u00ff')).toEqual([1, 1 + 0xc3, 1 + 0xbf]);
    const def = compact.toJSON();
    if (def.kind !== 'compact') throw new Error('expected compact');
    expect(def.gpt2Ids).toHaveLength(400 - 257);
    expect(def.gpt2Ids[0]).toBe(r50kEncode(' the')[0]); // the most frequent token of SAMPLE
    // A frequent word is one id; a word outside the vocabulary falls back to its bytes.
    expect(compact.encode(' the')).toEqual([257]);
    expect(compact.encode(' zebra')).toHaveLength(' zebra'.length);
  });

  it('full kind: 50257 ids, EOT 50256', () => {
    expect(full.vocabSize).toBe(50257);
    expect(full.eotId).toBe(50256);
    expect(full.kind).toBe('full');
  });

  it('"<|endoftext|>" in text is ordinary text; appendEot adds the EOT id', () => {
    for (const tok of tokenizers) {
      const ids = tok.encode('a<|endoftext|>b');
      expect(ids).not.toContain(tok.eotId);
      expect(tok.decode(ids)).toBe('a<|endoftext|>b');
      const withEot = tok.encode('hi', { appendEot: true });
      expect(withEot.at(-1)).toBe(tok.eotId);
      expect(withEot.slice(0, -1)).toEqual(tok.encode('hi'));
      expect(tok.decode(withEot)).toBe('hi<|endoftext|>');
    }
  });

  it('toJSON/fromJSON round trip gives identical encodings and fingerprints', () => {
    for (const tok of tokenizers) {
      const back = Tokenizer.fromJSON(JSON.parse(JSON.stringify(tok.toJSON())));
      expect(back.equals(tok)).toBe(true);
      expect(back.fingerprint()).toBe(tok.fingerprint());
      fc.assert(fc.property(wellFormed, (s) => {
        expect(back.encode(s)).toEqual(tok.encode(s));
      }), { numRuns: 50 });
    }
    expect(full.fingerprint()).toMatch(/^[0-9a-f]{64}$/);
    expect(full.equals(compact)).toBe(false);
  });

  it('buildCompact is deterministic and the fingerprint tells vocabularies apart', () => {
    const again = Tokenizer.buildCompact(SAMPLE.join(''), 400);
    expect(Tokenizer.buildCompact(SAMPLE, 400).toJSON()).toEqual(compact.toJSON());
    expect(Tokenizer.buildCompact(SAMPLE, 400).fingerprint()).toBe(compact.fingerprint());
    expect(Tokenizer.buildCompact(SAMPLE, 401).equals(compact)).toBe(false);
    expect(again.vocabSize).toBe(400);
    expect(() => Tokenizer.buildCompact(SAMPLE, 256)).toThrow(RangeError);
    expect(() => Tokenizer.buildCompact(SAMPLE, MAX_COMPACT_VOCAB + 1)).toThrow(RangeError);
    expect(Tokenizer.buildCompact('', 257).encode('hé')).toEqual([1 + 0x68, 1 + 0xc3, 1 + 0xa9]);
  });

  it('invalid definitions raise TokenizerDefinitionError naming the field', () => {
    const good = compact.toJSON() as unknown as Record<string, unknown>;
    const gpt2Ids = good.gpt2Ids as number[];
    const cases: [unknown, string][] = [
      [null, '(root)'],
      [{ ...good, kind: 'bpe' }, 'kind'],
      [{ ...good, version: 2 }, 'version'],
      [{ ...good, base: 'cl100k_base' }, 'base'],
      [{ ...good, eot: 5 }, 'eot'],
      [{ ...good, gpt2Ids: 'x' }, 'gpt2Ids'],
      [{ ...good, gpt2Ids: [...gpt2Ids.slice(0, 3), 65, ...gpt2Ids.slice(4)] }, 'gpt2Ids[3]'],
      [{ ...good, gpt2Ids: [...gpt2Ids.slice(0, 3), gpt2Ids[0], ...gpt2Ids.slice(4)] }, 'gpt2Ids[3]'],
      [{ ...good, gpt2Ids: [...gpt2Ids, 50256] }, `gpt2Ids[${gpt2Ids.length}]`],
      [{ ...good, vocabSize: 401 }, 'vocabSize'],
      [{ ...full.toJSON(), vocabSize: 400 }, 'vocabSize'],
    ];
    for (const [def, field] of cases) {
      let error: unknown;
      try {
        Tokenizer.fromJSON(def);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(TokenizerDefinitionError);
      expect((error as TokenizerDefinitionError).field).toBe(field);
      expect((error as Error).message).toContain(`'${field}'`);
    }
  });

  it('decode rejects ids outside the vocabulary, naming the position', () => {
    expect(() => compact.decode([5, 400])).toThrow(/ids\[1\] = 400/);
    expect(() => full.decode([1.5])).toThrow(/ids\[0\]/);
  });
});
