// Optimizers that update parameters in place (AdamW through the backend's fused kernel, SGD with
// momentum through noGrad ops copied back), gradient-norm clipping without a readback, and
// optimizer state dicts for checkpoints.

import { noGrad } from '../tensor/autograd.js';
import type { AdamWUpdate, Backend } from '../tensor/backend.js';
import { scalar, zerosLike } from '../tensor/ops/creation.js';
import { add, mul, sqrt, sub } from '../tensor/ops/elementwise.js';
import { clone } from '../tensor/ops/movement.js';
import { sumOfSquares } from '../tensor/ops/reduce.js';
import { keep, tidy } from '../tensor/scope.js';
import { fmtShape, shapesEqual } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { copyInto, Module } from './module.js';

/** Parameters by name: a module, or [name, tensor] pairs such as module.namedParameters(). */
export type NamedParams = Module | Iterable<readonly [string, Tensor]>;

/** Optimizer state for a checkpoint: per-parameter tensors named `<param>.<slot>` and step counts. */
export interface OptimizerState {
  tensors: Map<string, Tensor>;
  steps: Map<string, number>;
}

function named(params: NamedParams): [string, Tensor][] {
  const list = params instanceof Module ? params.namedParameters() : [...params].map(([n, t]) => [n, t] as [string, Tensor]);
  const seen = new Set<string>();
  for (const [n] of list) {
    if (seen.has(n)) throw new Error(`optimizer: parameter name '${n}' appears twice`);
    seen.add(n);
  }
  return list;
}

function checkGrad(name: string, p: Tensor, g: Tensor): void {
  if (!shapesEqual(p.shape, g.shape) || p.dtype !== g.dtype) {
    throw new Error(`optimizer: gradient of '${name}' is ${fmtShape(g.shape)} ${g.dtype}, the parameter ${fmtShape(p.shape)} ${p.dtype}`);
  }
}

/** Shared bookkeeping: named slots per parameter, step counts, state dicts, zeroGrad, dispose. */
abstract class Optimizer {
  protected readonly params: [string, Tensor][];
  protected readonly slots = new Map<string, Map<string, Tensor>>();
  protected readonly steps = new Map<string, number>();

  constructor(params: NamedParams, private readonly slotNames: readonly string[]) {
    this.params = named(params);
  }

  /** Applies one update to every parameter that has a gradient (others are skipped, as in PyTorch). */
  abstract step(): void;

  protected slot(name: string, p: Tensor, slot: string, make: () => Tensor = () => zerosLike(p)): Tensor {
    let s = this.slots.get(name);
    if (!s) this.slots.set(name, (s = new Map()));
    let t = s.get(slot);
    if (!t) s.set(slot, (t = keep(make())));
    return t;
  }

  /** Frees the gradients of the optimized parameters. */
  zeroGrad(): void {
    for (const [, p] of this.params) {
      p.grad?.dispose();
      p.grad = null;
    }
  }

  /** The optimizer's own state tensors (not copies) and step counts. */
  stateDict(): OptimizerState {
    const tensors = new Map<string, Tensor>();
    for (const [name, s] of this.slots) for (const [slot, t] of s) tensors.set(`${name}.${slot}`, t);
    return { tensors, steps: new Map(this.steps) };
  }

  /** Copies state in (checked first: unknown names and shape mismatches are errors naming the tensor). */
  loadStateDict(state: OptimizerState): void {
    const byName = new Map(this.params);
    const plan: [string, Tensor, string, Tensor][] = [];
    for (const [key, t] of state.tensors) {
      const dot = key.lastIndexOf('.');
      const [name, slot] = [key.slice(0, dot), key.slice(dot + 1)];
      const p = byName.get(name);
      if (!p || !this.slotNames.includes(slot)) throw new Error(`optimizer.loadStateDict: unexpected state '${key}'`);
      if (!shapesEqual(p.shape, t.shape) || p.dtype !== t.dtype) {
        throw new Error(`optimizer.loadStateDict: '${key}' is ${fmtShape(t.shape)} ${t.dtype}, the parameter ${fmtShape(p.shape)} ${p.dtype}`);
      }
      plan.push([name, p, slot, t]);
    }
    for (const [name] of state.steps) if (!byName.has(name)) throw new Error(`optimizer.loadStateDict: step count for unknown parameter '${name}'`);
    for (const [name, p, slot, t] of plan) copyInto(this.slot(name, p, slot), t);
    this.steps.clear();
    for (const [name, n] of state.steps) this.steps.set(name, n);
  }

  dispose(): void {
    for (const s of this.slots.values()) for (const t of s.values()) t.dispose();
    this.slots.clear();
    this.steps.clear();
  }
}

export interface AdamWOptions {
  lr: number;
  /** Default [0.9, 0.999]. */
  betas?: readonly [number, number];
  /** Default 1e-8. */
  eps?: number;
  /** Decoupled weight decay (default 0.01, as torch.optim.AdamW). */
  weightDecay?: number;
  /** Which parameters decay (default all); e.g. exclude biases and LayerNorm weights. */
  decay?: (name: string, p: Tensor) => boolean;
}

/**
 * AdamW (Loshchilov & Hutter), PyTorch's formula: p ← p(1 − lr·wd) − lr · m̂ / (√v̂ + eps), with
 * bias-corrected moments. Runs the backend's in-place kernel, so parameters keep their identity.
 * State slots: exp_avg, exp_avg_sq.
 */
export class AdamW extends Optimizer {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  private readonly decay: (name: string, p: Tensor) => boolean;

