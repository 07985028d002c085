// The basic layers: Linear (PyTorch [out, in] or GPT-2 Conv1D [in, out] weight layout),
// Embedding, LayerNorm, Dropout and GELU.

import { defaultGenerator } from '../tensor/engine.js';
import type { Generator } from '../tensor/random/philox.js';
import type { Tensor } from '../tensor/tensor.js';
import { gelu } from '../tensor/ops/elementwise.js';
import { embedding } from '../tensor/ops/indexing.js';
import { matmulT, type MatmulEpilogueOptions } from '../tensor/ops/matmul.js';
import { reshape } from '../tensor/ops/movement.js';
import { dropout, layerNorm } from '../tensor/ops/nn.js';
import { fmtShape, shapesEqual, ShapeError } from '../tensor/shape.js';
import * as init from './init.js';
import { Module, type ModuleOptions } from './module.js';

/** 'torch': weight [out, in] (nn.Linear). 'conv1d': weight [in, out] (Hugging Face GPT-2's Conv1D). */
export type LinearLayout = 'torch' | 'conv1d';

/**
 * x [..., in] → [..., out]. The leading dims are flattened into one so the weight gradient is a
 * single 2-D matmul rather than a per-batch product summed afterwards. The epilogue options fuse
 * the neighbours a transformer puts after a linear layer into its matmul kernel: a GELU
 * (activation 'gelu' or 'geluTanh': gelu(linear(x))) or a residual of the output's shape
 * (add(residual, linear(x))), each bit for bit the separate op, one pass over the output fewer.
 */
export function linear(x: Tensor, weight: Tensor, bias: Tensor | null, layout: LinearLayout = 'torch', epilogue: MatmulEpilogueOptions = {}): Tensor {
  const [inF, outF] = layout === 'torch' ? [weight.shape[1], weight.shape[0]] : [weight.shape[0], weight.shape[1]];
  if (x.shape[x.rank - 1] !== inF) throw new ShapeError('linear', `input ${fmtShape(x.shape)} does not end in ${inF} (weight ${fmtShape(weight.shape)}, ${layout} layout)`);
  const lead = x.shape.slice(0, -1);
  const rows = x.size / inF;
  // The bias rides in the matmul kernel's epilogue (one pass instead of matmul + broadcast add).
  if (bias && (bias.rank !== 1 || bias.shape[0] !== outF)) throw new ShapeError('linear', `bias ${fmtShape(bias.shape)} must be [${outF}] (weight ${fmtShape(weight.shape)}, ${layout} layout)`);
  const r = epilogue.residual;
  if (r && !shapesEqual(r.shape, [...lead, outF])) throw new ShapeError('linear', `residual ${fmtShape(r.shape)} must have the output's shape ${fmtShape([...lead, outF])}`);
  // The residual goes in as it is ([..., out]), so its gradient comes straight from the matmul.
  const y = matmulT(reshape(x, [rows, inF]), weight, false, layout === 'torch', bias, epilogue);
  return reshape(y, [...lead, outF]);
}

export interface LinearOptions extends ModuleOptions {
  /** Default true. */
  bias?: boolean;
  /** Default 'torch'. */
  layout?: LinearLayout;
  /** Default PyTorch's fan-in uniform (bias too); any other init gives zero biases. */
  init?: init.WeightInit;
}

export class Linear extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  readonly layout: LinearLayout;

  constructor(readonly inFeatures: number, readonly outFeatures: number, opts: LinearOptions = {}) {
    super();
    this.layout = opts.layout ?? 'torch';
    const spec = opts.init ?? { kind: 'fanInUniform' };
    const shape = this.layout === 'torch' ? [outFeatures, inFeatures] : [inFeatures, outFeatures];
    this.weight = this.param('weight', init.weight(shape, spec, inFeatures, opts));
    this.bias = opts.bias === false ? null
      : this.param('bias', spec.kind === 'fanInUniform' ? init.uniform([outFeatures], -1 / Math.sqrt(inFeatures), 1 / Math.sqrt(inFeatures), opts) : init.zeros([outFeatures], opts));
  }

  /** linear(x) with this layer's parameters; epilogue as linear's (a GELU or a residual fused in). */
  forward(x: Tensor, epilogue: MatmulEpilogueOptions = {}): Tensor {
    return linear(x, this.weight, this.bias, this.layout, epilogue);
  }
}

export interface EmbeddingOptions extends ModuleOptions {
  /** Std of the normal init (PyTorch's default 1; GPT-2 uses 0.02). */
  std?: number;
}

/** A lookup table weight [num, dim]: ids of any shape → [...ids.shape, dim]. */
export class Embedding extends Module {
  readonly weight: Tensor;

  constructor(readonly num: number, readonly dim: number, opts: EmbeddingOptions = {}) {
    super();
    this.weight = this.param('weight', init.normal([num, dim], opts.std ?? 1, opts));
  }

  forward(ids: Tensor): Tensor {
    return embedding(this.weight, ids);
  }
}

export interface LayerNormOptions extends ModuleOptions {
  eps?: number;
}

/** LayerNorm over the last dim with learned weight (ones) and bias (zeros); eps 1e-5. */
export class LayerNorm extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor;
  readonly eps: number;

  constructor(readonly dim: number, opts: LayerNormOptions = {}) {
    super();
    this.eps = opts.eps ?? 1e-5;
    this.weight = this.param('weight', init.ones([dim], opts));
    this.bias = this.param('bias', init.zeros([dim], opts));
  }

  forward(x: Tensor): Tensor {
    return layerNorm(x, this.weight, this.bias, this.eps);
  }
}

/** Dropout active in training mode only; its masks come from the given generator (or the default one at call time). */
export class Dropout extends Module {
  constructor(readonly p: number, readonly generator?: Generator) {
    super();
  }

  /** Whether forward draws a mask (training mode, p > 0); else it is the identity. */
  get active(): boolean {
    return this.training && this.p !== 0;
  }

  forward(x: Tensor): Tensor {
    if (!this.active) return x;
    return dropout(x, this.p, { training: true, generator: this.generator ?? defaultGenerator() });
  }
}

/** GELU: 'none' is the exact erf form (PyTorch's default), 'tanh' GPT-2's gelu_new. */
export class GELU extends Module {
  constructor(readonly approximate: 'none' | 'tanh' = 'none') {
    super();
  }

  forward(x: Tensor): Tensor {
    return gelu(x, this.approximate);
  }
}
