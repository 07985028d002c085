// GANPO's critics evaluated as one model (GANPO.md §4): K critics (Dc and Dr, or K = 1 for a shared
// critic) with every parameter stacked on a leading dim, so each op of the critic is one dispatch
// for all of them rather than one per critic. Member k has exactly the parameters, buffers, forward
// and dropout draws of the Critic (critic.ts, the single-critic reference) built with generator k;
// memberState/loadMember convert to and from that Critic's PyTorch names.

import { cast } from '../tensor/ops/convert.js';
import { add, div, gelu, maximum, mul } from '../tensor/ops/elementwise.js';
import { reshape, slice } from '../tensor/ops/movement.js';
import { dropoutAdd, geluDropout, type DropoutOptions } from '../tensor/ops/nn.js';
import { packedSelfAttention } from '../tensor/ops/packedAttention.js';
import { mean, sum } from '../tensor/ops/reduce.js';
import { fmtShape, shapesEqual, ShapeError } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Generator } from '../tensor/random/philox.js';
import { Critic, type CriticConfig } from './critic.js';
import * as init from './init.js';
import { Module, ModuleList, type ModuleOptions } from './module.js';
import { member, setMember, stackedLinear, StackedLayerNorm, StackedLinear, StackedSpectralNormLinear } from './stacked.js';

export interface CriticPairOptions extends ModuleOptions {
  /** One initialization stream per member: member k starts as `new Critic(config, { generator: generators[k] })`. */
  generators: readonly Generator[];
  dropoutGenerator?: Generator;
  /**
   * Fuse the GELUs and (without dropout) the residual adds into the matmuls before them (default
   * true; see StackedEncoderLayer). Bit for bit the same values either way: false runs the separate ops.
   */
  fuseEpilogues?: boolean;
}

/**
 * The dropout of one stacked forward: member k draws its masks from its own run of stream
 * positions starting at bases[k], in layer order, as the member would alone. Each dropout is fused
 * with its neighbour: the residual add after it, or the GELU before it.
 */
class StackDropout {
  private used = 0;

  constructor(readonly p: number, readonly generator: Generator, readonly bases: readonly number[]) {}

  /** residual + dropout(x). */
  add(residual: Tensor, x: Tensor): Tensor {
    return dropoutAdd(residual, x, this.p, this.next(x));
  }

  /** dropout(gelu(x)), erf form. */
  gelu(x: Tensor): Tensor {
    return geluDropout(x, this.p, this.next(x));
  }

  /** The mask of x: each member's next x.size / K positions. */
  private next(x: Tensor): DropoutOptions {
    const offsets = this.bases.map((b) => b + this.used);
    this.used += x.size / this.bases.length;
    return { generator: this.generator, offsets };
  }
}

/** Self-attention of K members (PyTorch's in_proj/out_proj names, stacked): x [K, N, T, d]. */
class StackedSelfAttention extends Module {
  readonly in_proj_weight: Tensor;
  readonly in_proj_bias: Tensor;
  readonly out_proj: StackedLinear;

  constructor(readonly count: number, readonly dModel: number, readonly nHeads: number, opts: ModuleOptions) {
    super();
    this.in_proj_weight = this.param('in_proj_weight', init.zeros([count, 3 * dModel, dModel], opts));
    this.in_proj_bias = this.param('in_proj_bias', init.zeros([count, 3 * dModel], opts));
    this.out_proj = this.module('out_proj', new StackedLinear(count, dModel, dModel, opts));
  }

  /** keyMask [K·N, T]: the members' batches side by side, as attention sees them. With a residual, residual + attn(x), added in out_proj's epilogue. */
  forward(x: Tensor, keyMask?: Tensor, residual?: Tensor): Tensor {
    const [K, N, T, d] = x.shape;
    const qkv = reshape(stackedLinear(x, this.in_proj_weight, this.in_proj_bias), [K * N, T, 3 * d]);
    return this.out_proj.forward(reshape(packedSelfAttention(qkv, this.nHeads, { causal: false, keyMask }), [K, N, T, d]), { residual });
  }
}

/**
 * TransformerEncoderLayer (encoder.ts) for K members: pre-LN, bidirectional, GELU FFN. Without
 * dropout (eval mode: the generator's loss reads the critics so), linear1's GELU and both residual
 * adds run in the epilogues of the matmuls before them (3 dispatches fewer per layer, bit for bit
 * the separate ops); with dropout each dropout is fused with its neighbour instead (StackDropout).
 */
