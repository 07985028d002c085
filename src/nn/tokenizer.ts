// Tokenizer for tiny GPT models: GPT-2 BPE (r50k_base), either the full vocabulary or a compact one
// (the corpus's most frequent GPT-2 tokens plus byte fallback) that stays lossless on any text.

import { createHash } from 'node:crypto';
import {
  EOT_TEXT,
  GPT2_EOT_ID,
  GPT2_SINGLE_BYTE_TOKENS,
  GPT2_VOCAB_SIZE,
  gpt2ByteTable,
  gpt2Encode,
} from './gpt2Vocabulary.js';

export type TokenizerKind = 'full' | 'compact';

/**
 * A tokenizer as plain JSON, stored next to a model and its data so a mismatch can be detected.
 * `full`: GPT-2's vocabulary unchanged. `compact`: id 0 is `<|endoftext|>`, ids 1..256 are the
 * bytes 0..255, and id 257 + i is GPT-2 token `gpt2Ids[i]`.
 */
export type TokenizerDefinition =
  | { kind: 'full'; version: 1; base: 'r50k_base'; vocabSize: number; eot: number }
  | {
      kind: 'compact';
      version: 1;
      base: 'r50k_base';
      vocabSize: number;
      eot: number;
      gpt2Ids: number[];
    };

export interface EncodeOptions {
  /** Append the end-of-text id after the text's tokens. */
  appendEot?: boolean;
}

/** A malformed TokenizerDefinition; `field` names the offending field (e.g. `gpt2Ids[3]`). */
export class TokenizerDefinitionError extends Error {
  constructor(readonly field: string, problem: string) {
    super(`invalid tokenizer definition: field '${field}' ${problem}`);
    this.name = 'TokenizerDefinitionError';
  }
}

const VERSION = 1;
const COMPACT_EOT = 0;
const COMPACT_BYTE_OFFSET = 1;
const COMPACT_FIRST_MERGED = COMPACT_BYTE_OFFSET + 256;
/** Largest compact vocabulary: EOT, 256 bytes and every multi-byte GPT-2 token. */
export const MAX_COMPACT_VOCAB = COMPACT_FIRST_MERGED + (GPT2_EOT_ID - GPT2_SINGLE_BYTE_TOKENS);

const utf8Encoder = new TextEncoder();
// ignoreBOM keeps a leading U+FEFF in the text instead of silently dropping it.
const utf8Decoder = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });
const EOT_BYTES = utf8Encoder.encode(EOT_TEXT);

export class Tokenizer {
  /** Raw bytes of every id (EOT renders as `<|endoftext|>`), flattened like Gpt2ByteTable. */
  private readonly idOffsets: Int32Array;
  private readonly idBytes: Uint8Array;
  /** For compact: GPT-2 id → compact id, or -1 for a token that falls back to bytes. */
  private readonly compactIdOfGpt2: Int32Array | undefined;
  private cachedFingerprint: string | undefined;

  private constructor(private readonly definition: TokenizerDefinition) {
    const table = gpt2ByteTable();
    const tokenBytes: Uint8Array[] = [];
    if (definition.kind === 'full') {
      for (let t = 0; t < GPT2_EOT_ID; t++) {
        tokenBytes.push(table.bytes.subarray(table.offsets[t], table.offsets[t + 1]));
      }
      tokenBytes.push(EOT_BYTES);
      this.compactIdOfGpt2 = undefined;
    } else {
      tokenBytes.push(EOT_BYTES);
      for (let b = 0; b < 256; b++) tokenBytes.push(Uint8Array.of(b));
      const map = new Int32Array(GPT2_VOCAB_SIZE).fill(-1);
      definition.gpt2Ids.forEach((g, i) => {
        map[g] = COMPACT_FIRST_MERGED + i;
        tokenBytes.push(table.bytes.subarray(table.offsets[g], table.offsets[g + 1]));
      });
      this.compactIdOfGpt2 = map;
    }
    this.idOffsets = new Int32Array(tokenBytes.length + 1);
    tokenBytes.forEach((b, i) => (this.idOffsets[i + 1] = this.idOffsets[i] + b.length));
    this.idBytes = new Uint8Array(this.idOffsets[tokenBytes.length]);
    tokenBytes.forEach((b, i) => this.idBytes.set(b, this.idOffsets[i]));
  }

