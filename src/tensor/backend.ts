// The Backend contract: the small set of kernels every backend implements. Ops (src/tensor/ops)
// are written once against this contract; the CPU backend is its readable reference and the
// WebGPU backend must agree with it. All outputs are freshly allocated, contiguous (row-major)
// storages unless a method says it works in place.

import type { DType, TypedArray } from './dtype.js';

/** Opaque backend memory. Only the backend that made it may look inside. */
export interface Storage {
  readonly backend: Backend;
  readonly dtype: DType;
  /** Number of elements. */
  readonly size: number;
}

export type UnaryOp =
  | 'neg' | 'exp' | 'log' | 'sqrt' | 'rsqrt' | 'abs' | 'sign' | 'tanh' | 'sigmoid' | 'relu'
  | 'step' // 1 where x > 0, else 0 (relu's derivative)
  | 'gelu' | 'geluGrad' // exact erf form and its derivative
  | 'geluTanh' | 'geluTanhGrad' // tanh approximation and its derivative
  | 'softplus' | 'logSigmoid' | 'square' | 'reciprocal'
  | 'powScalar' // x ** p0
  | 'affine' // p0 * x + p1
  | 'clamp'; // min(max(x, p0), p1)

export type BinaryOp =
  | 'add' | 'sub' | 'mul' | 'div' | 'maximum' | 'minimum' | 'pow'
  // comparisons give 1 or 0 in the output dtype
  | 'eq' | 'ne' | 'lt' | 'le' | 'gt' | 'ge'
  // gelu's backward in one pass: b · gelu'(a) (a the input, b the output gradient), erf or tanh form
  | 'geluBackward' | 'geluTanhBackward';

export type ReduceOp = 'sum' | 'max' | 'min';

export interface MatmulParams {
  /** Broadcast batch shape of the output. */
  batchShape: number[];
  /** Element stride of each batch dim in a and b (0 where broadcast). */
  aBatchStrides: number[];
  bBatchStrides: number[];
  m: number;
  n: number;
  k: number;
  /** a's matrices are stored [k, m] (read transposed) instead of [m, k]. */
  transA: boolean;
  /** b's matrices are stored [n, k] instead of [k, n]. */
  transB: boolean;
  /**
   * With a bias: elements between the biases of consecutive (flattened) batch elements: 0 or
   * absent for one bias [n] shared by all, n for a bias per batch element ([...batchShape, n]).
   */
  biasBatchStride?: number;
}

/**
 * Operand sums a matmul can return alongside its product, per batch element: 'colsOfB' is
 * Σ_k op(b)[k, j] for each column j ([...batchShape, n]), 'rowsOfA' is Σ_k op(a)[i, k] for each row i
 * ([...batchShape, m]). A linear layer's bias gradient is such a sum of the output gradient g, which
 * its weight-gradient matmul reads anyway: xᵀ·g (g = b, 'colsOfB') or gᵀ·x (g = a, 'rowsOfA').
 */
export type MatmulSums = 'colsOfB' | 'rowsOfA';

/** The activations a matmul epilogue can apply: GELU, erf or tanh form (UnaryOp names). */
export type MatmulActivation = 'gelu' | 'geluTanh';

/**
 * What matmulEpilogue does to each output value v = op(a)·op(b) (+ bias) as it is stored, each
 * step rounded where the unfused ops round, so the result equals them bit for bit: at most one of
 * an activation and a residual.
 */
export interface MatmulEpilogue {
  /** n values added to every output row, as matmul's bias (per batch element with p.biasBatchStride). */
  bias?: Storage | null;
  /** out = unary(activation, v). */
  activation?: MatmulActivation | null;
  /** With an activation: also return pre = v (the activation's input, which its backward needs). */
  keepPre?: boolean;
  /** out = binary('add', residual, v); residual contiguous [...batchShape, m, n], the operands' dtype. */
  residual?: Storage | null;
}

export interface AdamWParams {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** 1-based step number used for bias correction. */
  step: number;
}

