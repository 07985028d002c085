// The GANPO critic (GANPO.md §4): hidden states [B, T, d_in] → one logit per sequence, through a
// spectral-norm input projection, learned positions, a pre-LN bidirectional encoder, mean pooling
// and a spectral-norm MLP head. Parameter names follow the PyTorch reference so its checkpoints load.

import { add, div, maximum, mul } from '../tensor/ops/elementwise.js';
import { cast } from '../tensor/ops/convert.js';
import { reshape, slice } from '../tensor/ops/movement.js';
import { mean, sum } from '../tensor/ops/reduce.js';
import { fmtShape, ShapeError } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Generator } from '../tensor/random/philox.js';
import { TransformerEncoder } from './encoder.js';
import * as init from './init.js';
import { GELU } from './layers.js';
import { Module, Sequential, type ModuleOptions } from './module.js';
import { SpectralNormLinear } from './spectralNorm.js';

export interface CriticConfig {
  /** Width of the hidden states it reads (the policy's d_model). */
  dIn: number;
  /** The critic's own width d_c (reference 512). */
  dModel: number;
  nLayers: number;
  nHeads: number;
  /** Longest sequence; longer inputs are cut to their first maxLen positions. */
  maxLen: number;
  dropout: number;
}

export interface CriticOptions extends ModuleOptions {
  dropoutGenerator?: Generator;
}

export class Critic extends Module {
  readonly pos_embedding: Tensor;
  readonly project_in: SpectralNormLinear;
  readonly transformer: TransformerEncoder;
  readonly head: Sequential;

  constructor(readonly config: CriticConfig, opts: CriticOptions = {}) {
    super();
    const { dIn, dModel, nLayers, nHeads, maxLen, dropout } = config;
    const xavier: init.WeightInit = { kind: 'xavierUniform' };
    // State-dict order as PyTorch's: own parameters (pos_embedding) first, then children as registered.
    this.project_in = this.module('project_in', new SpectralNormLinear(dIn, dModel, { ...opts, init: xavier }));
    this.pos_embedding = this.param('pos_embedding', init.normal([1, maxLen, dModel], 0.02, opts));
    this.transformer = this.module('transformer', new TransformerEncoder(dModel, nHeads, nLayers, { ...opts, dropout, weightInit: xavier }));
    this.head = this.module('head', new Sequential([
      new SpectralNormLinear(dModel, dModel, { ...opts, init: xavier }),
      new GELU('none'),
      new SpectralNormLinear(dModel, 1, { ...opts, init: xavier }),
    ]));
  }

  /**
   * h [B, T, d_in] → logits [B]. Without a mask every position is attended to and pooled (the
   * reference's pool 'all'); with mask [B, T] (1 = counted; the trainer builds it for pool
   * 'response' or 'nonpad') it is both the key-padding mask and the weights of a masked mean.
   */
  forward(h: Tensor, mask?: Tensor): Tensor {
    const { dIn, maxLen, dModel } = this.config;
    if (h.rank !== 3 || h.shape[2] !== dIn) throw new ShapeError('Critic', `input ${fmtShape(h.shape)} must be [B, T, ${dIn}]`);
    const [B, T0] = h.shape;
    if (mask && (mask.rank !== 2 || mask.shape[0] !== B || mask.shape[1] !== T0)) {
      throw new ShapeError('Critic', `mask ${fmtShape(mask.shape)} must be [${B}, ${T0}] like the input ${fmtShape(h.shape)}`);
    }
    const T = Math.min(T0, maxLen);
    const x0 = slice(h, 1, 0, T);
    const m = mask ? cast(slice(mask, 1, 0, T), h.dtype) : undefined;
    const x = this.transformer.forward(add(this.project_in.forward(x0), slice(this.pos_embedding, 1, 0, T)), m);
    let pooled: Tensor;
    if (m) {
      // An all-zero row pools to 0 rather than dividing by zero.
      const count = maximum(sum(m, 1, true), 1);
      pooled = div(sum(mul(x, reshape(m, [B, T, 1])), 1), count);
    } else {
      pooled = mean(x, 1);
    }
    return reshape(this.head.forward(reshape(pooled, [B, dModel])), [B]);
  }
}
