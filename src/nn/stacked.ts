// Layers for a stack of K models of the same shape evaluated as one: every parameter carries a
// leading dim K (member k's tensor is slice k), inputs are [K, ..., features], and each op runs once
// for all members (batched matmuls with per-member weights, one layerNorm with per-member affine,
// one batched power iteration) instead of once per member. CriticPair is built from these.

import { wrap } from '../tensor/ops/core.js';
import { matmulT, type MatmulEpilogueOptions } from '../tensor/ops/matmul.js';
import { reshape } from '../tensor/ops/movement.js';
import { layerNorm } from '../tensor/ops/nn.js';
import { spectralNormalize } from '../tensor/ops/spectral.js';
import { contiguousStrides, fmtShape, shapesEqual, ShapeError, sizeOf } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import * as init from './init.js';
import { Module, type ModuleOptions } from './module.js';

/** Member k of a stacked tensor [K, ...shape], as a new tensor of shape (a copy, no graph). */
export function member(t: Tensor, k: number): Tensor {
  const shape = t.shape.slice(1);
  const n = sizeOf(shape);
  if (!(Number.isInteger(k) && k >= 0 && k < t.shape[0])) throw new RangeError(`member: index ${k} out of range for ${t.label()}`);
  const out = t.backend.alloc(t.dtype, n);
  const strides = contiguousStrides(shape);
  t.backend.copy(t.storage, out, shape, strides, k * n, strides, 0);
  return wrap(out, shape);
}

/** Overwrites member k of a stacked tensor dst [K, ...src.shape] with src's values, in place. */
export function setMember(dst: Tensor, k: number, src: Tensor): void {
  if (!shapesEqual(dst.shape.slice(1), src.shape) || dst.dtype !== src.dtype || !(k >= 0 && k < dst.shape[0])) {
    throw new ShapeError('setMember', `cannot write ${src.label()} into member ${k} of ${dst.label()}`);
  }
  const b = dst.backend;
  const strides = contiguousStrides(src.shape);
  if (src.backend !== b) {
    if (!src.backend.readSync) throw new Error(`setMember: ${src.label()} lives on ${src.backend.name}; move it to ${b.name} first`);
    const staged = b.upload(src.dtype, src.dataSync());
    b.copy(staged, dst.storage, src.shape, strides, 0, strides, k * src.size);
    b.free(staged);
    return;
  }
  b.copy(src.storage, dst.storage, src.shape, strides, 0, strides, k * src.size);
}

function checkStack(op: string, x: Tensor, count: number, features: number): void {
  if (x.rank < 2 || x.shape[0] !== count || x.shape[x.rank - 1] !== features) {
    throw new ShapeError(op, `input ${fmtShape(x.shape)} must be [${count}, ..., ${features}]`);
  }
}

/**
 * x [K, ..., in] → [K, ..., out] with member k's y = x W_kᵀ + b_k; W [K, out, in], b [K, out].
 * The epilogue options as linear's: a GELU, or a residual [K, ..., out], fused into the matmul.
 */
export function stackedLinear(x: Tensor, weight: Tensor, bias: Tensor | null, epilogue: MatmulEpilogueOptions = {}): Tensor {
  const [K, outF, inF] = weight.shape;
  checkStack('stackedLinear', x, K, inF);
  const lead = x.shape.slice(0, -1);
  const rows = x.size / (K * inF);
  const r = epilogue.residual;
  if (r && !shapesEqual(r.shape, [...lead, outF])) throw new ShapeError('stackedLinear', `residual ${fmtShape(r.shape)} must have the output's shape ${fmtShape([...lead, outF])}`);
  // One batched matmul over the members, each member's bias added in its epilogue.
  // The residual goes in as it is ([K, ..., out]), so its gradient comes straight from the matmul.
  const y = matmulT(reshape(x, [K, rows, inF]), weight, false, true, bias, epilogue);
  return reshape(y, [...lead, outF]);
}

/** K Linear layers (PyTorch layout): weight [K, out, in], bias [K, out]. Values are set by the owner. */
export class StackedLinear extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor;

  constructor(readonly count: number, readonly inFeatures: number, readonly outFeatures: number, opts: ModuleOptions = {}) {
    super();
    this.weight = this.param('weight', init.zeros([count, outFeatures, inFeatures], opts));
    this.bias = this.param('bias', init.zeros([count, outFeatures], opts));
  }

  forward(x: Tensor, epilogue: MatmulEpilogueOptions = {}): Tensor {
    return stackedLinear(x, this.weight, this.bias, epilogue);
  }
}

/** K LayerNorms over the last dim: weight and bias [K, dim]; x [K, ..., dim]. */
export class StackedLayerNorm extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor;

  constructor(readonly count: number, readonly dim: number, opts: ModuleOptions & { eps?: number } = {}, readonly eps = opts.eps ?? 1e-5) {
    super();
    this.weight = this.param('weight', init.ones([count, dim], opts));
    this.bias = this.param('bias', init.zeros([count, dim], opts));
  }

  forward(x: Tensor): Tensor {
    checkStack('StackedLayerNorm', x, this.count, this.dim);
    return layerNorm(x, this.weight, this.bias, this.eps);
  }
}

/**
 * K spectral-norm Linear layers (SpectralNormLinear's semantics per member): weight_orig
 * [K, out, in], bias [K, out], buffers weight_u [K, out] and weight_v [K, in]; one spectralNormalize
 * kernel per forward (with the power iteration in training mode) for all members.
 */
export class StackedSpectralNormLinear extends Module {
  readonly weight_orig: Tensor;
  readonly bias: Tensor;
  readonly weight_u: Tensor;
  readonly weight_v: Tensor;

  constructor(readonly count: number, readonly inFeatures: number, readonly outFeatures: number, opts: ModuleOptions = {}, readonly eps = 1e-12) {
    super();
    this.weight_orig = this.param('weight_orig', init.zeros([count, outFeatures, inFeatures], opts));
    this.bias = this.param('bias', init.zeros([count, outFeatures], opts));
    this.weight_u = this.buffer('weight_u', init.zeros([count, outFeatures], opts));
    this.weight_v = this.buffer('weight_v', init.zeros([count, inFeatures], opts));
  }

  /** W_k/σ_k for every member, after one power iteration on every member's u and v in training mode. */
  weight(): Tensor {
    return spectralNormalize(this.weight_orig, this.weight_u, this.weight_v, { eps: this.eps, iterate: this.training });
  }

  forward(x: Tensor, epilogue: MatmulEpilogueOptions = {}): Tensor {
    return stackedLinear(x, this.weight(), this.bias, epilogue);
  }
}
