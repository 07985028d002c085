// Creating tensors: from data, constants, ranges and seeded random numbers.

import type { Backend } from '../backend.js';
import type { DType } from '../dtype.js';
import { defaultGenerator, getBackend } from '../engine.js';
import type { Generator } from '../random/philox.js';
import { checkShape, fmtShape, type Shape, ShapeError, sizeOf } from '../shape.js';
import { Tensor, type NestedArray } from '../tensor.js';
import { wrap } from './core.js';

export interface CreateOptions {
  dtype?: DType;
  backend?: Backend;
  requiresGrad?: boolean;
  name?: string;
}

function finish(t: Tensor, opts: CreateOptions): Tensor {
  if (opts.requiresGrad) {
    if (t.dtype === 'i32') throw new ShapeError('tensor', 'an i32 tensor cannot require grad');
    t.requiresGrad = true;
  }
  if (opts.name) t.name = opts.name;
  return t;
}

function pick(opts: CreateOptions): { backend: Backend; dtype: DType } {
  const backend = opts.backend ?? getBackend();
  const dtype = opts.dtype ?? 'f32';
  if (!backend.dtypes.includes(dtype)) throw new Error(`the ${backend.name} backend does not support dtype ${dtype} (it has ${backend.dtypes.join(', ')})`);
  return { backend, dtype };
}

function flatten(data: NestedArray, shape: number[], out: number[], depth: number): void {
  if (Array.isArray(data)) {
    if (shape.length === depth) shape.push(data.length);
    else if (shape[depth] !== data.length) throw new ShapeError('tensor', `ragged nested array at depth ${depth}: ${data.length} vs ${shape[depth]}`);
    for (const d of data) flatten(d, shape, out, depth + 1);
  } else {
    if (depth !== shape.length) throw new ShapeError('tensor', `ragged nested array: a number at depth ${depth}`);
    out.push(data);
  }
}

/** A tensor from nested arrays or a flat array with a shape. */
export function tensor(data: NestedArray | ArrayLike<number>, shape?: Shape, opts: CreateOptions = {}): Tensor {
  const { backend, dtype } = pick(opts);
  let flat: ArrayLike<number>;
  let inferred: number[];
  if (typeof data === 'number') {
    flat = [data];
    inferred = [];
  } else if (Array.isArray(data)) {
    const out: number[] = [];
    inferred = [];
    flatten(data, inferred, out, 0);
    flat = out;
  } else {
    flat = data as ArrayLike<number>;
    inferred = [flat.length];
  }
  const finalShape = shape ? [...shape] : inferred;
  checkShape('tensor', finalShape);
  if (sizeOf(finalShape) !== flat.length) throw new ShapeError('tensor', `${flat.length} values do not fill shape ${fmtShape(finalShape)}`);
  return finish(wrap(backend.upload(dtype, flat), finalShape), opts);
}

export function scalar(value: number, opts: CreateOptions = {}): Tensor {
  return tensor([value], [], opts);
}

export function full(shape: Shape, value: number, opts: CreateOptions = {}): Tensor {
  checkShape('full', shape);
  const { backend, dtype } = pick(opts);
  const s = backend.alloc(dtype, sizeOf(shape));
  backend.fill(s, value);
  return finish(wrap(s, shape), opts);
}

export function zeros(shape: Shape, opts: CreateOptions = {}): Tensor {
  return full(shape, 0, opts);
}

export function ones(shape: Shape, opts: CreateOptions = {}): Tensor {
  return full(shape, 1, opts);
}

export function zerosLike(t: Tensor, opts: CreateOptions = {}): Tensor {
  return full(t.shape, 0, { dtype: t.dtype, backend: t.backend, ...opts });
}

export function onesLike(t: Tensor, opts: CreateOptions = {}): Tensor {
  return full(t.shape, 1, { dtype: t.dtype, backend: t.backend, ...opts });
}

/** [start, start + step, ...) up to end (exclusive). */
export function arange(start: number, end?: number, step = 1, opts: CreateOptions = {}): Tensor {
  if (end === undefined) [start, end] = [0, start];
  if (step === 0) throw new ShapeError('arange', 'step must not be 0');
  const n = Math.max(0, Math.ceil((end - start) / step));
  return tensor(Array.from({ length: n }, (_, i) => start + i * step), [n], opts);
}

export interface RandomOptions extends CreateOptions {
  generator?: Generator;
}

function random(kind: 'uniform' | 'normal', shape: Shape, opts: RandomOptions): Tensor {
  checkShape(kind, shape);
  const { backend, dtype } = pick(opts);
  if (dtype === 'i32') throw new ShapeError(kind, 'random values need a floating-point dtype');
  const n = sizeOf(shape);
  const gen = opts.generator ?? defaultGenerator();
  const offset = gen.next(n);
  return finish(wrap(backend.random(kind, dtype, n, gen.key, offset), shape), opts);
}

/** Uniform in [0, 1), from the counter-based generator (same values on every backend). */
export function rand(shape: Shape, opts: RandomOptions = {}): Tensor {
  return random('uniform', shape, opts);
}

/** Standard normal, from the counter-based generator. */
export function randn(shape: Shape, opts: RandomOptions = {}): Tensor {
  return random('normal', shape, opts);
}
