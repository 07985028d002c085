// Multi-head self-attention over the engine's attention op (causal or bidirectional, key-padding
// mask), with GPT-2 (c_attn/c_proj) or PyTorch (in_proj/out_proj) parameter names, and the
// key/value cache that makes autoregressive generation linear in the sequence length.

import { cast } from '../tensor/ops/convert.js';
import { full } from '../tensor/ops/creation.js';
import { clone, concat, permute, reshape, slice } from '../tensor/ops/movement.js';
import { attention } from '../tensor/ops/nn.js';
import { packedSelfAttention } from '../tensor/ops/packedAttention.js';
import { keep, tidy } from '../tensor/scope.js';
import { fmtShape, ShapeError } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import * as init from './init.js';
import { Linear, linear } from './layers.js';
import { Module, type ModuleOptions } from './module.js';

/**
 * Keys and values of the positions seen so far, per layer ([B, H, T, Dh] each), and the key mask
 * over them. For inference: appending frees the previous tensors, so run it under noGrad.
 */
export class KVCache {
  private readonly entries: ({ k: Tensor; v: Tensor } | null)[];
  private keyMask: Tensor | null = null;

  constructor(readonly nLayers: number) {
    this.entries = new Array(nLayers).fill(null);
  }

  /** Number of cached positions (read it before a forward: layers append one by one during it). */
  get length(): number {
    return this.entries[0]?.k.shape[2] ?? 0;
  }

  /** Appends one layer's new keys and values; returns the full (cached + new) ones. */
  append(layer: number, k: Tensor, v: Tensor): { k: Tensor; v: Tensor } {
    if (layer < 0 || layer >= this.nLayers) throw new Error(`KVCache: layer ${layer} out of range (${this.nLayers} layers)`);
    const old = this.entries[layer];
    const next = old ? { k: keep(concat([old.k, k], 2)), v: keep(concat([old.v, v], 2)) } : { k: keep(k), v: keep(v) };
    if (old) {
      old.k.dispose();
      old.v.dispose();
    }
    this.entries[layer] = next;
    return next;
  }

  /**
   * Extends the stored key mask with the new positions' mask [B, T] (1 keep, 0 padding) and
   * returns the mask over all positions, or undefined while no mask was ever given.
   */
  extendMask(mask: Tensor | undefined, batch: number, newLength: number): Tensor | undefined {
    const past = this.length;
    if (mask && (mask.rank !== 2 || mask.shape[0] !== batch || mask.shape[1] !== newLength)) {
      throw new ShapeError('KVCache', `attention mask ${fmtShape(mask.shape)} must be [${batch}, ${newLength}] (the new positions)`);
    }
    if (!mask && !this.keyMask) return undefined;
    const like = this.keyMask ?? mask!;
    const opts = { dtype: like.dtype, backend: like.backend };
    // tidy frees the temporaries; the caller's mask and the old stored mask were made outside it.
    const next = keep(tidy(() => {
      const head = this.keyMask ?? (past > 0 ? full([batch, past], 1, opts) : null);
      const tail = mask ? cast(mask, like.dtype) : full([batch, newLength], 1, opts);
      return head ? concat([head, tail], 1) : clone(tail);
    }));
    this.keyMask?.dispose();
    this.keyMask = next;
    return next;
  }

  dispose(): void {
    for (const e of this.entries) {
      e?.k.dispose();
      e?.v.dispose();
    }
    this.entries.fill(null);
    this.keyMask?.dispose();
    this.keyMask = null;
  }
}

/** [B, T, 3d] packed q|k|v → three [B, H, T, Dh] tensors. */
export function splitHeads(qkv: Tensor, nHeads: number): [Tensor, Tensor, Tensor] {
  const [B, T, three] = qkv.shape;
  const d = three / 3;
  const heads = permute(reshape(qkv, [B, T, 3, nHeads, d / nHeads]), [2, 0, 3, 1, 4]);
  const part = (i: number) => reshape(slice(heads, 0, i, i + 1), [B, nHeads, T, d / nHeads]);
  return [part(0), part(1), part(2)];
}