  constructor(params: NamedParams, opts: AdamWOptions) {
    super(params, ['exp_avg', 'exp_avg_sq']);
    this.lr = opts.lr;
    [this.beta1, this.beta2] = opts.betas ?? [0.9, 0.999];
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0.01;
    this.decay = opts.decay ?? (() => true);
  }

  /** Parameters whose step count the last step() advanced (see revertStepCounts). */
  private lastStepped: string[] = [];

  /**
   * One update of every parameter with a gradient, batched into the backend's multi-tensor kernel.
   * With a gate (a one-element tensor on the parameters' device), the update happens only where
   * gate != 0, decided on the device; the step counts advance either way, so a caller that later
   * reads a zero gate calls revertStepCounts().
   */
  step(opts: { gate?: Tensor } = {}): void {
    const byBackend = new Map<Backend, AdamWUpdate[]>();
    this.lastStepped = [];
    for (const [name, p] of this.params) {
      const g = p.grad;
      if (!g) continue;
      checkGrad(name, p, g);
      const m = this.slot(name, p, 'exp_avg');
      const v = this.slot(name, p, 'exp_avg_sq');
      const step = (this.steps.get(name) ?? 0) + 1;
      this.steps.set(name, step);
      this.lastStepped.push(name);
      const list = byBackend.get(p.backend) ?? [];
      byBackend.set(p.backend, list);
      list.push({
        param: p.storage, grad: g.storage, m: m.storage, v: v.storage,
        p: { lr: this.lr, beta1: this.beta1, beta2: this.beta2, eps: this.eps, weightDecay: this.decay(name, p) ? this.weightDecay : 0, step },
      });
    }
    const gate = opts.gate;
    if (gate && (gate.size !== 1 || gate.dtype !== 'f32')) throw new Error(`AdamW.step: the gate must be one f32 element, got ${gate.dtype} [${gate.shape.join(', ')}]`);
    for (const [backend, updates] of byBackend) {
      if (gate && gate.backend !== backend) throw new Error('AdamW.step: the gate lives on another backend than the parameters');
      backend.adamwMany(updates, gate?.storage ?? null);
    }
  }

  /** Undoes the step counts of the last step() (its gated update turned out not to happen). */
  revertStepCounts(): void {
    for (const name of this.lastStepped) {
      const n = (this.steps.get(name) ?? 1) - 1;
      if (n > 0) this.steps.set(name, n);
      else this.steps.delete(name);
    }
    this.lastStepped = [];
  }
}

export interface SGDOptions {
  lr: number;
  momentum?: number;
  dampening?: number;
  /** L2 penalty added to the gradient (coupled, as torch.optim.SGD). */
  weightDecay?: number;
  nesterov?: boolean;
}

/**
 * SGD as torch.optim.SGD: d = g + wd·p; buf = d on the first step, then momentum·buf + (1 − dampening)·d;
 * d = d + momentum·buf (Nesterov) or buf; p ← p − lr·d. Computed under noGrad and copied back
 * into the parameter's storage. State slot: momentum_buffer.
 */
export class SGD extends Optimizer {
  lr: number;
  momentum: number;
  dampening: number;
  weightDecay: number;
  nesterov: boolean;

  constructor(params: NamedParams, opts: SGDOptions) {
    super(params, ['momentum_buffer']);
    this.lr = opts.lr;
    this.momentum = opts.momentum ?? 0;
    this.dampening = opts.dampening ?? 0;
    this.weightDecay = opts.weightDecay ?? 0;
    this.nesterov = opts.nesterov ?? false;
    if (this.nesterov && (this.momentum <= 0 || this.dampening !== 0)) throw new Error('SGD: Nesterov momentum needs momentum > 0 and dampening 0');
  }

  step(): void {
    for (const [name, p] of this.params) {
      const g = p.grad;
      if (!g) continue;
      checkGrad(name, p, g);
      this.steps.set(name, (this.steps.get(name) ?? 0) + 1);
      noGrad(() =>
        tidy(() => {
          let d = this.weightDecay !== 0 ? add(g, mul(p, this.weightDecay)) : g;
          if (this.momentum !== 0) {
            const fresh = !this.slots.get(name)?.has('momentum_buffer');
            const buf = this.slot(name, p, 'momentum_buffer', () => clone(d));
            if (!fresh) copyInto(buf, add(mul(buf, this.momentum), mul(d, 1 - this.dampening)));
            d = this.nesterov ? add(d, mul(buf, this.momentum)) : buf;
          }
          copyInto(p, sub(p, mul(d, this.lr)));
        }),
      );
    }
  }
}

/**
 * Scales all gradients in place by min(1, maxNorm / (‖g‖ + 1e-6)), where ‖g‖ is the global L2
 * norm over every parameter's gradient, and returns that norm (before clipping) as a scalar tensor.
 * Nothing is read back: the scale is applied on the device; `await norm.item()` when logging.
 * The caller owns (disposes) the returned tensor.
 */
export function clipGradNorm(params: Iterable<Tensor>, maxNorm: number): Tensor {
  const grads = [...params].flatMap((p) => (p.grad ? [p.grad] : []));
  if (grads.length === 0) return scalar(0);
  // Two multi-tensor kernels (squares, then scaling) instead of a few ops per gradient.
  const norm = noGrad(() => tidy(() => sqrt(sumOfSquares(grads))));
  grads[0].backend.clipByNorm(grads.map((g) => g.storage), norm.storage, maxNorm);
  return norm;
}