class StackedEncoderLayer extends Module {
  readonly self_attn: StackedSelfAttention;
  readonly linear1: StackedLinear;
  readonly linear2: StackedLinear;
  readonly norm1: StackedLayerNorm;
  readonly norm2: StackedLayerNorm;

  constructor(count: number, dModel: number, nHeads: number, opts: ModuleOptions, readonly fuse = true) {
    super();
    this.self_attn = this.module('self_attn', new StackedSelfAttention(count, dModel, nHeads, opts));
    this.linear1 = this.module('linear1', new StackedLinear(count, dModel, 4 * dModel, opts));
    this.linear2 = this.module('linear2', new StackedLinear(count, 4 * dModel, dModel, opts));
    this.norm1 = this.module('norm1', new StackedLayerNorm(count, dModel, opts));
    this.norm2 = this.module('norm2', new StackedLayerNorm(count, dModel, opts));
  }

  /** a = x + dropout(attn(norm1(x))), then a + dropout(linear2(dropout(gelu(linear1(norm2(a)))))); drop is null in eval mode. */
  forward(x: Tensor, keyMask: Tensor | undefined, drop: StackDropout | null): Tensor {
    if (!drop && this.fuse) {
      const a = this.self_attn.forward(this.norm1.forward(x), keyMask, x);
      const hidden = this.linear1.forward(this.norm2.forward(a), { activation: 'gelu' });
      return this.linear2.forward(hidden, { residual: a });
    }
    const residual = (r: Tensor, t: Tensor): Tensor => (drop ? drop.add(r, t) : add(r, t));
    const activation = (t: Tensor): Tensor => (drop ? drop.gelu(t) : gelu(t));
    const a = residual(x, this.self_attn.forward(this.norm1.forward(x), keyMask));
    const hidden = activation(this.linear1.forward(this.norm2.forward(a)));
    return residual(a, this.linear2.forward(hidden));
  }
}

/** Holds the layers under the names PyTorch's nn.TransformerEncoder gives them (transformer.layers.{i}). */
class StackedEncoder extends Module {
  readonly layers: ModuleList<StackedEncoderLayer>;

  constructor(count: number, config: CriticConfig, opts: ModuleOptions, fuse: boolean) {
    super();
    this.layers = this.module('layers', new ModuleList(Array.from({ length: config.nLayers }, () => new StackedEncoderLayer(count, config.dModel, config.nHeads, opts, fuse))));
  }
}

/** The head, named as the reference's nn.Sequential (head.0 and head.2; the GELU between has no state). */
class StackedHead extends Module {
  readonly first: StackedSpectralNormLinear;
  readonly last: StackedSpectralNormLinear;

  constructor(count: number, dModel: number, opts: ModuleOptions, readonly fuse = true) {
    super();
    this.first = this.module('0', new StackedSpectralNormLinear(count, dModel, dModel, opts));
    this.last = this.module('2', new StackedSpectralNormLinear(count, dModel, 1, opts));
  }

  forward(x: Tensor): Tensor {
    // The GELU in the first layer's matmul epilogue (no dropout here, in any mode).
    const hidden = this.fuse ? this.first.forward(x, { activation: 'gelu' }) : gelu(this.first.forward(x), 'none');
    return this.last.forward(hidden);
  }
}

export interface CriticPairCall {
  /**
   * First stream position of each member's dropout masks in this forward (training mode with
   * dropout only). By default the forward reserves dropoutDraws(N, T) positions per member from
   * the dropout generator, member after member, as K critics called one after another would.
   */
  dropoutBases?: readonly number[];
}

export class CriticPair extends Module {
  readonly count: number;
  readonly pos_embedding: Tensor;
  readonly project_in: StackedSpectralNormLinear;
  readonly transformer: StackedEncoder;
  readonly head: StackedHead;
  private readonly dropoutGenerator?: Generator;

  constructor(readonly config: CriticConfig, opts: CriticPairOptions) {
    super();
    const K = opts.generators.length;
    if (!(K >= 1 && K <= 4)) throw new Error(`CriticPair: 1 to 4 members (one generator each), got ${K}`);
    this.count = K;
    this.dropoutGenerator = opts.dropoutGenerator;
    const o: ModuleOptions = { backend: opts.backend, dtype: opts.dtype };
    const { dIn, dModel, maxLen } = config;
    this.project_in = this.module('project_in', new StackedSpectralNormLinear(K, dIn, dModel, o));
    this.pos_embedding = this.param('pos_embedding', init.zeros([K, 1, maxLen, dModel], o));
    const fuse = opts.fuseEpilogues ?? true;
    this.transformer = this.module('transformer', new StackedEncoder(K, config, o, fuse));
    this.head = this.module('head', new StackedHead(K, dModel, o, fuse));
    // Each member starts as the Critic its generator would build, so a pair and K critics agree.
    opts.generators.forEach((generator, k) => {
      const critic = new Critic(config, { ...o, generator });
      this.loadMember(k, critic.stateDict());
      critic.dispose();
    });
  }

