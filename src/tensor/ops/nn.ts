// Neural-network ops: fused row kernels (softmax, log-softmax, layerNorm, gatherLogProbs) with
// their dedicated backward kernels, dropout alone or fused with its neighbours (a residual add
// after, a GELU before), and compositions on top (cross-entropy, attention).

import { record } from '../autograd.js';
import { defaultGenerator } from '../engine.js';
import type { Generator } from '../random/philox.js';
import { fmtShape, normAxis, ShapeError, shapesEqual } from '../shape.js';
import type { Tensor } from '../tensor.js';
import { backendOf, requireDtype, requireFloat, wrap } from './core.js';
import { add, div, gelu, lt, mul, ne, neg, sub, where } from './elementwise.js';
import { matmulT } from './matmul.js';
import { reshape, transpose } from './movement.js';
import { sum } from './reduce.js';
import { tensor } from './creation.js';

function lastAxis<T>(op: string, x: Tensor, axis: number, f: (x: Tensor) => T & Tensor): Tensor {
  const a = normAxis(op, axis, x.rank);
  if (a === x.rank - 1) return f(x);
  return transpose(f(transpose(x, a, -1)), a, -1);
}

function softmaxImpl(x: Tensor, log: boolean): Tensor {
  const op = log ? 'logSoftmax' : 'softmax';
  requireFloat(op, x);
  const cols = x.rank === 0 ? 1 : x.shape[x.rank - 1];
  const rows = cols === 0 ? 0 : x.size / cols;
  const y = wrap(x.backend.softmax(x.storage, rows, cols, log), x.shape);
  return record(op, y, [x], (g) => [wrap(g.backend.softmaxBackward(y.storage, g.storage, rows, cols, log), x.shape)], [y]);
}

/** softmax along axis (default last), in one fused kernel each direction. */
export function softmax(x: Tensor, axis = -1): Tensor {
  return lastAxis('softmax', x, axis, (t) => softmaxImpl(t, false));
}

export function logSoftmax(x: Tensor, axis = -1): Tensor {
  return lastAxis('logSoftmax', x, axis, (t) => softmaxImpl(t, true));
}

/**
 * LayerNorm over the last dim: (x − mean) / sqrt(var + eps) · gamma + beta (population variance).
 * gamma and beta are [cols], or [G, cols] for a stack of G models along x's first dim
 * (x [G, ..., cols]): member g of the stack gets gamma[g] and beta[g], all in one kernel.
 */
export function layerNorm(x: Tensor, gamma: Tensor, beta: Tensor, eps = 1e-5): Tensor {
  requireFloat('layerNorm', x);
  const b = backendOf('layerNorm', [x, gamma, beta]);
  const cols = x.shape[x.rank - 1];
  const groups = gamma.rank === 2 ? gamma.shape[0] : 1;
  const affineOk = (gamma.rank === 1 || (gamma.rank === 2 && x.rank >= 2 && x.shape[0] === groups)) && gamma.shape[gamma.rank - 1] === cols;
  if (!affineOk || !shapesEqual(beta.shape, gamma.shape)) {
    throw new ShapeError('layerNorm', `gamma ${fmtShape(gamma.shape)} and beta ${fmtShape(beta.shape)} must be [${cols}] or [${x.shape[0]}, ${cols}] for input ${fmtShape(x.shape)}`);
  }
  const rows = x.size / cols;
  const r = b.layerNorm(x.storage, gamma.storage, beta.storage, rows, cols, eps, groups);
  const y = wrap(r.y, x.shape);
  const mean = wrap(r.mean, [rows]);
  const rstd = wrap(r.rstd, [rows]);
  return record('layerNorm', y, [x, gamma, beta], (g, needs, pending) => {
    // Frozen gamma and beta (a critic in the generator step): their column sums are skipped. The
    // gradient a residual connection already sent to x is added in the dx kernel (no add pass).
    const acc = needs[0] ? pending?.take(0) ?? null : null;
    const d = b.layerNormBackward(g.storage, x.storage, gamma.storage, mean.storage, rstd.storage, rows, cols, groups, needs[1] || needs[2], acc?.storage ?? null);
    return [wrap(d.dx, x.shape), d.dgamma && wrap(d.dgamma, gamma.shape), d.dbeta && wrap(d.dbeta, beta.shape)];
  }, [mean, rstd]);
}

/**
 * log softmax(logits)[target] for each position, without materializing the softmax:
 * logits [..., V], targets i32 [...] → [...]. Targets < 0 are ignored (0, no gradient).
 */
