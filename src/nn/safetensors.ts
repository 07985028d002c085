// The safetensors checkpoint format (u64 LE header length, JSON header, packed little-endian data):
// a strict parser that turns any malformed input into a SafetensorsError, and a writer whose bytes
// match the reference implementation's (huggingface/safetensors) for the same tensors.
import { readFile } from 'node:fs/promises';
import { writeFileAtomic } from './atomicWrite.js';

export { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from './halfFloat.js';

export type SafetensorsDType = 'F32' | 'F16' | 'I32' | 'I64' | 'F64' | 'BF16';

/** A named tensor as stored in the file; F16 and BF16 stay raw bits (convert with f16ToF32/bf16ToF32). */
export interface NamedArray {
  dtype: SafetensorsDType;
  shape: number[];
  data: Float32Array | Float64Array | Int32Array | BigInt64Array | Uint16Array;
}

/** Any failure to read or write a safetensors file; the message names the file and the tensor. */
export class SafetensorsError extends Error {
  constructor(
    readonly file: string,
    readonly tensor: string | undefined,
    reason: string,
  ) {
    super(tensor === undefined ? `${file}: ${reason}` : `${file}: tensor "${tensor}": ${reason}`);
    this.name = 'SafetensorsError';
  }
}

type ArrayCtor =
  | Float32ArrayConstructor
  | Float64ArrayConstructor
  | Int32ArrayConstructor
  | BigInt64ArrayConstructor
  | Uint16ArrayConstructor;

// `rank` is the position in the reference's Dtype enum; its writer orders tensors by descending rank
// (which puts wider items first, keeping every tensor aligned), then by name. We do the same so our
// files are byte-identical to Python's.
const DTYPES: Record<SafetensorsDType, { size: number; array: ArrayCtor; rank: number }> = {
  F16: { size: 2, array: Uint16Array, rank: 0 },
  BF16: { size: 2, array: Uint16Array, rank: 1 },
  I32: { size: 4, array: Int32Array, rank: 2 },
  F32: { size: 4, array: Float32Array, rank: 3 },
  F64: { size: 8, array: Float64Array, rank: 4 },
  I64: { size: 8, array: BigInt64Array, rank: 5 },
};

const MAX_HEADER_BYTES = 100_000_000; // same limit as the reference implementation
const METADATA_KEY = '__metadata__';

function isDType(x: unknown): x is SafetensorsDType {
  return typeof x === 'string' && Object.hasOwn(DTYPES, x);
}

/** Parse a whole safetensors file held in memory. Typed arrays are fresh, aligned copies. */
export function parseSafetensors(
  bytes: Uint8Array,
  file = '<memory>',
): { tensors: Map<string, NamedArray>; metadata: Record<string, string> } {
  // Annotated so that TypeScript narrows after each `fail(...)` call.
  const fail: (reason: string, tensor?: string) => never = (reason, tensor) => {
    throw new SafetensorsError(file, tensor, reason);
  };
  if (bytes.length < 8) fail(`file is ${bytes.length} bytes, shorter than the 8-byte header length`);
  const n = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) fail(`header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  const headerLen = Number(n);
  if (8 + headerLen > bytes.length) {
    fail(`header length ${headerLen} runs past the end of the file (${bytes.length} bytes)`);
  }

  let header: unknown;
  try {
    // ignoreBOM keeps a leading BOM in the text so JSON.parse rejects it, as the reference does.
    const text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(
      bytes.subarray(8, 8 + headerLen),
    );
    header = JSON.parse(text);
  } catch (err) {
    fail(`header is not valid UTF-8 JSON (${err instanceof Error ? err.message : String(err)})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) {
    fail(`header must be a JSON object, got ${describe(header)}`);
  }

  const dataStart = 8 + headerLen;
  const dataLen = bytes.length - dataStart;
  let metadata: Record<string, string> = {};
  const entries: { name: string; dtype: SafetensorsDType; shape: number[]; begin: number; end: number }[] = [];
  for (const [name, info] of Object.entries(header as Record<string, unknown>)) {
    if (name === METADATA_KEY) {
      metadata = parseMetadata(info, fail);
      continue;
    }
    if (typeof info !== 'object' || info === null || Array.isArray(info)) {
      fail(`entry must be an object, got ${describe(info)}`, name);
    }
    const { dtype, shape, data_offsets: offsets } = info as Record<string, unknown>;
    if (dtype === undefined) fail('missing "dtype"', name);
    if (!isDType(dtype)) {
      fail(`unsupported dtype ${JSON.stringify(dtype)} (expected one of ${Object.keys(DTYPES).join(', ')})`, name);
    }
    if (!Array.isArray(shape)) fail(shape === undefined ? 'missing "shape"' : `"shape" must be an array`, name);
    for (const d of shape as unknown[]) {
      if (!Number.isSafeInteger(d) || (d as number) < 0) {
        fail(`shape ${JSON.stringify(shape)} has a dimension that is not a non-negative integer`, name);
      }
    }
    if (offsets === undefined) fail('missing "data_offsets"', name);
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)) {
      fail(`"data_offsets" must be [begin, end] with non-negative integers, got ${short(offsets)}`, name);
    }
    const [begin, end] = offsets as [number, number];
    if (end < begin) fail(`data_offsets [${begin}, ${end}] are reversed`, name);
    if (end > dataLen) fail(`data_offsets [${begin}, ${end}] run past the data buffer (${dataLen} bytes)`, name);
    const nbytes = product(shape as number[]) * DTYPES[dtype].size;
    if (nbytes !== end - begin) {
      fail(`shape ${JSON.stringify(shape)} of ${dtype} needs ${nbytes} bytes but data_offsets span ${end - begin}`, name);
    }
    entries.push({ name, dtype, shape: [...(shape as number[])], begin, end });
  }

  // The spec requires the tensors to tile the data buffer exactly: no overlap, no gap, no slack.
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let covered = 0;
  for (const e of entries) {
    if (e.begin < covered) fail(`data_offsets [${e.begin}, ${e.end}] overlap the previous tensor (ends at ${covered})`, e.name);
    if (e.begin > covered) fail(`gap in the data buffer: bytes [${covered}, ${e.begin}) belong to no tensor`, e.name);
    covered = e.end;
  }
  if (covered !== dataLen) fail(`data buffer has ${dataLen - covered} trailing bytes that belong to no tensor`);

  const tensors = new Map<string, NamedArray>();
  for (const e of entries) {
    // A fresh buffer at offset 0 keeps the typed array aligned whatever the file offset. (Not
    // slice(): on a Node Buffer it returns a view into the shared pool.)
    const copy = new Uint8Array(e.end - e.begin);
    copy.set(bytes.subarray(dataStart + e.begin, dataStart + e.end));
    const { array, size } = DTYPES[e.dtype];
    tensors.set(e.name, { dtype: e.dtype, shape: e.shape, data: new array(copy.buffer, 0, copy.length / size) });
  }
  return { tensors, metadata };
}