/** Shapes of the fused attention: q [batch·heads, tq, d], k and v [batch·heads, tk, d], all contiguous. */
export interface AttentionParams {
  batch: number;
  heads: number;
  tq: number;
  tk: number;
  d: number;
  scale: number;
  /** Query i sees key j only where j − i <= tk − tq (queries aligned at the end). */
  causal: boolean;
  /**
   * The packed self-attention layout (tq = tk = T): q, k and v are one buffer, the projection
   * [batch, T, 3, heads, d], and out (forward) and dout (backward) have the heads merged,
   * [batch, T, heads, d]; the kernels read and write them in place, with no split or merge copies.
   * The backward's gradient is one buffer laid out like the projection (see attentionBackward).
   */
  packedQKV?: boolean;
}

/** Throws unless a reduce scale, if any, goes with a float sum (a backend's guard). */
export function checkReduceScale(backend: string, op: ReduceOp, dtype: DType, scale: number | undefined): void {
  if (scale !== undefined && (op !== 'sum' || dtype === 'i32')) throw new Error(`${backend} reduce: a scale needs a float sum, got ${op} of ${dtype}`);
}

/** Throws unless e is a supported epilogue whose residual fits the output of p (a backend's guard). */
export function checkMatmulEpilogue(backend: string, e: MatmulEpilogue, p: MatmulParams, dtype: DType): void {
  if (e.activation && e.residual) throw new Error(`${backend} matmulEpilogue: an activation and a residual in one epilogue are not supported`);
  if (e.keepPre && !e.activation) throw new Error(`${backend} matmulEpilogue: keepPre needs an activation`);
  const size = p.batchShape.reduce((s, d) => s * d, 1) * p.m * p.n;
  const r = e.residual;
  if (r && (r.dtype !== dtype || r.size !== size)) throw new Error(`${backend} matmulEpilogue: residual ${r.dtype}[${r.size}] does not match the output ${dtype}[${size}]`);
}

/** AttentionParams for the packed self-attention layout. */
export type PackedAttentionParams = AttentionParams & { packedQKV: true };

/** attentionBackward's gradients for separate q, k and v: each laid out like its input. */
export interface AttentionGrads { dq: Storage; dk: Storage; dv: Storage }

/** Throws unless a packed layout's q, k and v are one buffer and tq = tk (a backend's guard). */
export function checkPackedQKV(op: string, q: Storage, k: Storage, v: Storage, p: AttentionParams): void {
  if (p.packedQKV && (q !== k || k !== v || p.tq !== p.tk)) {
    throw new Error(`${op}: packedQKV needs q, k and v to be one buffer and tq = tk (got ${q === k && k === v ? 'one buffer' : 'separate buffers'}, tq ${p.tq}, tk ${p.tk})`);
  }
}

export interface MemoryStats {
  /** Buffers handed out and not yet freed. */
  liveBuffers: number;
  liveBytes: number;
  /** Bytes kept in the reuse pool (GPU) — 0 on the CPU. */
  pooledBytes: number;
  /** Highest liveBytes + pooledBytes seen. */
  peakBytes: number;
}

export interface Backend {
  readonly name: string;
  /** Element types this backend computes in. */
  readonly dtypes: readonly DType[];
  /** A one-line description of the device (adapter info on WebGPU). */
  describe(): string;

  // memory
  alloc(dtype: DType, size: number): Storage;
  upload(dtype: DType, data: ArrayLike<number>): Storage;
  read(s: Storage): Promise<TypedArray>;
  /** Synchronous read, where the backend can (CPU); undefined otherwise. */
  readSync?(s: Storage): TypedArray;
  free(s: Storage): void;
  memory(): MemoryStats;
  /** Submits recorded work (no-op on the CPU). */
  flush(): void;