export function gatherLogProbs(logits: Tensor, targets: Tensor): Tensor {
  requireFloat('gatherLogProbs', logits);
  requireDtype('gatherLogProbs', targets, 'i32');
  const b = backendOf('gatherLogProbs', [logits, targets], false);
  const lead = logits.shape.slice(0, -1);
  if (!shapesEqual(lead, targets.shape)) {
    throw new ShapeError('gatherLogProbs', `targets ${fmtShape(targets.shape)} must match logits ${fmtShape(logits.shape)} without the last dim`);
  }
  const cols = logits.shape[logits.rank - 1];
  const rows = targets.size;
  let r;
  try {
    r = b.gatherLogProbs(logits.storage, targets.storage, rows, cols);
  } catch (e) {
    if (e instanceof RangeError) throw new RangeError(`${e.message} (logits ${fmtShape(logits.shape)}, targets ${fmtShape(targets.shape)})`);
    throw e;
  }
  const logp = wrap(r.logp, lead);
  const lse = wrap(r.lse, [rows]);
  return record('gatherLogProbs', logp, [logits], (g) => [
    wrap(b.gatherLogProbsBackward(g.storage, logits.storage, lse.storage, targets.storage, rows, cols), logits.shape),
  ], [lse, targets]);
}

export interface CrossEntropyOptions {
  /** Target value to ignore (default −100, as PyTorch). */
  ignoreIndex?: number;
  reduction?: 'mean' | 'sum' | 'none';
}

/** Cross-entropy of logits [..., V] against i32 class targets [...]; 'mean' averages over non-ignored targets. */
export function crossEntropy(logits: Tensor, targets: Tensor, opts: CrossEntropyOptions = {}): Tensor {
  const ignore = opts.ignoreIndex ?? -100;
  // The kernel ignores negative targets; remap a non-negative ignore index to −1.
  const t = ignore >= 0 ? where(ne(targets, ignore), targets, -1) : targets;
  const nll = neg(gatherLogProbs(logits, t));
  const reduction = opts.reduction ?? 'mean';
  if (reduction === 'none') return nll;
  const total = sum(nll);
  if (reduction === 'sum') return total;
  const valid = sum(sub(1, lt(t, 0)));
  const count = wrap(logits.backend.cast(valid.storage, logits.dtype), []);
  return div(total, count);
}

export interface DropoutOptions {
  training?: boolean;
  generator?: Generator;
  /**
   * Stream positions chosen by the caller instead of drawing from the generator: one per equal
   * slab of x's elements (at most 4), slab s using positions offsets[s], offsets[s] + 1, ... (a
   * stack of models along x's first dim, each masked as it would be alone). The key is the generator's.
   */
  offsets?: readonly number[];
}

/**
 * Zeroes each element with probability p and scales the rest by 1/(1−p); the mask is seeded:
 * element i at stream position offset + i of the dropout stream (four positions per Philox block,
 * src/tensor/random/philox.ts), x.size positions reserved from the generator unless opts.offsets.
 */
export function dropout(x: Tensor, p: number, opts: DropoutOptions = {}): Tensor {
  if (!dropoutActive('dropout', p, opts)) return x;
  // x · (u < 1 − p) · 1/(1 − p) and the mask in one pass over x; the backward is g · mask.
  const r = x.backend.dropoutApply(x.storage, ...maskStream(x, opts), p);
  const mask = wrap(r.mask, x.shape);
  return record('dropout', wrap(r.y, x.shape), [x], (g) => [mul(g, mask)], [mask]);
}

/**
 * residual + dropout(x, p, opts), the residual connection of a transformer block, in one pass: the
 * same mask and the same values as the two ops (the product is rounded before the sum). The
 * backward passes g to the residual as it is, with no kernel, and g · mask to x. Without dropout
 * (eval mode or p = 0) it is add(residual, x).
 */
export function dropoutAdd(residual: Tensor, x: Tensor, p: number, opts: DropoutOptions = {}): Tensor {
  requireFloat('dropoutAdd', x);
  const b = backendOf('dropoutAdd', [residual, x]);
  if (!shapesEqual(residual.shape, x.shape)) {
    throw new ShapeError('dropoutAdd', `residual ${fmtShape(residual.shape)} and x ${fmtShape(x.shape)} must have the same shape (no broadcasting)`);
  }
  if (!dropoutActive('dropoutAdd', p, opts)) return add(residual, x);
  const r = b.dropoutApply(x.storage, ...maskStream(x, opts), p, { residual: residual.storage });
  const mask = wrap(r.mask, x.shape);
  return record('dropoutAdd', wrap(r.y, x.shape), [residual, x], (g, needs) => [needs[0] ? g : null, needs[1] ? mul(g, mask) : null], [mask]);
}

export interface GeluDropoutOptions extends DropoutOptions {
  /** The GELU, as gelu(x, approximate): 'none' the exact erf form (default), 'tanh' the approximation. */
  approximate?: 'none' | 'tanh';
}

/**
 * dropout(gelu(x), p, opts), a transformer's feed-forward activation, in one pass each way: the
 * forward keeps only the mask (not gelu(x)); the backward is (g · mask) · gelu'(x) in one kernel.
 * Same mask and values as the two ops. Without dropout (eval mode or p = 0) it is gelu(x).
 */
export function geluDropout(x: Tensor, p: number, opts: GeluDropoutOptions = {}): Tensor {
  requireFloat('geluDropout', x);
  const approximate = opts.approximate ?? 'none';
  if (!dropoutActive('geluDropout', p, opts)) return gelu(x, approximate);
  const activation = approximate === 'tanh' ? 'geluTanh' : 'gelu';
  const r = x.backend.dropoutApply(x.storage, ...maskStream(x, opts), p, { activation });
  const mask = wrap(r.mask, x.shape);
  return record('geluDropout', wrap(r.y, x.shape), [x], (g) => [wrap(g.backend.dropoutActivationBackward(g.storage, x.storage, mask.storage, activation), x.shape)], [mask]);
}

