// The Tensor: a shape, a dtype and a reference-counted backend storage, plus the autodiff node
// that made it. Ops live in ops/; this file holds only what every op needs.

import type { Backend, Storage } from './backend.js';
import { type DType, type TypedArray } from './dtype.js';
import { contiguousStrides, fmtShape, type Shape, ShapeError, sizeOf } from './shape.js';
import { trackTensor, untrackTensor } from './scope.js';

/** A storage shared by a tensor and its reshaped views; freed when the last one is disposed. */
class SharedStorage {
  refs = 1;
  constructor(readonly storage: Storage) {}
}

/** How a non-leaf tensor was made: its inputs, extra tensors saved for backward, and the VJP. */
export interface GradNode {
  readonly op: string;
  readonly inputs: readonly Tensor[];
  /**
   * Whether each input required a gradient when the op ran. Captured then, as in PyTorch: freezing
   * or unfreezing a parameter after the forward does not change where this graph sends gradients.
   */
  readonly needsGrad: readonly boolean[];
  readonly saved: readonly Tensor[];
  /**
   * Returns the gradient of each input (null where an input needs none: see needsGrad). `pending`
   * offers the gradient already accumulated for an input by the consumers backward has visited
   * (see PendingGrads): a backward whose kernel can add it in the same pass takes it and returns
   * the sum for that input.
   */
  readonly backward: (grad: Tensor, needsGrad: readonly boolean[], pending?: PendingGrads) => readonly (Tensor | null)[];
}

/**
 * The gradients accumulated so far for a node's inputs, during backward. take(k) hands over input
 * k's (null when it has none yet, or when the same tensor was already taken as another input);
 * once taken, the gradient the backward returns for input k must already include it, and backward
 * stores that as the input's gradient instead of adding the two (the add a residual connection
 * costs is folded into a kernel the op runs anyway). Read it, never modify it: it may be shared.
 */
export interface PendingGrads {
  take(k: number): Tensor | null;
}

let nextId = 1;
let liveTensors = 0;

export class Tensor {
  readonly id = nextId++;
  readonly shape: readonly number[];
  readonly dtype: DType;
  /** Whether gradients flow to (leaf) or through (non-leaf) this tensor. */
  requiresGrad = false;
  /** Accumulated gradient of a leaf tensor after backward(). */
  grad: Tensor | null = null;
  /** Set for tensors produced by a differentiable op while gradients are recorded. */
  node: GradNode | null = null;
  /** Optional name used in error messages (parameters get theirs from the module). */
  name?: string;
  private shared: SharedStorage | null;

  /** Wraps a storage; `viewOf` shares another tensor's storage (reshape). Use the creation functions instead. */
  constructor(storage: Storage, shape: Shape, viewOf?: Tensor) {
    const size = sizeOf(shape);
    if (size !== storage.size) throw new ShapeError('Tensor', `shape ${fmtShape(shape)} has ${size} elements but the storage has ${storage.size}`);
    this.shape = Object.freeze([...shape]);
    this.dtype = storage.dtype;
    if (viewOf) {
      this.shared = viewOf.live('view');
      this.shared.refs++;
    } else {
      this.shared = new SharedStorage(storage);
    }
    liveTensors++;
    trackTensor(this);
  }

  get backend(): Backend {
    return this.storage.backend;
  }

  get storage(): Storage {
    return this.live('storage').storage;
  }

  get rank(): number {
    return this.shape.length;
  }

  get size(): number {
    return sizeOf(this.shape);
  }

  get strides(): number[] {
    return contiguousStrides(this.shape);
  }

  get isDisposed(): boolean {
    return this.shared === null;
  }

  /** Whether another tensor (a reshaped view) shares this one's storage. */
  get sharesStorage(): boolean {
    return this.live('storage').refs > 1;
  }

  /** A leaf is a tensor no recorded op produced (parameters, inputs). */
  get isLeaf(): boolean {
    return this.node === null;
  }

  private live(what: string): SharedStorage {
    if (this.shared === null) {
      throw new Error(`${this.label()} was disposed; cannot use its ${what} (was it freed by a scope? keep() it or return it from the scope)`);
    }
    return this.shared;
  }

  label(): string {
    return `tensor${this.name ? ` '${this.name}'` : ` #${this.id}`} ${fmtShape(this.shape)} ${this.dtype}`;
  }

  /** Frees the storage (when no view shares it) and drops the autodiff node and gradient. */
  dispose(): void {
    if (this.shared === null) return;
    if (--this.shared.refs === 0) this.shared.storage.backend.free(this.shared.storage);
    this.shared = null;
    this.node = null;
    liveTensors--;
    untrackTensor(this);
    if (this.grad) {
      this.grad.dispose();
      this.grad = null;
    }
  }

  /** Reads the data back (a copy). One readback; on the GPU it waits for the queued work. */
  async data(): Promise<TypedArray> {
    return this.backend.read(this.storage);
  }

  /** Synchronous read where the backend allows it (the CPU backend). */
  dataSync(): TypedArray {
    const b = this.backend;
    if (!b.readSync) throw new Error(`${this.label()}: dataSync() is not available on the ${b.name} backend; use await t.data()`);
    return b.readSync(this.storage);
  }

  /** The value of a one-element tensor. */
  async item(): Promise<number> {
    if (this.size !== 1) throw new ShapeError('item', `${this.label()} has ${this.size} elements, expected 1`);
    return (await this.data())[0];
  }

  itemSync(): number {
    if (this.size !== 1) throw new ShapeError('item', `${this.label()} has ${this.size} elements, expected 1`);
    return this.dataSync()[0];
  }

  /** Nested arrays, like PyTorch's tolist(). */
  async toArray(): Promise<NestedArray> {
    return nest(await this.data(), this.shape);
  }

  /** A short printed view (synchronous on the CPU; on the GPU shows shape and dtype only). */
  toString(): string {
    const head = `Tensor(${fmtShape(this.shape)}, ${this.dtype}, ${this.isDisposed ? 'disposed' : this.backend.name}${this.requiresGrad ? ', requiresGrad' : ''})`;
    if (this.isDisposed || !this.backend.readSync) return head;
    return `${head}\n${formatData(this.dataSync(), this.shape)}`;
  }
}

export type NestedArray = number | NestedArray[];

function nest(data: TypedArray, shape: readonly number[]): NestedArray {
  if (shape.length === 0) return data[0];
  const step = sizeOf(shape.slice(1));
  return Array.from({ length: shape[0] }, (_, i) => nest(data.subarray(i * step, (i + 1) * step) as TypedArray, shape.slice(1)));
}

function fmtNum(v: number): string {
  return Number.isInteger(v) ? String(v) : Math.abs(v) >= 1e4 || (Math.abs(v) < 1e-3 && v !== 0) ? v.toExponential(3) : v.toFixed(4);
}

function formatData(data: TypedArray, shape: readonly number[], edge = 3): string {
  const fmt = (off: number, dims: readonly number[], indent: string): string => {
    if (dims.length === 0) return fmtNum(data[off]);
    const n = dims[0];
    const step = sizeOf(dims.slice(1));
    const idx = n > 2 * edge ? [...Array(edge).keys(), -1, ...Array.from({ length: edge }, (_, i) => n - edge + i)] : [...Array(n).keys()];
    const parts = idx.map((i) => (i < 0 ? '...' : fmt(off + i * step, dims.slice(1), indent + ' ')));
    return dims.length === 1 ? `[${parts.join(', ')}]` : `[${parts.join(`,\n${indent} `)}]`;
  };
  return fmt(0, shape, '');
}

export function liveTensorCount(): number {
  return liveTensors;
}