  // movement
  fill(out: Storage, value: number): void;
  /** dst[dstOffset + Σ i·dstStrides] = src[srcOffset + Σ i·srcStrides] for every index i of shape. */
  copy(src: Storage, dst: Storage, shape: readonly number[], srcStrides: readonly number[], srcOffset: number,
    dstStrides: readonly number[], dstOffset: number): void;
  /**
   * Optional: contiguous sources side by side, source s viewed as [outer, widths[s]] filling its
   * columns of the [outer, Σ widths] dst in order (concat along an axis, outer being the product of
   * the dims before it). A source with shared[s] set is one [widths[s]] block used for every outer
   * index (broadcast over the dims before the axis). Without it concat makes one copy per source.
   */
  concatInto?(srcs: readonly Storage[], dst: Storage, outer: number, widths: readonly number[], shared?: readonly boolean[]): void;
  cast(x: Storage, to: DType): Storage;

  // elementwise; a, b (and cond) are read through broadcast strides into a contiguous outShape
  unary(op: UnaryOp, x: Storage, params?: readonly [number, number?]): Storage;
  binary(op: BinaryOp, a: Storage, b: Storage, outShape: readonly number[], aStrides: readonly number[],
    bStrides: readonly number[]): Storage;
  /** out = cond != 0 ? a : b */
  where(cond: Storage, a: Storage, b: Storage, outShape: readonly number[], condStrides: readonly number[],
    aStrides: readonly number[], bStrides: readonly number[]): Storage;

  /**
   * Reduces `axes` (sorted, unique) of a contiguous x; the output keeps them as size-1 dims. With
   * `scale` (float sums only) each result is the rounded sum times scale, rounded again: mean in
   * one pass, equal to the sum then a multiply.
   */
  reduce(op: ReduceOp, x: Storage, shape: readonly number[], axes: readonly number[], scale?: number): Storage;

  /**
   * out [batch..., m, n] = op(a) · op(b), plus bias (n values, when given) added to every output
   * row: a linear layer's epilogue, fused so no broadcast add pass follows.
   */
  matmul(a: Storage, b: Storage, p: MatmulParams, bias?: Storage | null): Storage;
  /**
   * matmul (bias included) and the operand sums `sums` (see MatmulSums; float sums of the operand
   * values in the backend's accumulation precision), computed by the same kernel where the backend
   * can, so a linear layer's backward needs no separate reduce for its bias gradient. The product
   * equals matmul's.
   */
  matmulWithSums(a: Storage, b: Storage, p: MatmulParams, sums: MatmulSums, bias?: Storage | null): { out: Storage; sums: Storage };
  /**
   * matmul with more epilogue (see MatmulEpilogue): a GELU after the bias, or a residual added, in
   * the same kernel where the backend can, saving the pass over the output that unary or binary
   * would make. pre is null unless e.keepPre.
   */
  matmulEpilogue(a: Storage, b: Storage, p: MatmulParams, e: MatmulEpilogue): { out: Storage; pre: Storage | null };

  /** x viewed as [outer, dim, inner]; out[o, j, i] = x[o, idx[j], i], shape [outer, nIdx, inner]. */
  indexSelect(x: Storage, idx: Storage, outer: number, dim: number, inner: number): Storage;
  /** Transpose of indexSelect: src [outer, nIdx, inner] scatter-added into zeros [outer, dim, inner]. */
  indexAdd(src: Storage, idx: Storage, outer: number, dim: number, inner: number): Storage;

