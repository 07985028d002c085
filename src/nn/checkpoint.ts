// Tensors to and from safetensors files: a state dict (named tensors on any backend) plus JSON
// metadata in one file, written atomically, so a checkpoint is never half-written.

import type { Backend } from '../tensor/backend.js';
import type { DType } from '../tensor/dtype.js';
import { getBackend } from '../tensor/engine.js';
import { tensor } from '../tensor/ops/creation.js';
import { fmtShape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { bf16ToF32, f16ToF32, type NamedArray, parseSafetensors, SafetensorsError, serializeSafetensors } from './safetensors.js';
import { writeFileAtomic } from './atomicWrite.js';
import { readFile } from 'node:fs/promises';

const METADATA_KEY = 'ganpo';

/** Reads every tensor back (one readback each) and serializes them with JSON metadata. */
export async function encodeCheckpoint(tensors: ReadonlyMap<string, Tensor>, metadata: unknown): Promise<Uint8Array> {
  const named = new Map<string, NamedArray>();
  for (const [name, t] of tensors) {
    const data = await t.data();
    const shape = [...t.shape];
    if (t.dtype === 'f32') named.set(name, { dtype: 'F32', shape, data: data as Float32Array });
    else if (t.dtype === 'f64') named.set(name, { dtype: 'F64', shape, data: data as Float64Array });
    else named.set(name, { dtype: 'I32', shape, data: data as Int32Array });
  }
  return serializeSafetensors(named, { [METADATA_KEY]: JSON.stringify(metadata ?? null) });
}

/** Writes tensors and metadata to path atomically (temp file, fsync, rename). */
export async function saveCheckpoint(path: string, tensors: ReadonlyMap<string, Tensor>, metadata: unknown): Promise<void> {
  await writeFileAtomic(path, await encodeCheckpoint(tensors, metadata));
}

export interface LoadedCheckpoint {
  /** Raw arrays by name (F16/BF16 widened to f32, I64 narrowed to i32 when exact). */
  arrays: Map<string, NamedArray>;
  metadata: unknown;
  file: string;
}

/** Reads and validates a checkpoint; errors name the file (and tensor). */
export async function loadCheckpoint(path: string): Promise<LoadedCheckpoint> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (e) {
    throw new Error(`cannot read checkpoint ${path}: ${(e as Error).message}`);
  }
  const { tensors, metadata } = parseSafetensors(bytes, path);
  let meta: unknown = null;
  if (metadata[METADATA_KEY] !== undefined) {
    try {
      meta = JSON.parse(metadata[METADATA_KEY]);
    } catch {
      throw new SafetensorsError(path, undefined, `metadata "${METADATA_KEY}" is not valid JSON`);
    }
  }
  return { arrays: tensors, metadata: meta, file: path };
}

/** Converts a stored array to a tensor on the backend, widening half floats to f32. */
export function arrayToTensor(a: NamedArray, name: string, file: string, opts: { backend?: Backend; dtype?: DType } = {}): Tensor {
  const backend = opts.backend ?? getBackend();
  let data: ArrayLike<number>;
  let dtype: DType;
  switch (a.dtype) {
    case 'F32': data = a.data as Float32Array; dtype = 'f32'; break;
    case 'F64': data = a.data as Float64Array; dtype = 'f64'; break;
    case 'F16': data = f16ToF32(a.data as Uint16Array); dtype = 'f32'; break;
    case 'BF16': data = bf16ToF32(a.data as Uint16Array); dtype = 'f32'; break;
    case 'I32': data = a.data as Int32Array; dtype = 'i32'; break;
    case 'I64': {
      const big = a.data as BigInt64Array;
      const out = new Int32Array(big.length);
      for (let i = 0; i < big.length; i++) {
        if (big[i] > 2147483647n || big[i] < -2147483648n) throw new SafetensorsError(file, name, `I64 value ${big[i]} does not fit in i32`);
        out[i] = Number(big[i]);
      }
      data = out;
      dtype = 'i32';
      break;
    }
  }
  const want = opts.dtype ?? (dtype === 'i32' ? 'i32' : backend.dtypes.includes(dtype) ? dtype : 'f32');
  if ((want === 'i32') !== (dtype === 'i32')) throw new SafetensorsError(file, name, `stored as ${a.dtype} ${fmtShape(a.shape)}, wanted ${want}`);
  return tensor(data, a.shape, { backend, dtype: want });
}

/** Tensors whose names start with prefix, with the prefix removed. */
export function withPrefix(arrays: ReadonlyMap<string, NamedArray>, prefix: string): Map<string, NamedArray> {
  const out = new Map<string, NamedArray>();
  for (const [k, v] of arrays) if (k.startsWith(prefix)) out.set(k.slice(prefix.length), v);
  return out;
}