  /** GPT-2's own vocabulary: 50257 ids, EOT 50256. */
  static gpt2(): Tokenizer {
    return new Tokenizer({
      kind: 'full',
      version: VERSION,
      base: 'r50k_base',
      vocabSize: GPT2_VOCAB_SIZE,
      eot: GPT2_EOT_ID,
    });
  }

  /**
   * A compact vocabulary of `vocabSize` ids: EOT, the 256 bytes, and the `vocabSize - 257` most
   * frequent multi-byte GPT-2 tokens of `corpus` (ties, and unseen tokens when the corpus has too
   * few, ordered by GPT-2 id). Single-byte GPT-2 tokens are left out because the byte ids already
   * spell them, so no id is wasted.
   */
  static buildCompact(corpus: string | Iterable<string>, vocabSize: number): Tokenizer {
    if (!Number.isInteger(vocabSize) || vocabSize < COMPACT_FIRST_MERGED || vocabSize > MAX_COMPACT_VOCAB) {
      throw new RangeError(
        `buildCompact: vocabSize must be an integer in [${COMPACT_FIRST_MERGED}, ${MAX_COMPACT_VOCAB}], got ${vocabSize}`,
      );
    }
    const counts = new Float64Array(GPT2_VOCAB_SIZE);
    const ids: number[] = [];
    for (const text of typeof corpus === 'string' ? [corpus] : corpus) {
      ids.length = 0;
      gpt2Encode(text, ids);
      for (const id of ids) counts[id]++;
    }
    const candidates: number[] = [];
    for (let g = GPT2_SINGLE_BYTE_TOKENS; g < GPT2_EOT_ID; g++) candidates.push(g);
    candidates.sort((a, b) => counts[b] - counts[a] || a - b);
    const gpt2Ids = candidates.slice(0, vocabSize - COMPACT_FIRST_MERGED);
    return new Tokenizer({ kind: 'compact', version: VERSION, base: 'r50k_base', vocabSize, eot: COMPACT_EOT, gpt2Ids });
  }

  /** Rebuild a tokenizer from toJSON()'s output; throws TokenizerDefinitionError naming the bad field. */
  static fromJSON(def: unknown): Tokenizer {
    return new Tokenizer(validateDefinition(def));
  }

  get kind(): TokenizerKind {
    return this.definition.kind;
  }

  get vocabSize(): number {
    return this.definition.vocabSize;
  }

  get eotId(): number {
    return this.definition.eot;
  }

  /**
   * Token ids of `text`. The literal string `<|endoftext|>` inside text is encoded as ordinary
   * text, never as the EOT id, so data cannot inject document boundaries; use `appendEot` instead.
   * Lone UTF-16 surrogates become U+FFFD, as in any UTF-8 encoding.
   */
  encode(text: string, options: EncodeOptions = {}): number[] {
    const gpt2 = gpt2Encode(text);
    let out = gpt2;
    const map = this.compactIdOfGpt2;
    if (map) {
      const table = gpt2ByteTable();
      out = [];
      for (const g of gpt2) {
        const c = map[g];
        if (c >= 0) {
          out.push(c);
        } else {
          for (let k = table.offsets[g]; k < table.offsets[g + 1]; k++) out.push(COMPACT_BYTE_OFFSET + table.bytes[k]);
        }
      }
    }
    if (options.appendEot) out.push(this.eotId);
    return out;
  }

