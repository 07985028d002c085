// Module: the container of named parameters, buffers and submodules that layers, models and
// optimizers share. Names are dotted paths (PyTorch/Hugging Face style) so checkpoints convert.

import type { Backend } from '../tensor/backend.js';
import type { DType } from '../tensor/dtype.js';
import type { Generator } from '../tensor/random/philox.js';
import { keep } from '../tensor/scope.js';
import { contiguousStrides, fmtShape, shapesEqual } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';

/** Where a module's tensors live and how they are initialized. */
export interface ModuleOptions {
  dtype?: DType;
  backend?: Backend;
  /** Seeded generator for the initial values (default: the engine's default generator). */
  generator?: Generator;
}

/**
 * Overwrites dst's values with src's, in place: every holder of dst (its module, an optimizer's
 * state keyed by it) keeps seeing the live values because the tensor's identity does not change.
 * Not for tensors a pending backward still needs (it would see the new values).
 */
export function copyInto(dst: Tensor, src: Tensor): void {
  if (!shapesEqual(dst.shape, src.shape) || dst.dtype !== src.dtype) {
    throw new Error(`copyInto: cannot copy ${src.label()} into ${dst.label()} (shape or dtype differs)`);
  }
  const strides = contiguousStrides(dst.shape);
  if (src.backend !== dst.backend) {
    // A host-readable source (CPU) can be uploaded synchronously; anything else must be moved first.
    if (!src.backend.readSync) throw new Error(`copyInto: ${src.label()} lives on ${src.backend.name}; move it to ${dst.backend.name} with await t.to(backend) first`);
    const storage = dst.backend.upload(dst.dtype, src.dataSync());
    dst.backend.copy(storage, dst.storage, dst.shape, strides, 0, strides, 0);
    dst.backend.free(storage);
    return;
  }
  dst.backend.copy(src.storage, dst.storage, dst.shape, strides, 0, strides, 0);
}

export interface LoadStateDictOptions {
  /** Missing and unexpected keys are errors (default true); otherwise they are reported. */
  strict?: boolean;
}

export interface LoadStateDictResult {
  missing: string[];
  unexpected: string[];
}

type Kind = 'param' | 'buffer';

export class Module {
  /** Training mode (dropout active, spectral norm iterating); set with train()/eval(). */
  training = true;
  private readonly ownParams = new Map<string, Tensor>();
  private readonly ownBuffers = new Map<string, Tensor>();
  private readonly children = new Map<string, Module>();
  private prefix = '';

  /** Registers a trainable tensor: kept out of every scope, requiresGrad, named by its path. */
  protected param(name: string, t: Tensor): Tensor {
    this.checkNew(name);
    if (t.dtype === 'i32') throw new Error(`Module: parameter '${this.prefix}${name}' must be floating point, got ${t.label()}`);
    keep(t);
    t.requiresGrad = true;
    t.name = this.prefix + name;
    this.ownParams.set(name, t);
    return t;
  }

  /** Registers a persistent non-trainable tensor (saved in the state dict, never given a gradient). */
  protected buffer(name: string, t: Tensor): Tensor {
    this.checkNew(name);
    keep(t);
    t.requiresGrad = false;
    t.name = this.prefix + name;
    this.ownBuffers.set(name, t);
    return t;
  }

  /** Registers a submodule; its tensors are renamed under this module's path. */
  protected module<M extends Module>(name: string, m: M): M {
    this.checkNew(name);
    this.children.set(name, m);
    m.setPrefix(`${this.prefix}${name}.`);
    return m;
  }

  private checkNew(name: string): void {
    if (name === '' || name.includes('.')) throw new Error(`Module: invalid name '${name}' (non-empty, no dots)`);
    if (this.ownParams.has(name) || this.ownBuffers.has(name) || this.children.has(name)) {
      throw new Error(`Module: '${this.prefix}${name}' is already registered`);
    }
  }

  private setPrefix(prefix: string): void {
    this.prefix = prefix;
    for (const [n, t] of this.ownParams) t.name = prefix + n;
    for (const [n, t] of this.ownBuffers) t.name = prefix + n;
    for (const [n, c] of this.children) c.setPrefix(`${prefix}${n}.`);
  }

  /** PyTorch's order: a module's own parameters, then its buffers, then each child in registration order. */
  private collect(kind: Kind | 'both', prefix: string, out: [string, Tensor][]): void {
    if (kind !== 'buffer') for (const [n, t] of this.ownParams) out.push([prefix + n, t]);
    if (kind !== 'param') for (const [n, t] of this.ownBuffers) out.push([prefix + n, t]);
    for (const [n, c] of this.children) c.collect(kind, `${prefix}${n}.`, out);
  }