/** [B, H, T, Dh] → [B, T, H·Dh]. */
export function mergeHeads(x: Tensor): Tensor {
  const [B, H, T, Dh] = x.shape;
  return reshape(permute(x, [0, 2, 1, 3]), [B, T, H * Dh]);
}

export interface SelfAttentionOptions extends ModuleOptions {
  causal: boolean;
  /** 'gpt2': c_attn [d, 3d] and c_proj [d, d] in Conv1D layout. 'torch': in_proj_weight [3d, d], in_proj_bias, out_proj (nn.MultiheadAttention). */
  naming: 'gpt2' | 'torch';
  /** Init of the input projection (default Xavier uniform; biases are zero). */
  inInit?: init.WeightInit;
  /** Init of the output projection (default Xavier uniform). */
  outInit?: init.WeightInit;
}

export interface SelfAttentionCall {
  /** [B, T] with 1 for keys to attend to and 0 for padding (with a cache: over all cached + new keys). */
  keyMask?: Tensor;
  cache?: KVCache;
  /** This layer's index in the cache. */
  layer?: number;
  /** Returns residual + attention(x) instead, the add in the output projection's epilogue ([B, T, d]). */
  residual?: Tensor;
}

/** Self-attention x [B, T, d] → [B, T, d]. (No dropout on the attention weights: the op has none.) */
export class MultiHeadSelfAttention extends Module {
  private readonly c_attn?: Linear;
  private readonly in_proj_weight?: Tensor;
  private readonly in_proj_bias?: Tensor;
  private readonly proj: Linear;

  constructor(readonly dModel: number, readonly nHeads: number, readonly opts: SelfAttentionOptions) {
    super();
    if (dModel % nHeads !== 0) throw new Error(`MultiHeadSelfAttention: dModel ${dModel} is not divisible by nHeads ${nHeads}`);
    const inInit = opts.inInit ?? { kind: 'xavierUniform' };
    const outInit = opts.outInit ?? { kind: 'xavierUniform' };
    if (opts.naming === 'gpt2') {
      this.c_attn = this.module('c_attn', new Linear(dModel, 3 * dModel, { ...opts, layout: 'conv1d', init: inInit }));
      this.proj = this.module('c_proj', new Linear(dModel, dModel, { ...opts, layout: 'conv1d', init: outInit }));
    } else {
      this.in_proj_weight = this.param('in_proj_weight', init.weight([3 * dModel, dModel], inInit, dModel, opts));
      this.in_proj_bias = this.param('in_proj_bias', init.zeros([3 * dModel], opts));
      this.proj = this.module('out_proj', new Linear(dModel, dModel, { ...opts, init: outInit }));
    }
  }

  /** The output projection (c_proj or out_proj), for inits that treat it specially. */
  get outProjection(): Linear {
    return this.proj;
  }

  forward(x: Tensor, call: SelfAttentionCall = {}): Tensor {
    if (x.rank !== 3 || x.shape[2] !== this.dModel) throw new ShapeError('MultiHeadSelfAttention', `input ${fmtShape(x.shape)} must be [B, T, ${this.dModel}]`);
    const qkv = this.c_attn ? this.c_attn.forward(x) : linear(x, this.in_proj_weight!, this.in_proj_bias!, 'torch');
    // Without a cache the heads never need to exist as separate tensors.
    const out = { residual: call.residual };
    if (!call.cache) return this.proj.forward(packedSelfAttention(qkv, this.nHeads, { causal: this.opts.causal, keyMask: call.keyMask }), out);
    let [q, k, v] = splitHeads(qkv, this.nHeads);
    ({ k, v } = call.cache.append(call.layer ?? 0, k, v));
    const y = attention(q, k, v, { causal: this.opts.causal, keyMask: call.keyMask });
    return this.proj.forward(mergeHeads(y), out);
  }
}
