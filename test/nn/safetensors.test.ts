// safetensors: round trips for every dtype, byte-exact agreement with the reference writer, and a
// parser that answers any input with either a result or a SafetensorsError naming file and tensor.
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type NamedArray,
  parseSafetensors,
  readSafetensors,
  SafetensorsError,
  type SafetensorsDType,
  serializeSafetensors,
  writeSafetensors,
} from '../../src/nn/safetensors.js';

const bytesOf = (a: ArrayBufferView): number[] => [...new Uint8Array(a.buffer, a.byteOffset, a.byteLength)];
const ascii = (s: string): number[] => [...s].map((c) => c.charCodeAt(0));
const u64 = (n: number): number[] => bytesOf(new BigUint64Array([BigInt(n)]));

// ---- arbitraries ----------------------------------------------------------------------------

const shapeArb = fc.array(fc.integer({ min: 0, max: 4 }), { maxLength: 4 }); // [] is a scalar
const size = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

function tensorArb(dtype: SafetensorsDType): fc.Arbitrary<NamedArray> {
  return shapeArb.chain((shape) => {
    const n = size(shape);
    const len = { minLength: n, maxLength: n };
    const data: fc.Arbitrary<NamedArray['data']> =
      dtype === 'F32' ? fc.array(fc.float(), len).map((v) => Float32Array.from(v))
      : dtype === 'F64' ? fc.array(fc.double(), len).map((v) => Float64Array.from(v))
      : dtype === 'I32' ? fc.array(fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), len).map((v) => Int32Array.from(v))
      : dtype === 'I64' ? fc.array(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), len).map((v) => BigInt64Array.from(v))
      : fc.array(fc.integer({ min: 0, max: 0xffff }), len).map((v) => Uint16Array.from(v));
    return data.map((d) => ({ dtype, shape, data: d }));
  });
}

const DTYPES: SafetensorsDType[] = ['F32', 'F16', 'I32', 'I64', 'F64', 'BF16'];
const anyTensorArb = fc.constantFrom(...DTYPES).chain(tensorArb);
const nameArb = fc.string({ unit: 'grapheme', maxLength: 12 }).filter((s) => s !== '__metadata__');
const tensorsArb = fc.uniqueArray(fc.tuple(nameArb, anyTensorArb), { selector: ([n]) => n, maxLength: 6 });
const metadataArb = fc.option(fc.dictionary(fc.string({ unit: 'grapheme', maxLength: 8 }), fc.string({ unit: 'grapheme', maxLength: 8 })), { nil: undefined });

// ---- round trip -----------------------------------------------------------------------------

