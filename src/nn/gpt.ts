// A GPT-2-style causal language model: learned positions, pre-LayerNorm blocks, tied input and
// output embeddings, and Hugging Face GPT-2 parameter names so its checkpoints load as they are.

import { arange } from '../tensor/ops/creation.js';
import { add, gelu } from '../tensor/ops/elementwise.js';
import { embedding, indexSelect } from '../tensor/ops/indexing.js';
import { matmulT } from '../tensor/ops/matmul.js';
import { reshape, slice } from '../tensor/ops/movement.js';
import { fmtShape, ShapeError } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Generator } from '../tensor/random/philox.js';
import { KVCache, MultiHeadSelfAttention } from './attention.js';
import { Dropout, Embedding, LayerNorm, Linear } from './layers.js';
import { Module, ModuleList, type ModuleOptions } from './module.js';

export interface GPTConfig {
  vocabSize: number;
  contextLength: number;
  dModel: number;
  nLayers: number;
  nHeads: number;
  /** Dropout on embeddings and residual branches (GPT-2's embd_pdrop / resid_pdrop). */
  dropout: number;
}

export interface GPTOptions extends ModuleOptions {
  /** Generator for dropout masks (default: the engine's default generator at call time). */
  dropoutGenerator?: Generator;
  /**
   * Fuse each block's GELU and residual adds into the matmuls before them (default true; see
   * GPTBlock). Bit for bit the same values either way: false runs the separate ops, for comparison.
   */
  fuseEpilogues?: boolean;
}

export interface GPTForwardOptions {
  /** [B, T], 1 for real tokens and 0 for padding; with a cache, the mask of the new positions only (the cache keeps the rest). */
  attentionMask?: Tensor;
  /** i32 [T] or [B, T]; default past, past + 1, ... (past = the cache length, or 0). */
  positionIds?: Tensor;
  kvCache?: KVCache;
  /** Also return the final hidden states (after ln_f, the LM head's input). */
  returnHidden?: boolean;
  /** Compute logits for the last position only ([B, 1, V]): what sampling needs, at 1/T of the LM-head cost. */
  lastOnly?: boolean;
  /**
   * Compute logits only at these positions (i32 [n], flat indices into B·T): logits are [n, V].
   * Preference losses need them only where a response token is predicted.
   */
  headRows?: Tensor;
}

export interface GPTOutput {
  /** [B, T, V] ([B, 1, V] with lastOnly, [n, V] with headRows) */
  logits: Tensor;
  /** [B, T, d], when asked for. */
  hidden?: Tensor;
}

/** c_proj(gelu_tanh(c_fc(x))), GPT-2's feed-forward block. */
class MLP extends Module {
  readonly c_fc: Linear;
  readonly c_proj: Linear;

  constructor(d: number, std: number, projStd: number, opts: ModuleOptions, readonly fuse = true) {
    super();
    this.c_fc = this.module('c_fc', new Linear(d, 4 * d, { ...opts, layout: 'conv1d', init: { kind: 'normal', std } }));
    this.c_proj = this.module('c_proj', new Linear(4 * d, d, { ...opts, layout: 'conv1d', init: { kind: 'normal', std: projStd } }));
  }

  /** With a residual, residual + mlp(x), the add in c_proj's epilogue (when fused). */
  forward(x: Tensor, residual?: Tensor): Tensor {
    if (!this.fuse) {
      const y = this.c_proj.forward(gelu(this.c_fc.forward(x), 'tanh'));
      return residual ? add(residual, y) : y;
    }
    // The GELU in c_fc's epilogue: one pass over the [rows, 4d] hidden states fewer.
    return this.c_proj.forward(this.c_fc.forward(x, { activation: 'geluTanh' }), { residual });
  }
}

/**
 * x + attn(ln_1(x)), then x + mlp(ln_2(x)), each branch followed by dropout. Where a branch's
 * dropout draws no mask (p = 0 or eval mode: the reference model, a policy without dropout), its
 * residual add runs in the branch's last matmul (the attention's output projection, the MLP's
 * c_proj), and the MLP's GELU always runs in c_fc's: per block 3 dispatches fewer in the forward
 * (1 with an active dropout), the same backward, bit for bit the separate ops (fuseEpilogues off).
 */
export class GPTBlock extends Module {
  readonly ln_1: LayerNorm;
  readonly attn: MultiHeadSelfAttention;
  readonly ln_2: LayerNorm;
  readonly mlp: MLP;
  private readonly drop1: Dropout;
  private readonly drop2: Dropout;
  private readonly fuse: boolean;