  /** The UTF-8 bytes that `ids` spell; EOT spells `<|endoftext|>`. */
  decodeBytes(ids: ArrayLike<number>): Uint8Array {
    const { idOffsets, idBytes } = this;
    let length = 0;
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
        throw new RangeError(`decode: ids[${i}] = ${id} is not a token id in [0, ${this.vocabSize})`);
      }
      length += idOffsets[id + 1] - idOffsets[id];
    }
    const out = new Uint8Array(length);
    let at = 0;
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      out.set(idBytes.subarray(idOffsets[id], idOffsets[id + 1]), at);
      at += idOffsets[id + 1] - idOffsets[id];
    }
    return out;
  }

  /**
   * Text of `ids`: all bytes first, then one UTF-8 decode, so byte-fallback tokens that split a
   * character reassemble exactly; an incomplete sequence left over decodes to U+FFFD.
   */
  decode(ids: ArrayLike<number>): string {
    return utf8Decoder.decode(this.decodeBytes(ids));
  }

  toJSON(): TokenizerDefinition {
    const d = this.definition;
    return d.kind === 'full' ? { ...d } : { ...d, gpt2Ids: [...d.gpt2Ids] };
  }

  /** sha256 hex of the canonical definition: equal fingerprints mean identical encodings. */
  fingerprint(): string {
    this.cachedFingerprint ??= createHash('sha256').update(canonicalJSON(this.definition)).digest('hex');
    return this.cachedFingerprint;
  }

  equals(other: Tokenizer): boolean {
    return this === other || this.fingerprint() === other.fingerprint();
  }
}

// Fixed key order, so the fingerprint does not depend on how a definition object was built.
function canonicalJSON(d: TokenizerDefinition): string {
  const head = [d.kind, d.version, d.base, d.vocabSize, d.eot];
  return JSON.stringify(d.kind === 'full' ? head : [...head, d.gpt2Ids]);
}

function validateDefinition(def: unknown): TokenizerDefinition {
  if (typeof def !== 'object' || def === null || Array.isArray(def)) {
    throw new TokenizerDefinitionError('(root)', 'must be an object');
  }
  const d = def as Record<string, unknown>;
  if (d.kind !== 'full' && d.kind !== 'compact') {
    throw new TokenizerDefinitionError('kind', `must be 'full' or 'compact', got ${JSON.stringify(d.kind)}`);
  }
  if (d.version !== VERSION) {
    throw new TokenizerDefinitionError('version', `must be ${VERSION}, got ${JSON.stringify(d.version)}`);
  }
  if (d.base !== 'r50k_base') {
    throw new TokenizerDefinitionError('base', `must be 'r50k_base', got ${JSON.stringify(d.base)}`);
  }
  if (d.kind === 'full') {
    expectValue(d, 'vocabSize', GPT2_VOCAB_SIZE);
    expectValue(d, 'eot', GPT2_EOT_ID);
    return { kind: 'full', version: VERSION, base: 'r50k_base', vocabSize: GPT2_VOCAB_SIZE, eot: GPT2_EOT_ID };
  }
  expectValue(d, 'eot', COMPACT_EOT);
  if (!Array.isArray(d.gpt2Ids)) throw new TokenizerDefinitionError('gpt2Ids', 'must be an array of GPT-2 ids');
  const gpt2Ids: number[] = [];
  const seen = new Set<number>();
  d.gpt2Ids.forEach((g: unknown, i) => {
    if (typeof g !== 'number' || !Number.isInteger(g) || g < GPT2_SINGLE_BYTE_TOKENS || g >= GPT2_EOT_ID) {
      throw new TokenizerDefinitionError(
        `gpt2Ids[${i}]`,
        `must be a multi-byte GPT-2 id in [${GPT2_SINGLE_BYTE_TOKENS}, ${GPT2_EOT_ID}), got ${JSON.stringify(g)}`,
      );
    }
    if (seen.has(g)) throw new TokenizerDefinitionError(`gpt2Ids[${i}]`, `repeats GPT-2 id ${g}`);
    seen.add(g);
    gpt2Ids.push(g);
  });
  const vocabSize = COMPACT_FIRST_MERGED + gpt2Ids.length;
  expectValue(d, 'vocabSize', vocabSize);
  return { kind: 'compact', version: VERSION, base: 'r50k_base', vocabSize, eot: COMPACT_EOT, gpt2Ids };
}

function expectValue(d: Record<string, unknown>, field: string, expected: number): void {
  if (d[field] !== expected) {
    throw new TokenizerDefinitionError(field, `must be ${expected}, got ${JSON.stringify(d[field])}`);
  }
}