  // fused row kernels over a contiguous [rows, cols] view (last axis)
  softmax(x: Storage, rows: number, cols: number, log: boolean): Storage;
  /** Given y = (log)softmax(x) and dy, returns dx. */
  softmaxBackward(y: Storage, dy: Storage, rows: number, cols: number, log: boolean): Storage;
  /**
   * groups (default 1) splits the rows into that many equal runs of consecutive rows, run g scaled
   * by gamma[g] and shifted by beta[g] (gamma, beta [groups, cols]): stacked models in one pass.
   */
  layerNorm(x: Storage, gamma: Storage, beta: Storage, rows: number, cols: number, eps: number, groups?: number):
    { y: Storage; mean: Storage; rstd: Storage };
  /**
   * dgamma and dbeta are [groups, cols], each group's sums over its own rows; with paramGrads
   * false (frozen gamma and beta) they are not computed and come back null. With dxAdd (rows ×
   * cols, x's dtype) dx comes back as dxAdd + dx, rounded exactly as that add would be (dx rounded
   * to the dtype first): the gradient a residual connection already sent to x, added in the same
   * pass.
   */
  layerNormBackward(dy: Storage, x: Storage, gamma: Storage, mean: Storage, rstd: Storage, rows: number, cols: number, groups?: number, paramGrads?: boolean, dxAdd?: Storage | null):
    { dx: Storage; dgamma: Storage | null; dbeta: Storage | null };
  /**
   * logp[r] = logits[r, t[r]] − logsumexp(logits[r, :]) for t[r] >= 0, and 0 where t[r] < 0 (ignored).
   * Also returns the row log-sum-exp for the backward.
   */
  gatherLogProbs(logits: Storage, targets: Storage, rows: number, cols: number): { logp: Storage; lse: Storage };
  /** dlogits[r, c] = dlogp[r] · (onehot(t[r])[c] − softmax(logits[r])[c]), zero rows where t[r] < 0. */
  gatherLogProbsBackward(dlogp: Storage, logits: Storage, lse: Storage, targets: Storage, rows: number, cols: number): Storage;

  /**
   * Fused scaled dot-product attention, never materializing the tq×tk scores: out [batch·heads, tq, d]
   * and the row log-sum-exp lse [batch·heads, tq] for the backward. Scores are
   * ((q·k)·scale + causalBias) + keyBias, with causalBias = −1e9 where masked and keyBias =
   * (keyMask[b, j] − 1)·1e9 (keyMask [batch, tk], 1 = keep), the composed op's biases exactly.
   * Optional: undefined (method missing, or a shape the backend has no kernel for) means compose.
   */
  attention?(q: Storage, k: Storage, v: Storage, keyMask: Storage | null, p: AttentionParams): { out: Storage; lse: Storage } | undefined;
  /**
   * Gradients of attention, recomputing the probabilities from lse (FlashAttention-2 style): dq,
   * dk and dv, each laid out like its input. With p.packedQKV (q, k and v one [batch, T, 3, heads,
   * d] buffer) one gradient dqkv laid out like that buffer, every element written, so the op
   * returns it as is: element (b, h, t, e) of part i (q, k, v) at ((b·T + t)·3 + i)·heads·d + h·d + e.
   */
  attentionBackward?(q: Storage, k: Storage, v: Storage, keyMask: Storage | null, out: Storage, lse: Storage, dout: Storage,
    p: PackedAttentionParams): { dqkv: Storage };
  attentionBackward?(q: Storage, k: Storage, v: Storage, keyMask: Storage | null, out: Storage, lse: Storage, dout: Storage,
    p: AttentionParams & { packedQKV?: false }): AttentionGrads;

  /**
   * Counter-based random numbers (Philox4x32-10, see src/tensor/random/philox.ts): element i uses
   * stream position offset + i under key, so every backend produces the same values.
   */
  random(kind: 'uniform' | 'normal', dtype: DType, size: number, key: readonly [number, number], offset: number): Storage;
  /**
   * A dropout mask: element i is 1/(1 − p) where the dropout uniform at stream position offset + i
   * (lane (offset + i) mod 4 of a Philox block in the dropout domain, fillDropoutUniform in
   * src/tensor/random/philox.ts) is below 1 − p, else 0, both constants rounded to the dtype (the
   * values of (u < 1 − p) · (1/(1 − p)) computed with the elementwise ops). With several offsets (at
   * most 4) the mask is that many equal slabs, element j of slab s drawn at offsets[s] + j.
   */
  dropoutMask(dtype: DType, size: number, key: readonly [number, number], offset: number | readonly number[], p: number): Storage;
  /**
   * y = x · mask with mask = dropoutMask(x.dtype, x.size, key, offset, p), both returned, in one
   * pass (y bit-identical to that product). fuse adds neighbours to the same pass: y = residual +
   * act(x) · mask, each rounding where the composed ops round (act(x) to the dtype, then the
   * product, then the sum), so y is bit-identical to unary(act), this product and binary('add').
   */
  dropoutApply(x: Storage, key: readonly [number, number], offset: number | readonly number[], p: number, fuse?: DropoutFusion): { y: Storage; mask: Storage };
  /**
   * dx = (g · mask) · act'(x), the backward of dropoutApply with an activation, in one pass: the
   * product rounded first, bit-identical to binary('mul') then binary('geluBackward' or
   * 'geluTanhBackward'). g, x and mask contiguous, one size.
   */
  dropoutActivationBackward(g: Storage, x: Storage, mask: Storage, activation: DropoutActivation): Storage;

