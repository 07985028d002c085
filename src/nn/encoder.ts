// A pre-LayerNorm transformer encoder with the semantics and parameter names of PyTorch's
// nn.TransformerEncoderLayer(d, nhead, 4d, dropout, activation='gelu', batch_first=True, norm_first=True).

import { add, gelu } from '../tensor/ops/elementwise.js';
import type { Tensor } from '../tensor/tensor.js';
import { MultiHeadSelfAttention } from './attention.js';
import type { WeightInit } from './init.js';
import { Dropout, LayerNorm, Linear } from './layers.js';
import { Module, ModuleList, type ModuleOptions } from './module.js';
import type { Generator } from '../tensor/random/philox.js';

export interface EncoderLayerOptions extends ModuleOptions {
  /** Default 4·dModel. */
  dimFeedforward?: number;
  dropout?: number;
  /** Every weight matrix (in_proj, out_proj, linear1, linear2); biases are zero. Default Xavier uniform. */
  weightInit?: WeightInit;
  dropoutGenerator?: Generator;
}

/**
 * x = x + dropout1(self_attn(norm1(x))); x = x + dropout2(linear2(dropout(gelu(linear1(norm2(x)))))).
 * Bidirectional attention; keyMask [B, T] has 1 for positions to attend to (PyTorch's
 * src_key_padding_mask is its negation).
 */
export class TransformerEncoderLayer extends Module {
  readonly self_attn: MultiHeadSelfAttention;
  readonly linear1: Linear;
  readonly linear2: Linear;
  readonly norm1: LayerNorm;
  readonly norm2: LayerNorm;
  private readonly dropout: Dropout;
  private readonly dropout1: Dropout;
  private readonly dropout2: Dropout;

  constructor(readonly dModel: number, readonly nHeads: number, opts: EncoderLayerOptions = {}) {
    super();
    const ff = opts.dimFeedforward ?? 4 * dModel;
    const p = opts.dropout ?? 0.1;
    const w = opts.weightInit ?? { kind: 'xavierUniform' };
    this.self_attn = this.module('self_attn', new MultiHeadSelfAttention(dModel, nHeads, { ...opts, causal: false, naming: 'torch', inInit: w, outInit: w }));
    this.linear1 = this.module('linear1', new Linear(dModel, ff, { ...opts, init: w }));
    this.dropout = this.module('dropout', new Dropout(p, opts.dropoutGenerator));
    this.linear2 = this.module('linear2', new Linear(ff, dModel, { ...opts, init: w }));
    this.norm1 = this.module('norm1', new LayerNorm(dModel, opts));
    this.norm2 = this.module('norm2', new LayerNorm(dModel, opts));
    this.dropout1 = this.module('dropout1', new Dropout(p, opts.dropoutGenerator));
    this.dropout2 = this.module('dropout2', new Dropout(p, opts.dropoutGenerator));
  }

  forward(x: Tensor, keyMask?: Tensor): Tensor {
    const a = add(x, this.dropout1.forward(this.self_attn.forward(this.norm1.forward(x), { keyMask })));
    const hidden = this.dropout.forward(gelu(this.linear1.forward(this.norm2.forward(a))));
    return add(a, this.dropout2.forward(this.linear2.forward(hidden)));
  }
}

/** A stack of encoder layers named layers.{i}, with no final norm (nn.TransformerEncoder, norm=None). */
export class TransformerEncoder extends Module {
  readonly layers: ModuleList<TransformerEncoderLayer>;

  constructor(dModel: number, nHeads: number, nLayers: number, opts: EncoderLayerOptions = {}) {
    super();
    this.layers = this.module('layers', new ModuleList(Array.from({ length: nLayers }, () => new TransformerEncoderLayer(dModel, nHeads, opts))));
  }

  forward(x: Tensor, keyMask?: Tensor): Tensor {
    let y = x;
    for (const layer of this.layers) y = layer.forward(y, keyMask);
    return y;
  }
}