function parseMetadata(info: unknown, fail: (reason: string) => never): Record<string, string> {
  if (typeof info !== 'object' || info === null || Array.isArray(info)) {
    fail(`"${METADATA_KEY}" must be an object of strings, got ${describe(info)}`);
  }
  const entries = Object.entries(info as Record<string, unknown>);
  for (const [k, v] of entries) {
    if (typeof v !== 'string') fail(`"${METADATA_KEY}" value for ${JSON.stringify(k)} must be a string, got ${describe(v)}`);
  }
  // fromEntries defines own properties, so a "__proto__" key stays data rather than a prototype.
  return Object.fromEntries(entries) as Record<string, string>;
}

function product(shape: readonly number[]): number {
  let p = 1;
  for (const d of shape) p *= d;
  return p;
}

function describe(x: unknown): string {
  if (x === null) return 'null';
  if (Array.isArray(x)) return 'an array';
  return typeof x;
}

function short(x: unknown): string {
  const s = JSON.stringify(x) ?? String(x);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

/**
 * Serialize tensors to safetensors bytes, laid out exactly as the reference writer does: tensors
 * ordered by dtype (widest first) then name, compact JSON header padded with spaces to 8 bytes.
 */
export function serializeSafetensors(
  tensors: Record<string, NamedArray> | Map<string, NamedArray>,
  metadata?: Record<string, string>,
): Uint8Array {
  return serializeFor('<memory>', tensors, metadata);
}

function serializeFor(
  file: string,
  tensors: Record<string, NamedArray> | Map<string, NamedArray>,
  metadata: Record<string, string> | undefined,
): Uint8Array {
  const list = [...(tensors instanceof Map ? tensors.entries() : Object.entries(tensors))];
  for (const [name, t] of list) checkTensor(file, name, t);
  list.sort(([an, a], [bn, b]) => DTYPES[b.dtype].rank - DTYPES[a.dtype].rank || compareNames(an, bn));

  // The header is assembled by hand: JSON.stringify of an object would move integer-like names
  // ("0", "1") first and break the reference ordering.
  const parts: string[] = [];
  if (metadata !== undefined) {
    const keys = Object.keys(metadata).sort(compareNames);
    for (const k of keys) {
      const v = metadata[k];
      if (typeof v !== 'string' || LONE_SURROGATE.test(k) || LONE_SURROGATE.test(v)) {
        throw new SafetensorsError(file, undefined, `metadata entry ${JSON.stringify(k)} must map a well-formed string to a string`);
      }
    }
    parts.push(`${JSON.stringify(METADATA_KEY)}:{${keys.map((k) => `${JSON.stringify(k)}:${JSON.stringify(metadata[k])}`).join(',')}}`);
  }
  let offset = 0;
  for (const [name, t] of list) {
    const end = offset + t.data.byteLength;
    parts.push(`${JSON.stringify(name)}:{"dtype":"${t.dtype}","shape":[${t.shape.join(',')}],"data_offsets":[${offset},${end}]}`);
    offset = end;
  }
  const json = new TextEncoder().encode(`{${parts.join(',')}}`);
  const headerLen = Math.ceil(json.length / 8) * 8;

  const out = new Uint8Array(8 + headerLen + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLen), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + headerLen);
  let at = 8 + headerLen;
  for (const [, t] of list) {
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), at);
    at += t.data.byteLength;
  }
  return out;
}