  constructor(config: GPTConfig, opts: GPTOptions) {
    super();
    this.fuse = opts.fuseEpilogues ?? true;
    const std = 0.02;
    // GPT-2 scales the residual projections so the residual stream's variance does not grow with depth.
    const projStd = std / Math.sqrt(2 * config.nLayers);
    this.ln_1 = this.module('ln_1', new LayerNorm(config.dModel, opts));
    this.attn = this.module('attn', new MultiHeadSelfAttention(config.dModel, config.nHeads, {
      ...opts, causal: true, naming: 'gpt2', inInit: { kind: 'normal', std }, outInit: { kind: 'normal', std: projStd },
    }));
    this.ln_2 = this.module('ln_2', new LayerNorm(config.dModel, opts));
    this.mlp = this.module('mlp', new MLP(config.dModel, std, projStd, opts, this.fuse));
    this.drop1 = this.module('drop1', new Dropout(config.dropout, opts.dropoutGenerator));
    this.drop2 = this.module('drop2', new Dropout(config.dropout, opts.dropoutGenerator));
  }

  forward(x: Tensor, keyMask: Tensor | undefined, cache: KVCache | undefined, layer: number): Tensor {
    const call = { keyMask, cache, layer };
    const a = this.fuse && !this.drop1.active
      ? this.attn.forward(this.ln_1.forward(x), { ...call, residual: x })
      : add(x, this.drop1.forward(this.attn.forward(this.ln_1.forward(x), call)));
    const h = this.ln_2.forward(a);
    return this.fuse && !this.drop2.active ? this.mlp.forward(h, a) : add(a, this.drop2.forward(this.mlp.forward(h)));
  }
}

class Transformer extends Module {
  readonly wte: Embedding;
  readonly wpe: Embedding;
  readonly drop: Dropout;
  readonly h: ModuleList<GPTBlock>;
  readonly ln_f: LayerNorm;

  constructor(config: GPTConfig, opts: GPTOptions) {
    super();
    this.wte = this.module('wte', new Embedding(config.vocabSize, config.dModel, { ...opts, std: 0.02 }));
    this.wpe = this.module('wpe', new Embedding(config.contextLength, config.dModel, { ...opts, std: 0.02 }));
    this.drop = this.module('drop', new Dropout(config.dropout, opts.dropoutGenerator));
    this.h = this.module('h', new ModuleList(Array.from({ length: config.nLayers }, () => new GPTBlock(config, opts))));
    this.ln_f = this.module('ln_f', new LayerNorm(config.dModel, opts));
  }
}

export class GPT extends Module {
  readonly transformer: Transformer;

  constructor(readonly config: GPTConfig, opts: GPTOptions = {}) {
    super();
    if (config.dModel % config.nHeads !== 0) throw new Error(`GPT: dModel ${config.dModel} is not divisible by nHeads ${config.nHeads}`);
    this.transformer = this.module('transformer', new Transformer(config, opts));
  }

  /** A fresh cache for this model's layers (for generation). */
  newCache(): KVCache {
    return new KVCache(this.config.nLayers);
  }

  forward(ids: Tensor, opts: GPTForwardOptions = {}): GPTOutput {
    if (ids.rank !== 2 || ids.dtype !== 'i32') throw new ShapeError('GPT', `ids must be i32 [B, T], got ${ids.label()}`);
    const [B, T] = ids.shape;
    const { wte, wpe, drop, h, ln_f } = this.transformer;
    const cache = opts.kvCache;
    const past = cache?.length ?? 0;
    if (past + T > this.config.contextLength) {
      throw new ShapeError('GPT', `${past} cached + ${T} new positions exceed the context length ${this.config.contextLength}`);
    }
    let keyMask = opts.attentionMask;
    if (keyMask && !cache && (keyMask.rank !== 2 || keyMask.shape[0] !== B || keyMask.shape[1] !== T)) {
      throw new ShapeError('GPT', `attentionMask ${fmtShape(keyMask.shape)} must be [${B}, ${T}]`);
    }
    if (cache) keyMask = cache.extendMask(keyMask, B, T);
    const pos = opts.positionIds ?? arange(past, past + T, 1, { dtype: 'i32', backend: ids.backend });
    let x = drop.forward(add(wte.forward(ids), embedding(wpe.weight, pos)));
    for (let i = 0; i < h.length; i++) x = h.at(i).forward(x, keyMask, cache, i);
    const hidden = ln_f.forward(x);
    if (opts.headRows) {
      const rows = indexSelect(reshape(hidden, [B * T, this.config.dModel]), 0, opts.headRows);
      const logits = matmulT(rows, wte.weight, false, true);
      return opts.returnHidden ? { logits, hidden } : { logits };
    }
    const head = opts.lastOnly && T > 1 ? slice(hidden, 1, T - 1) : hidden;
    const Th = head.shape[1];
    // Tied head: logits = hidden · wteᵀ, reading wte transposed in the kernel (no copy).
    const logits = reshape(matmulT(reshape(head, [B * Th, this.config.dModel]), wte.weight, false, true), [B, Th, this.config.vocabSize]);
    return opts.returnHidden ? { logits, hidden } : { logits };
  }
}