  namedParameters(): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    this.collect('param', '', out);
    return out;
  }

  parameters(): Tensor[] {
    return this.namedParameters().map(([, t]) => t);
  }

  namedBuffers(): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    this.collect('buffer', '', out);
    return out;
  }

  namedModules(): [string, Module][] {
    const out: [string, Module][] = [['', this]];
    for (const [n, c] of this.children) for (const [sub, m] of c.namedModules()) out.push([sub ? `${n}.${sub}` : n, m]);
    return out;
  }

  /** Parameters and buffers by dotted name. The tensors are the module's own (not copies). */
  stateDict(): Map<string, Tensor> {
    const out: [string, Tensor][] = [];
    this.collect('both', '', out);
    return new Map(out);
  }

  /**
   * Copies values from a state dict into this module's tensors in place. Everything is checked
   * before anything is written, so a bad checkpoint leaves the module untouched.
   */
  loadStateDict(state: ReadonlyMap<string, Tensor>, opts: LoadStateDictOptions = {}): LoadStateDictResult {
    const own = this.stateDict();
    const missing = [...own.keys()].filter((k) => !state.has(k));
    const unexpected = [...state.keys()].filter((k) => !own.has(k));
    if ((opts.strict ?? true) && (missing.length > 0 || unexpected.length > 0)) {
      const parts = [];
      if (missing.length > 0) parts.push(`missing keys: ${missing.join(', ')}`);
      if (unexpected.length > 0) parts.push(`unexpected keys: ${unexpected.join(', ')}`);
      throw new Error(`loadStateDict: ${parts.join('; ')}`);
    }
    for (const [k, dst] of own) {
      const src = state.get(k);
      if (!src) continue;
      if (!shapesEqual(src.shape, dst.shape)) {
        throw new Error(`loadStateDict: '${k}' has shape ${fmtShape(src.shape)} in the state dict but ${fmtShape(dst.shape)} in the module`);
      }
      if (src.dtype !== dst.dtype) throw new Error(`loadStateDict: '${k}' has dtype ${src.dtype} in the state dict but ${dst.dtype} in the module`);
    }
    for (const [k, dst] of own) {
      const src = state.get(k);
      if (src && src !== dst) copyInto(dst, src);
    }
    return { missing, unexpected };
  }

  /** The parameter or buffer at a dotted path. */
  getTensor(name: string): Tensor {
    const t = this.stateDict().get(name);
    if (!t) throw new Error(`Module: no parameter or buffer named '${name}'`);
    return t;
  }

  /** Replaces the values of the named parameter or buffer in place (identity stays the same). */
  assign(name: string, values: Tensor): void {
    const dst = this.getTensor(name);
    if (!shapesEqual(dst.shape, values.shape)) throw new Error(`assign: '${name}' is ${fmtShape(dst.shape)}, got ${fmtShape(values.shape)}`);
    copyInto(dst, values);
  }

  train(mode = true): this {
    for (const [, m] of this.namedModules()) m.training = mode;
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /** Stops (freeze) or restarts (unfreeze) gradients to every parameter. */
  freeze(): this {
    for (const p of this.parameters()) p.requiresGrad = false;
    return this;
  }

  unfreeze(): this {
    for (const p of this.parameters()) p.requiresGrad = true;
    return this;
  }

  numParameters(): number {
    return this.parameters().reduce((n, p) => n + p.size, 0);
  }

  /** Frees and clears every parameter's gradient (the next backward starts from zero). */
  zeroGrad(): void {
    for (const p of this.parameters()) {
      p.grad?.dispose();
      p.grad = null;
    }
  }

  /** Frees every parameter, gradient and buffer. The module is unusable afterwards. */
  dispose(): void {
    for (const t of this.stateDict().values()) t.dispose();
  }
}

/** An indexed list of submodules, named 0, 1, ... like PyTorch's nn.ModuleList. */
export class ModuleList<M extends Module = Module> extends Module {
  private readonly items: M[] = [];

  constructor(items: Iterable<M> = []) {
    super();
    for (const m of items) this.push(m);
  }

  push(m: M): M {
    this.items.push(m);
    return this.module(String(this.items.length - 1), m);
  }

  at(i: number): M {
    const m = this.items[i];
    if (!m) throw new Error(`ModuleList: index ${i} out of range (length ${this.items.length})`);
    return m;
  }

  get length(): number {
    return this.items.length;
  }

  [Symbol.iterator](): Iterator<M> {
    return this.items[Symbol.iterator]();
  }
}

/** A module with a tensor-to-tensor forward. */
export interface Forward {
  forward(x: Tensor): Tensor;
}

/** Submodules applied in order (PyTorch's nn.Sequential; names 0, 1, ...). */
export class Sequential extends ModuleList<Module & Forward> {
  forward(x: Tensor): Tensor {
    let y = x;
    for (const m of this) y = m.forward(y);
    return y;
  }
}