// Rust compares strings by UTF-8 bytes; JS `<` compares UTF-16 units. They differ only for
// characters above U+FFFF against U+E000..U+FFFF, so compare code points to match the reference.
function compareNames(a: string, b: string): number {
  const ia = a[Symbol.iterator]();
  const ib = b[Symbol.iterator]();
  for (;;) {
    const x = ia.next();
    const y = ib.next();
    if (x.done || y.done) return x.done ? (y.done ? 0 : -1) : 1;
    const d = x.value.codePointAt(0)! - y.value.codePointAt(0)!;
    if (d !== 0) return d;
  }
}

// With the u flag a paired surrogate is one code point, so this matches lone surrogates only: they
// have no UTF-8 encoding (TextEncoder would silently turn them into U+FFFD and rename the tensor).
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

function checkTensor(file: string, name: string, t: NamedArray): void {
  const fail: (reason: string) => never = (reason) => {
    throw new SafetensorsError(file, name, reason);
  };
  if (name === METADATA_KEY) fail(`"${METADATA_KEY}" is reserved for the metadata`);
  if (LONE_SURROGATE.test(name)) fail('name contains a lone UTF-16 surrogate, which UTF-8 cannot encode');
  if (!isDType(t.dtype)) fail(`unsupported dtype ${JSON.stringify(t.dtype)}`);
  const { array } = DTYPES[t.dtype];
  if (!(t.data instanceof array)) fail(`${t.dtype} data must be a ${array.name}, got ${t.data?.constructor?.name}`);
  if (!Array.isArray(t.shape) || !t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    fail(`shape ${JSON.stringify(t.shape)} must be non-negative integers`);
  }
  const n = product(t.shape);
  if (n !== t.data.length) fail(`shape [${t.shape.join(', ')}] holds ${n} elements but data has ${t.data.length}`);
}

/** Read and validate a safetensors file; errors name the path. */
export async function readSafetensors(
  path: string,
): Promise<{ tensors: Map<string, NamedArray>; metadata: Record<string, string> }> {
  const bytes = await readFile(path);
  return parseSafetensors(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), path);
}

/** Write a safetensors file atomically: a crash leaves the previous checkpoint, never a torn one. */
export async function writeSafetensors(
  path: string,
  tensors: Record<string, NamedArray> | Map<string, NamedArray>,
  metadata?: Record<string, string>,
): Promise<void> {
  await writeFileAtomic(path, serializeFor(path, tensors, metadata));
}