  /**
   * One power iteration of spectral normalization in place, for w [rows, cols] row-major:
   * v ← Wᵀu / max(‖Wᵀu‖, eps), then u ← W v / max(‖W v‖, eps) (u [rows], v [cols]). With batch
   * > 1, w, u and v hold that many independent problems back to back ([batch, rows, cols] etc.).
   */
  powerIteration(w: Storage, u: Storage, v: Storage, rows: number, cols: number, eps: number, batch?: number): void;
  /**
   * Spectral normalization of batch matrices w [batch, rows, cols]: when iterate, powerIteration
   * first (u, v updated in place); then σ = uᵀ W v and wn = W/σ. Also returns sigma [batch] and uv
   * [batch, rows + cols], the u and v σ was computed with (constants of the backward).
   */
  spectralNormalize(w: Storage, u: Storage, v: Storage, rows: number, cols: number, eps: number, batch: number, iterate: boolean):
    { wn: Storage; sigma: Storage; uv: Storage };
  /** The gradient of W/σ (σ = uᵀ W v, u and v constant): dW = (g − (Σ g∘W / σ) · u vᵀ) / σ per matrix. */
  spectralNormalizeBackward(g: Storage, w: Storage, uv: Storage, sigma: Storage, rows: number, cols: number, batch: number): Storage;

  /** One AdamW step in place on param, m, v (decoupled weight decay, bias-corrected). */
  adamw(param: Storage, grad: Storage, m: Storage, v: Storage, p: AdamWParams): void;
  /**
   * adamw on every entry, with the same result as calling it for each; a backend may batch them
   * into a few kernels (a multi-tensor optimizer step). Each entry's storages are distinct. With a
   * gate (one f32 element, computed on the device), the whole step happens only where gate != 0:
   * a step can be skipped on a device-side condition without a readback.
   */
  adamwMany(updates: readonly AdamWUpdate[], gate?: Storage | null): void;
  /** Σ x² over all elements of all xs, as a one-element storage (for global gradient norms). */
  sumSquares(xs: readonly Storage[]): Storage;
  /**
   * Gradient clipping in place: every x ← x · min(1, maxNorm / (norm[0] + 1e-6)), with norm a
   * one-element storage on the device (nothing is read back). The scale is formed in the dtype's
   * arithmetic: (norm + 1e-6), then maxNorm / that, then the minimum with 1.
   */
  clipByNorm(xs: readonly Storage[], norm: Storage, maxNorm: number): void;
}

/** The activations a dropout pass can apply before its mask: GELU, erf or tanh form (UnaryOp names). */
export type DropoutActivation = 'gelu' | 'geluTanh';

/** Neighbours fused into dropoutApply's pass over x. */
export interface DropoutFusion {
  /** y = act(x) · mask: an activation before the dropout (its backward is dropoutActivationBackward). */
  activation?: DropoutActivation;
  /** y = residual + act(x) · mask: a residual add after the dropout; contiguous, of x's size and dtype. */
  residual?: Storage;
}

/** One parameter of a multi-tensor AdamW step. */
export interface AdamWUpdate {
  param: Storage;
  grad: Storage;
  m: Storage;
  v: Storage;
  p: AdamWParams;
}