describe('round trip', () => {
  it.each(DTYPES)('%s tensors of random shapes (scalars, zero-size dims) survive serialize/parse bit for bit', (dtype) => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.tuple(nameArb, tensorArb(dtype)), { selector: ([n]) => n, maxLength: 4 }), metadataArb, (list, metadata) => {
        const back = parseSafetensors(serializeSafetensors(new Map(list), metadata));
        expect(back.tensors.size).toBe(list.length);
        for (const [name, t] of list) {
          const got = back.tensors.get(name)!;
          expect(got.dtype).toBe(dtype);
          expect(got.shape).toEqual(t.shape);
          expect(got.data.constructor).toBe(t.data.constructor);
          expect(bytesOf(got.data)).toEqual(bytesOf(t.data));
        }
        expect(back.metadata).toEqual(metadata ?? {});
      }),
      { numRuns: 60 },
    );
  });

  it('mixed dtypes: every tensor comes back aligned and the header length is a multiple of 8', () => {
    fc.assert(
      fc.property(tensorsArb, metadataArb, (list, metadata) => {
        const bytes = serializeSafetensors(Object.fromEntries(list), metadata);
        const headerLen = Number(new DataView(bytes.buffer).getBigUint64(0, true));
        expect(headerLen % 8).toBe(0);
        const back = parseSafetensors(bytes);
        for (const [name, t] of list) expect(bytesOf(back.tensors.get(name)!.data)).toEqual(bytesOf(t.data));
      }),
      { numRuns: 100 },
    );
  });

  it('parses from an unaligned offset inside a larger buffer', () => {
    const inner = serializeSafetensors({ w: { dtype: 'F64', shape: [2], data: Float64Array.of(1.5, -2) } });
    const outer = new Uint8Array(inner.length + 3);
    outer.set(inner, 3);
    const t = parseSafetensors(outer.subarray(3)).tensors.get('w')!;
    expect([...(t.data as Float64Array)]).toEqual([1.5, -2]);
  });

  it('writeSafetensors/readSafetensors go through the file system atomically', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'st-'));
    try {
      const path = join(dir, 'model.safetensors');
      await writeSafetensors(path, { a: { dtype: 'I32', shape: [3], data: Int32Array.of(1, 2, 3) } }, { format: 'pt' });
      const { tensors, metadata } = await readSafetensors(path);
      expect([...(tensors.get('a')!.data as Int32Array)]).toEqual([1, 2, 3]);
      expect(metadata).toEqual({ format: 'pt' });
      const bad: Record<string, NamedArray> = { a: { dtype: 'I32', shape: [4], data: Int32Array.of(1) } };
      await expect(writeSafetensors(path, bad)).rejects.toThrow(`${path}: tensor "a": shape [4] holds 4 elements but data has 1`);
      expect(readdirSync(dir)).toEqual(['model.safetensors']);
      expect((await readSafetensors(path)).tensors.size).toBe(1);
      expect(readFileSync(path).length).toBeGreaterThan(8);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// ---- byte-exact agreement with the reference writer -----------------------------------------

describe('bytes match the reference implementation', () => {
  it('a small dict with metadata, mixed dtypes and a scalar, written by hand', () => {
    // What Python's safetensors writes for {"weight": f32 [[1,2],[3,4]], "bias": f16 [1,-2],
    // "step": i64 scalar 7} with metadata {"format": "pt"}: tensors ordered by dtype (I64 > F32 >
    // F16 in the reference's enum) then name; compact JSON; header padded with spaces to 8 bytes.
    const header =
      '{"__metadata__":{"format":"pt"},' +
      '"step":{"dtype":"I64","shape":[],"data_offsets":[0,8]},' +
      '"weight":{"dtype":"F32","shape":[2,2],"data_offsets":[8,24]},' +
      '"bias":{"dtype":"F16","shape":[2],"data_offsets":[24,28]}}';
    expect(header.length).toBe(206);
    const expected = [
      208, 0, 0, 0, 0, 0, 0, 0, // header length: 206 + 2 spaces of padding
      ...ascii(header),
      0x20, 0x20,
      7, 0, 0, 0, 0, 0, 0, 0, // step = 7 (i64 LE)
      0, 0, 0x80, 0x3f, 0, 0, 0, 0x40, 0, 0, 0x40, 0x40, 0, 0, 0x80, 0x40, // 1, 2, 3, 4 (f32 LE)
      0x00, 0x3c, 0x00, 0xc0, // 1.0 = 0x3c00, -2.0 = 0xc000 (f16 LE)
    ];
    const out = serializeSafetensors(
      {
        weight: { dtype: 'F32', shape: [2, 2], data: Float32Array.of(1, 2, 3, 4) },
        bias: { dtype: 'F16', shape: [2], data: Uint16Array.of(0x3c00, 0xc000) },
        step: { dtype: 'I64', shape: [], data: BigInt64Array.of(7n) },
      },
      { format: 'pt' },
    );
    expect([...out]).toEqual(expected);
  });

  // These three vectors are the expected outputs in the reference's own unit tests (tensor.rs).
  it('reference vector: "attn.0" f32 [1,2,3]', () => {
    const out = serializeSafetensors({ 'attn.0': { dtype: 'F32', shape: [1, 2, 3], data: Float32Array.of(0, 1, 2, 3, 4, 5) } });
    expect([...out]).toEqual([
      64, 0, 0, 0, 0, 0, 0, 0,
      ...ascii('{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}'),
      0, 0, 0, 0, 0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64, 0, 0, 160, 64,
    ]);
  });

  it('reference vector: empty file, with and without metadata', () => {
    expect([...serializeSafetensors({})]).toEqual([8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32]);
    expect([...serializeSafetensors({}, { framework: 'pt' })]).toEqual([
      40, 0, 0, 0, 0, 0, 0, 0, ...ascii('{"__metadata__":{"framework":"pt"}}'), 32, 32, 32, 32, 32,
    ]);
  });

  it('names that look like integers keep the reference order', () => {
    const t = (v: number): NamedArray => ({ dtype: 'F32', shape: [], data: Float32Array.of(v) });
    const out = serializeSafetensors({ b: t(0), '10': t(1), '9': t(2) });
    const header = new TextDecoder().decode(out.subarray(8, 8 + Number(new DataView(out.buffer).getBigUint64(0, true))));
    expect(header.trimEnd()).toBe(
      '{"10":{"dtype":"F32","shape":[],"data_offsets":[0,4]},"9":{"dtype":"F32","shape":[],"data_offsets":[4,8]},' +
        '"b":{"dtype":"F32","shape":[],"data_offsets":[8,12]}}',
    );
  });
});

// ---- each failure, named --------------------------------------------------------------------

/** A file from a header (object or raw string) and a data buffer of `dataLen` zero bytes. */
function fileWith(header: unknown, dataLen: number): Uint8Array {
  const json = new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  return new Uint8Array([...u64(json.length), ...json, ...new Uint8Array(dataLen)]);
}

function parseError(bytes: Uint8Array): SafetensorsError {
  try {
    parseSafetensors(bytes, 'ckpt.safetensors');
  } catch (err) {
    expect(err).toBeInstanceOf(SafetensorsError);
    return err as SafetensorsError;
  }
  throw new Error('expected a SafetensorsError');
}

const f32 = (shape: number[], offsets: [number, number]) => ({ dtype: 'F32', shape, data_offsets: offsets });

describe('parse errors name the file and the tensor', () => {
  const fileLevel: [string, Uint8Array, RegExp][] = [
    ['file shorter than 8 bytes', new Uint8Array(5), /5 bytes, shorter than/],
    ['header length beyond the file', new Uint8Array([...u64(100), ...ascii('{}')]), /runs past the end/],
    ['absurd header length', new Uint8Array([...u64(2 ** 40), ...ascii('{}')]), /exceeds the 100000000-byte limit/],
    ['header length 2^64 - 1', new Uint8Array([255, 255, 255, 255, 255, 255, 255, 255]), /exceeds/],
    ['header not UTF-8', new Uint8Array([...u64(4), 0x7b, 0xff, 0xfe, 0x7d]), /not valid UTF-8 JSON/],
    ['header not JSON', fileWith('{"a":', 0), /not valid UTF-8 JSON/],
    ['header a JSON array', fileWith('[1,2]', 0), /must be a JSON object, got an array/],
    ['header JSON null', fileWith('null', 0), /must be a JSON object, got null/],
    ['header with a BOM', fileWith('\ufeff{}', 0), /not valid UTF-8 JSON/],
    ['metadata not an object', fileWith({ __metadata__: 'x' }, 0), /"__metadata__" must be an object/],
    ['metadata value not a string', fileWith({ __metadata__: { epoch: 3 } }, 0), /value for "epoch" must be a string, got number/],
    ['trailing bytes after the last tensor', fileWith({ a: f32([1], [0, 4]) }, 8), /4 trailing bytes/],
    ['data but no tensors', fileWith({}, 3), /3 trailing bytes/],
  ];
  it.each(fileLevel)('%s', (_what, bytes, message) => {
    const err = parseError(bytes);
    expect(err.file).toBe('ckpt.safetensors');
    expect(err.tensor).toBeUndefined();
    expect(err.message).toMatch(/^ckpt\.safetensors: /);
    expect(err.message).toMatch(message);
  });

  const tensorLevel: [string, unknown, number, RegExp][] = [
    ['entry not an object', { w: 5 }, 0, /entry must be an object, got number/],
    ['missing dtype', { w: { shape: [1], data_offsets: [0, 4] } }, 4, /missing "dtype"/],
    ['missing shape', { w: { dtype: 'F32', data_offsets: [0, 4] } }, 4, /missing "shape"/],
    ['missing data_offsets', { w: { dtype: 'F32', shape: [1] } }, 4, /missing "data_offsets"/],
    ['dtype of the wrong type', { w: { dtype: 32, shape: [1], data_offsets: [0, 4] } }, 4, /unsupported dtype 32/],
    ['unknown dtype', { w: { dtype: 'U8', shape: [1], data_offsets: [0, 1] } }, 1, /unsupported dtype "U8"/],
    ['shape not an array', { w: { dtype: 'F32', shape: 4, data_offsets: [0, 4] } }, 4, /"shape" must be an array/],
    ['negative dim', { w: f32([-1], [0, 0]) }, 0, /not a non-negative integer/],
    ['fractional dim', { w: f32([1.5], [0, 4]) }, 4, /not a non-negative integer/],
    ['dim of the wrong type', { w: f32(['2' as unknown as number], [0, 8]) }, 8, /not a non-negative integer/],
    ['offsets of the wrong type', { w: { dtype: 'F32', shape: [1], data_offsets: '0-4' } }, 4, /must be \[begin, end\]/],
    ['three offsets', { w: { dtype: 'F32', shape: [1], data_offsets: [0, 4, 8] } }, 4, /must be \[begin, end\]/],
    ['negative offset', { w: f32([1], [-4, 0]) }, 4, /must be \[begin, end\]/],
    ['reversed offsets', { w: f32([1], [4, 0]) }, 4, /\[4, 0\] are reversed/],
    ['offsets past the buffer', { w: f32([2], [0, 8]) }, 4, /run past the data buffer \(4 bytes\)/],
    ['byte length != shape * itemsize', { w: f32([3], [0, 8]) }, 8, /needs 12 bytes but data_offsets span 8/],
    ['overflowing shape', { w: f32([2 ** 40, 2 ** 40], [0, 4]) }, 4, /bytes but data_offsets span 4/],
    ['overlap', { a: f32([2], [0, 8]), w: f32([2], [4, 12]) }, 12, /overlap the previous tensor \(ends at 8\)/],
    ['gap', { a: f32([1], [0, 4]), w: f32([1], [8, 12]) }, 12, /gap in the data buffer: bytes \[4, 8\)/],
  ];
  it.each(tensorLevel)('%s', (_what, header, dataLen, message) => {
    const err = parseError(fileWith(header, dataLen));
    expect(err.file).toBe('ckpt.safetensors');
    expect(err.tensor).toBe('w');
    expect(err.message).toMatch(/^ckpt\.safetensors: tensor "w": /);
    expect(err.message).toMatch(message);
  });

  it('readSafetensors names the path it read', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'st-'));
    try {
      const path = join(dir, 'bad.safetensors');
      writeFileSync(path, new Uint8Array(3));
      await expect(readSafetensors(path)).rejects.toThrow(`${path}: file is 3 bytes`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('serialize errors name the tensor', () => {
  const cases: [string, NamedArray, RegExp][] = [
    ['shape vs data length', { dtype: 'F32', shape: [2, 3], data: new Float32Array(5) }, /shape \[2, 3\] holds 6 elements but data has 5/],
    ['array type vs dtype', { dtype: 'F64', shape: [1], data: new Float32Array(1) }, /F64 data must be a Float64Array, got Float32Array/],
    ['unknown dtype', { dtype: 'U8' as SafetensorsDType, shape: [1], data: new Uint16Array(1) }, /unsupported dtype "U8"/],
    ['negative dim', { dtype: 'F32', shape: [-1], data: new Float32Array(0) }, /must be non-negative integers/],
  ];
  it.each(cases)('%s', (_what, t, message) => {
    expect(() => serializeSafetensors({ w: t })).toThrow(SafetensorsError);
    expect(() => serializeSafetensors({ w: t })).toThrow(/^<memory>: tensor "w": /);
    expect(() => serializeSafetensors({ w: t })).toThrow(message);
  });

  it('rejects the reserved name and names with lone surrogates', () => {
    const t: NamedArray = { dtype: 'F32', shape: [], data: new Float32Array(1) };
    expect(() => serializeSafetensors({ __metadata__: t })).toThrow(/reserved/);
    expect(() => serializeSafetensors({ ['a\ud800']: t })).toThrow(/lone UTF-16 surrogate/);
    expect(() => serializeSafetensors({}, { k: 1 as unknown as string })).toThrow(/metadata entry "k"/);
  });
});

// ---- fuzzing --------------------------------------------------------------------------------

/** Parse and classify: a non-SafetensorsError exception fails the property. */
function parsesOrRejects(bytes: Uint8Array): void {
  try {
    parseSafetensors(bytes, 'fuzz');
  } catch (err) {
    if (!(err instanceof SafetensorsError)) throw err;
    expect(err.message.startsWith('fuzz: ')).toBe(true);
  }
}

const validFileArb = fc.tuple(tensorsArb, metadataArb).map(([list, md]) => serializeSafetensors(new Map(list), md));

describe('fuzzing: any input parses or throws SafetensorsError', () => {
  it('random bytes', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), (b) => parsesOrRejects(b)), { numRuns: 2000 });
  });

  it('a plausible length prefix followed by random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.nat(220), (body, n) => parsesOrRejects(new Uint8Array([...u64(n), ...body]))),
      { numRuns: 2000 },
    );
  });

  it('random JSON values as the header, random data length', () => {
    fc.assert(fc.property(fc.json(), fc.nat(64), (json, len) => parsesOrRejects(fileWith(json, len))), { numRuns: 1000 });
  });

  it('random header entries built from plausible and implausible fields', () => {
    const num = fc.oneof(fc.integer({ min: -2, max: 40 }), fc.double(), fc.constant(2 ** 53), fc.constant(1e300));
    const val = fc.oneof(num, fc.string(), fc.constant(null), fc.array(num, { maxLength: 3 }), fc.constantFrom(...DTYPES, 'U8', ''));
    const entry = fc.record(
      { dtype: fc.oneof(fc.constantFrom(...DTYPES), val), shape: fc.oneof(fc.array(num, { maxLength: 3 }), val), data_offsets: fc.oneof(fc.tuple(num, num), val) },
      { requiredKeys: [] },
    );
    const header = fc.dictionary(fc.oneof(fc.string({ maxLength: 3 }), fc.constant('__metadata__')), fc.oneof(entry, val), { maxKeys: 4 });
    fc.assert(fc.property(header, fc.nat(64), (h, len) => parsesOrRejects(fileWith(h, len))), { numRuns: 2000 });
  });

  it('mutations of a valid file: byte flips, truncation, extension, header edits', () => {
    const mutation = fc.oneof(
      fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), xor: fc.integer({ min: 1, max: 255 }) }),
      fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
      fc.record({ kind: fc.constant('extend' as const), extra: fc.uint8Array({ minLength: 1, maxLength: 16 }) }),
      fc.record({ kind: fc.constant('header' as const), at: fc.nat(), text: fc.string({ maxLength: 4 }) }),
    );
    fc.assert(
      fc.property(validFileArb, fc.array(mutation, { minLength: 1, maxLength: 3 }), (file, muts) => {
        let b = file;
        for (const m of muts) {
          if (m.kind === 'flip') {
            b = b.slice();
            if (b.length > 0) b[m.at % b.length]! ^= m.xor;
          } else if (m.kind === 'truncate') {
            b = b.slice(0, m.at % (b.length + 1));
          } else if (m.kind === 'extend') {
            b = new Uint8Array([...b, ...m.extra]);
          } else if (b.length >= 8) {
            // Splice text into the header and fix up the length prefix so the edit reaches the JSON.
            const n = Math.min(Number(new DataView(b.buffer, b.byteOffset).getBigUint64(0, true)), b.length - 8);
            const text = new TextDecoder().decode(b.subarray(8, 8 + n));
            const at = m.at % (text.length + 1);
            const edited = new TextEncoder().encode(text.slice(0, at) + m.text + text.slice(at + m.text.length));
            b = new Uint8Array([...u64(edited.length), ...edited, ...b.subarray(8 + n)]);
          }
        }
        parsesOrRejects(b);
      }),
      { numRuns: 2000 },
    );
  });
});
