// Spectral normalization of a Linear layer, as torch.nn.utils.spectral_norm: the weight is
// divided by an estimate of its largest singular value, kept by one power iteration per training
// forward, which bounds the layer's Lipschitz constant (the GAN critics rely on it).

import { isGradEnabled, noGrad } from '../tensor/autograd.js';
import { div, maximum, mul, sqrt, square } from '../tensor/ops/elementwise.js';
import { matmulT } from '../tensor/ops/matmul.js';
import { clone, reshape } from '../tensor/ops/movement.js';
import { sum } from '../tensor/ops/reduce.js';
import { tidy } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import * as init from './init.js';
import { linear } from './layers.js';
import { Module, type ModuleOptions } from './module.js';

export interface SpectralNormLinearOptions extends ModuleOptions {
  bias?: boolean;
  /** Default Xavier uniform (biases zero). */
  init?: init.WeightInit;
  /** Power iterations per training forward (default 1). */
  nPowerIterations?: number;
  /** Floor of the norms in the normalizations (default 1e-12). */
  eps?: number;
}

/** x / max(‖x‖, eps), as torch.nn.functional.normalize. */
function normalize(x: Tensor, eps: number): Tensor {
  return div(x, maximum(sqrt(sum(square(x))), eps));
}

/** y = x (W/σ)ᵀ + b with W = weight_orig [out, in]; buffers weight_u [out] and weight_v [in]. */
export class SpectralNormLinear extends Module {
  readonly weight_orig: Tensor;
  readonly bias: Tensor | null;
  readonly weight_u: Tensor;
  readonly weight_v: Tensor;
  readonly eps: number;
  readonly nPowerIterations: number;

  constructor(readonly inFeatures: number, readonly outFeatures: number, opts: SpectralNormLinearOptions = {}) {
    super();
    this.eps = opts.eps ?? 1e-12;
    this.nPowerIterations = opts.nPowerIterations ?? 1;
    this.weight_orig = this.param('weight_orig', init.weight([outFeatures, inFeatures], opts.init ?? { kind: 'xavierUniform' }, inFeatures, opts));
    this.bias = opts.bias === false ? null : this.param('bias', init.zeros([outFeatures], opts));
    const eps = this.eps;
    this.weight_u = this.buffer('weight_u', tidy(() => normalize(init.normal([outFeatures], 1, opts), eps)));
    this.weight_v = this.buffer('weight_v', tidy(() => normalize(init.normal([inFeatures], 1, opts), eps)));
  }

  /**
   * v ← normalize(Wᵀu), u ← normalize(W v), in place, without gradient: the backend's one-kernel
   * power iteration (the composed ops took a dozen dispatches per iteration).
   */
  powerIteration(): void {
    const w = this.weight_orig;
    for (let n = 0; n < this.nPowerIterations; n++) {
      w.backend.powerIteration(w.storage, this.weight_u.storage, this.weight_v.storage, this.outFeatures, this.inFeatures, this.eps);
    }
  }

  /**
   * σ = uᵀ W v with the stored u, v as constants, so its gradient flows into W only. They are
   * copied first (as PyTorch clones them): a later training forward updates the buffers in place
   * and must not change what this forward's backward sees.
   */
  sigma(): Tensor {
    const u = clone(reshape(this.weight_u, [this.outFeatures, 1]));
    const v = clone(reshape(this.weight_v, [this.inFeatures, 1]));
    return sum(mul(u, matmulT(this.weight_orig, v)));
  }

  /** W/σ, after a power iteration in training mode. */
  weight(): Tensor {
    if (this.training) this.powerIteration();
    if (this.weight_orig.requiresGrad && isGradEnabled()) return div(this.weight_orig, this.sigma());
    // Frozen (the GANPO generator step) or no gradient: W/σ is a constant of this forward, so it
    // needs no graph, and no copies of u and v to protect one (the same values).
    return noGrad(() => tidy(() => {
      const u = reshape(this.weight_u, [this.outFeatures, 1]);
      const v = reshape(this.weight_v, [this.inFeatures, 1]);
      return div(this.weight_orig, sum(mul(u, matmulT(this.weight_orig, v))));
    }));
  }

  forward(x: Tensor): Tensor {
    return linear(x, this.weight(), this.bias, 'torch');
  }
}