/** Checks p; false where no mask is drawn (eval mode or p = 0). */
function dropoutActive(op: string, p: number, opts: DropoutOptions): boolean {
  if (!(p >= 0 && p < 1)) throw new ShapeError(op, `p must be in [0, 1), got ${p}`);
  return opts.training !== false && p !== 0;
}

/** The key and stream positions of x's mask: the caller's offsets, or x.size positions drawn from the generator. */
function maskStream(x: Tensor, opts: DropoutOptions): [readonly [number, number], number | readonly number[]] {
  const gen = opts.generator ?? defaultGenerator();
  return [gen.key, opts.offsets ?? gen.next(x.size)];
}

export interface AttentionOptions {
  /** Position i attends only to positions <= i (queries and keys aligned at the end). */
  causal?: boolean;
  /** [B, Tk] with 1 for real keys and 0 for padding, which no query attends to. */
  keyMask?: Tensor;
  /** Defaults to 1/sqrt(head dim). */
  scale?: number;
}

const MASKED = -1e9;

/**
 * Scaled dot-product attention: q [B, H, Tq, D], k and v [B, H, Tk, D] → [B, H, Tq, D]. Runs the
 * backend's fused kernel where it has one (no Tq×Tk scores in memory; the backward recomputes
 * them from the saved row log-sum-exp), else the composition of matmul, mask bias and softmax.
 */
export function attention(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions = {}): Tensor {
  checkAttention(q, k, v, opts);
  const b = backendOf('attention', [q, k, v]);
  const [B, H, Tq, D] = q.shape;
  const Tk = k.shape[2];
  const p = { batch: B, heads: H, tq: Tq, tk: Tk, d: D, scale: opts.scale ?? 1 / Math.sqrt(D), causal: opts.causal ?? false };
  const m = opts.keyMask;
  const mask = !m ? null : m.dtype === q.dtype ? m : wrap(m.backend.cast(m.storage, q.dtype), m.shape);
  const r = b.attentionBackward ? b.attention?.(q.storage, k.storage, v.storage, mask?.storage ?? null, p) : undefined;
  if (!r) {
    if (mask && mask !== m) mask.dispose();
    return composedAttention(q, k, v, opts);
  }
  const out = wrap(r.out, q.shape);
  const lse = wrap(r.lse, [B * H * Tq]);
  return record('attention', out, [q, k, v], (g) => {
    const d = b.attentionBackward!(q.storage, k.storage, v.storage, mask?.storage ?? null, out.storage, lse.storage, g.storage, p);
    return [wrap(d.dq, q.shape), wrap(d.dk, k.shape), wrap(d.dv, v.shape)];
  }, mask ? [lse, mask] : [lse]);
}

function checkAttention(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions): void {
  if (q.rank !== 4 || k.rank !== 4 || v.rank !== 4) {
    throw new ShapeError('attention', `q, k, v must be [B, H, T, D]; got ${fmtShape(q.shape)}, ${fmtShape(k.shape)}, ${fmtShape(v.shape)}`);
  }
  const [B, , , D] = q.shape;
  const Tk = k.shape[2];
  if (!shapesEqual(k.shape, v.shape) || k.shape[0] !== B || k.shape[1] !== q.shape[1] || k.shape[3] !== D) {
    throw new ShapeError('attention', `incompatible q ${fmtShape(q.shape)}, k ${fmtShape(k.shape)}, v ${fmtShape(v.shape)}`);
  }
  if (opts.keyMask && !shapesEqual(opts.keyMask.shape, [B, Tk])) throw new ShapeError('attention', `keyMask ${fmtShape(opts.keyMask.shape)} must be [${B}, ${Tk}]`);
}

/** attention as matmul + mask bias + softmax + matmul: the fallback, and the reference the fused kernels are tested against. */
export function composedAttention(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions = {}): Tensor {
  checkAttention(q, k, v, opts);
  const [B, , Tq, D] = q.shape;
  const Tk = k.shape[2];
  const scale = opts.scale ?? 1 / Math.sqrt(D);
  let scores = mul(matmulT(q, k, false, true), scale);
  if (opts.causal) {
    const bias = new Float64Array(Tq * Tk);
    for (let i = 0; i < Tq; i++) for (let j = 0; j < Tk; j++) if (j - i > Tk - Tq) bias[i * Tk + j] = MASKED;
    scores = add(scores, tensor(bias, [Tq, Tk], { backend: q.backend, dtype: q.dtype }));
  }
  if (opts.keyMask) {
    const m = opts.keyMask;
    const mf = m.dtype === q.dtype ? m : wrap(m.backend.cast(m.storage, q.dtype), m.shape);
    scores = add(scores, reshape(mul(sub(mf, 1), -MASKED), [B, 1, 1, Tk]));
  }
  return matmulT(softmax(scores), v);
}