  /** Member k's parameters and buffers under a Critic's names and shapes (new tensors; the caller disposes them). */
  memberState(k: number): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    for (const [name, t] of this.stateDict()) out.set(name, member(t, k));
    return out;
  }

  /** Overwrites member k with a Critic's state dict (every name required; shapes checked before any write). */
  loadMember(k: number, state: ReadonlyMap<string, Tensor>): void {
    const own = this.stateDict();
    const missing = [...own.keys()].filter((n) => !state.has(n));
    const unexpected = [...state.keys()].filter((n) => !own.has(n));
    if (missing.length || unexpected.length) {
      throw new Error(`CriticPair.loadMember: ${[missing.length ? `missing keys: ${missing.join(', ')}` : '', unexpected.length ? `unexpected keys: ${unexpected.join(', ')}` : ''].filter(Boolean).join('; ')}`);
    }
    for (const [name, dst] of own) {
      const src = state.get(name)!;
      if (!shapesEqual(src.shape, dst.shape.slice(1)) || src.dtype !== dst.dtype) {
        throw new Error(`CriticPair.loadMember: '${name}' is ${fmtShape(src.shape)} ${src.dtype}, a member's is ${fmtShape(dst.shape.slice(1))} ${dst.dtype}`);
      }
    }
    for (const [name, dst] of own) setMember(dst, k, state.get(name)!);
  }

  /** Dropout stream positions one member's training forward uses on N sequences of T positions. */
  dropoutDraws(N: number, T: number): number {
    const { dropout: p, nLayers, dModel } = this.config;
    return p > 0 ? nLayers * N * Math.min(T, this.config.maxLen) * (2 * dModel + 4 * dModel) : 0;
  }

  /**
   * h [K, N, T, d_in] → logits [K, N], member k scoring h[k]. Masking and pooling as Critic.forward,
   * with mask [K, N, T].
   */
  forward(h: Tensor, mask?: Tensor, call: CriticPairCall = {}): Tensor {
    const K = this.count;
    const { dIn, maxLen, dModel, dropout: p } = this.config;
    if (h.rank !== 4 || h.shape[0] !== K || h.shape[3] !== dIn) throw new ShapeError('CriticPair', `input ${fmtShape(h.shape)} must be [${K}, N, T, ${dIn}]`);
    const [, N, T0] = h.shape;
    if (mask && !shapesEqual(mask.shape, [K, N, T0])) throw new ShapeError('CriticPair', `mask ${fmtShape(mask.shape)} must be [${K}, ${N}, ${T0}] like the input ${fmtShape(h.shape)}`);
    const T = Math.min(T0, maxLen);
    let drop: StackDropout | null = null;
    if (this.training && p > 0) {
      const gen = this.dropoutGenerator;
      if (!gen) throw new Error('CriticPair: training with dropout needs a dropoutGenerator');
      const per = this.dropoutDraws(N, T);
      let bases = call.dropoutBases;
      if (!bases) {
        const base = gen.next(K * per);
        bases = Array.from({ length: K }, (_, k) => base + k * per);
      }
      if (bases.length !== K) throw new Error(`CriticPair: ${bases.length} dropout bases for ${K} members`);
      drop = new StackDropout(p, gen, bases);
    }
    const x0 = slice(h, 2, 0, T);
    const m = mask ? cast(slice(mask, 2, 0, T), h.dtype) : undefined;
    const keyMask = m ? reshape(m, [K * N, T]) : undefined;
    // The projection's bias joins the positions first: one small add instead of a second full pass.
    const w = this.project_in.weight();
    const offsets = add(reshape(this.project_in.bias, [K, 1, 1, dModel]), slice(this.pos_embedding, 2, 0, T));
    let x = add(reshape(stackedLinear(x0, w, null), [K, N, T, dModel]), offsets);
    for (const layer of this.transformer.layers) x = layer.forward(x, keyMask, drop);
    let pooled: Tensor;
    if (m) {
      // An all-zero row pools to 0 rather than dividing by zero.
      const count = maximum(sum(m, 2, true), 1);
      pooled = div(sum(mul(x, reshape(m, [K, N, T, 1])), 2), count);
    } else {
      pooled = mean(x, 2);
    }
    return reshape(this.head.forward(pooled), [K, N]);
  }
}
