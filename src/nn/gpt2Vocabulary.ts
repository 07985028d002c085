// The GPT-2 (r50k_base) byte-pair vocabulary as raw bytes, and an exact GPT-2 encoder that works
// line by line with a cache, so large corpora encode fast. Knows nothing about compact vocabularies.

import { encode as r50kEncode } from 'gpt-tokenizer/encoding/r50k_base';
import r50kRanks from 'gpt-tokenizer/bpeRanks/r50k_base';

/** Number of ids in GPT-2's vocabulary: 50256 byte-pair tokens plus `<|endoftext|>`. */
export const GPT2_VOCAB_SIZE = 50257;
/** GPT-2's end-of-text id. */
export const GPT2_EOT_ID = 50256;
/** The end-of-text marker's text, which decoding renders for an EOT id. */
export const EOT_TEXT = '<|endoftext|>';
/** GPT-2 ids 0..255 are the 256 single bytes (in GPT-2's own byte order, not 0..255). */
export const GPT2_SINGLE_BYTE_TOKENS = 256;

/**
 * Raw bytes of every GPT-2 byte-pair token, flattened: token t is
 * `bytes.subarray(offsets[t], offsets[t + 1])`. The rank table stores a token as a string when its
 * bytes are valid UTF-8 and as a byte array otherwise, so both forms give exact bytes; decode() of a
 * single token would not (a partial UTF-8 sequence comes back as U+FFFD).
 */
export interface Gpt2ByteTable {
  readonly offsets: Int32Array;
  readonly bytes: Uint8Array;
}

let byteTable: Gpt2ByteTable | undefined;

export function gpt2ByteTable(): Gpt2ByteTable {
  if (byteTable) return byteTable;
  const n = GPT2_EOT_ID;
  if (r50kRanks.length !== n) {
    throw new Error(`gpt-tokenizer's r50k_base has ${r50kRanks.length} ranks, expected ${n}`);
  }
  const utf8 = new TextEncoder();
  const pieces: Uint8Array[] = new Array(n);
  const offsets = new Int32Array(n + 1);
  for (let t = 0; t < n; t++) {
    const entry = r50kRanks[t];
    const piece = typeof entry === 'string' ? utf8.encode(entry) : Uint8Array.from(entry);
    pieces[t] = piece;
    offsets[t + 1] = offsets[t] + piece.length;
  }
  const bytes = new Uint8Array(offsets[n]);
  for (let t = 0; t < n; t++) bytes.set(pieces[t], offsets[t]);
  byteTable = { offsets, bytes };
  return byteTable;
}

/** The GPT-2 id of each single byte value (index = byte). */
export function gpt2IdOfByte(): Int32Array {
  const { offsets, bytes } = gpt2ByteTable();
  const idOfByte = new Int32Array(256).fill(-1);
  for (let t = 0; t < GPT2_EOT_ID; t++) {
    if (offsets[t + 1] - offsets[t] === 1) idOfByte[bytes[offsets[t]]] = t;
  }
  return idOfByte;
}

// `<|endoftext|>` inside text is ordinary text: an empty disallow set stops gpt-tokenizer from
// throwing on it, and nothing is allowed as special, so it never becomes id 50256.
const PLAIN_TEXT = { disallowedSpecial: new Set<string>() };

// Split before a "\n" that is followed by a non-space character. GPT-2's pre-tokenizer
// (`...|\s+(?!\S)|\s+`) always ends a piece there, so encoding the chunks one by one gives exactly
// the ids of encoding the whole text; splitting after the newline would not ("\n\n" is one token
// at the end of a string but two before a word).
const CHUNK_BOUNDARY = /(?=\n\S)/;
const CACHE_MAX_CHUNK = 256;
const CACHE_MAX_ENTRIES = 50_000;
const chunkCache = new Map<string, readonly number[]>();

/** GPT-2 ids of `text`, identical to gpt-tokenizer's r50k_base encode with no special tokens. */
export function gpt2Encode(text: string, out: number[] = []): number[] {
  for (const chunk of text.split(CHUNK_BOUNDARY)) {
    let ids = chunk.length <= CACHE_MAX_CHUNK ? chunkCache.get(chunk) : undefined;
    if (ids === undefined) {
      ids = r50kEncode(chunk, PLAIN_TEXT);
      if (chunk.length <= CACHE_MAX_CHUNK) {
        // Clearing wholesale keeps the cache bounded without LRU bookkeeping; repeated short lines
        // (prompts, headings) refill it quickly.
        if (chunkCache.size >= CACHE_MAX_ENTRIES) chunkCache.clear();
        chunkCache.set(chunk, ids);
      }
    }
    for (let i = 0; i < ids.length; i++) out.push(ids[i]);
  }
  return out;
}
