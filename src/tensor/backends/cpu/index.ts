// The CPU reference backend: plain loops over Float32Array / Float64Array / Int32Array, written to
// be read. Every WebGPU kernel is checked against these.

import { checkMatmulEpilogue, checkPackedQKV, checkReduceScale, type AdamWParams, type AdamWUpdate, type AttentionGrads, type AttentionParams, type Backend, type BinaryOp, type DropoutActivation, type DropoutFusion, type MatmulEpilogue, type MatmulParams, type MatmulSums, type MemoryStats, type PackedAttentionParams, type ReduceOp, type Storage, type UnaryOp } from '../../backend.js';
import { arrayFor, bytesPerElement, type DType, type TypedArray } from '../../dtype.js';
import { contiguousStrides, sizeOf } from '../../shape.js';
import { fillDropoutUniform, fillNormal, fillUniform } from '../../random/philox.js';
import { unaryFn, binaryFn } from './scalar.js';
import { matmulInto, operandSums } from './matmul.js';

export class CpuStorage implements Storage {
  constructor(
    readonly backend: Backend,
    readonly dtype: DType,
    public data: TypedArray,
  ) {}
  get size(): number {
    return this.data.length;
  }
}

/** Calls f(outIndex, offsets...) for every element of shape, tracking strided offsets incrementally. */
function forEachStrided(shape: readonly number[], strides: readonly (readonly number[])[], f: (i: number, offs: number[]) => void): void {
  const n = sizeOf(shape);
  if (n === 0) return;
  const rank = shape.length;
  const idx = new Array<number>(rank).fill(0);
  const offs = strides.map(() => 0);
  for (let i = 0; i < n; i++) {
    f(i, offs);
    for (let d = rank - 1; d >= 0; d--) {
      idx[d]++;
      for (let s = 0; s < strides.length; s++) offs[s] += strides[s][d];
      if (idx[d] < shape[d]) break;
      for (let s = 0; s < strides.length; s++) offs[s] -= strides[s][d] * shape[d];
      idx[d] = 0;
    }
  }
}

/**
 * Calls f(packed, separate) for each row (b, h, t) of part 0, 1 or 2 (q, k, v) of the packed
 * attention layout: where it starts in [batch, T, 3, heads, d] and in [batch·heads, T, d].
 */
function forEachPackedRow(p: AttentionParams, part: number, f: (packed: number, separate: number) => void): void {
  const { batch: B, heads: H, tq: T, d: D } = p;
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      for (let t = 0; t < T; t++) f((((b * T + t) * 3 + part) * H + h) * D, ((b * H + h) * T + t) * D);
    }
  }
}

export class CpuBackend implements Backend {
  readonly name = 'cpu';
  readonly dtypes = ['f32', 'f64', 'i32'] as const;
  private live = 0;
  private liveBytes = 0;
  private peak = 0;

  describe(): string {
    return 'cpu (reference backend, JavaScript typed arrays)';
  }

  private wrap(dtype: DType, data: TypedArray): CpuStorage {
    this.live++;
    this.liveBytes += data.length * bytesPerElement(dtype);
    if (this.liveBytes > this.peak) this.peak = this.liveBytes;
    return new CpuStorage(this, dtype, data);
  }

  private arr(s: Storage): TypedArray {
    return (s as CpuStorage).data;
  }

  alloc(dtype: DType, size: number): Storage {
    return this.wrap(dtype, arrayFor(dtype, size));
  }

  upload(dtype: DType, data: ArrayLike<number>): Storage {
    const out = arrayFor(dtype, data.length);
    out.set(data as ArrayLike<number>);
    return this.wrap(dtype, out);
  }

  async read(s: Storage): Promise<TypedArray> {
    return this.readSync(s);
  }

  readSync(s: Storage): TypedArray {
    return this.arr(s).slice();
  }

  free(s: Storage): void {
    const c = s as CpuStorage;
    this.live--;
    this.liveBytes -= c.data.length * bytesPerElement(c.dtype);
    c.data = arrayFor(c.dtype, 0);
  }

  memory(): MemoryStats {
    return { liveBuffers: this.live, liveBytes: this.liveBytes, pooledBytes: 0, peakBytes: this.peak };
  }

  flush(): void {}

  fill(out: Storage, value: number): void {
    this.arr(out).fill(value);
  }

  copy(src: Storage, dst: Storage, shape: readonly number[], srcStrides: readonly number[], srcOffset: number,
    dstStrides: readonly number[], dstOffset: number): void {
    const s = this.arr(src);
    const d = this.arr(dst);
    forEachStrided(shape, [srcStrides, dstStrides], (_, o) => {
      d[dstOffset + o[1]] = s[srcOffset + o[0]];
    });
  }

  concatInto(srcs: readonly Storage[], dst: Storage, outer: number, widths: readonly number[], shared?: readonly boolean[]): void {
    const d = this.arr(dst);
    const row = widths.reduce((a, w) => a + w, 0);
    let col = 0;
    srcs.forEach((src, k) => {
      const s = this.arr(src);
      const w = widths[k];
      const stride = shared?.[k] ? 0 : w;
      for (let o = 0; o < outer; o++) d.set(s.subarray(o * stride, o * stride + w), o * row + col);
      col += w;
    });
  }

  cast(x: Storage, to: DType): Storage {
    const src = this.arr(x);
    const out = arrayFor(to, src.length);
    if (to === 'i32') for (let i = 0; i < src.length; i++) out[i] = Math.trunc(src[i]);
    else out.set(src);
    return this.wrap(to, out);
  }

  unary(op: UnaryOp, x: Storage, params: readonly [number, number?] = [0, 0]): Storage {
    const src = this.arr(x);
    const out = arrayFor(x.dtype, src.length);
    const f = unaryFn(op, params[0], params[1] ?? 0);
    for (let i = 0; i < src.length; i++) out[i] = f(src[i]);
    return this.wrap(x.dtype, out);
  }

  binary(op: BinaryOp, a: Storage, b: Storage, outShape: readonly number[], aStrides: readonly number[], bStrides: readonly number[]): Storage {
    const A = this.arr(a);
    const B = this.arr(b);
    const out = arrayFor(a.dtype, sizeOf(outShape));
    const f = binaryFn(op);
    const dense = contiguousStrides(outShape);
    const isDense = (s: readonly number[]): boolean => s.every((v, i) => v === dense[i] || outShape[i] === 1);
    const isScalar = (s: readonly number[]): boolean => s.every((v) => v === 0);
    // Fast paths for the common layouts; the strided walk handles the rest.
    if (isDense(aStrides) && isDense(bStrides)) for (let i = 0; i < out.length; i++) out[i] = f(A[i], B[i]);
    else if (isDense(aStrides) && isScalar(bStrides)) for (let i = 0, b0 = B[0]; i < out.length; i++) out[i] = f(A[i], b0);
    else if (isScalar(aStrides) && isDense(bStrides)) for (let i = 0, a0 = A[0]; i < out.length; i++) out[i] = f(a0, B[i]);
    else forEachStrided(outShape, [aStrides, bStrides], (i, o) => {
      out[i] = f(A[o[0]], B[o[1]]);
    });
    if (a.dtype === 'i32' && (op === 'div' || op === 'pow')) for (let i = 0; i < out.length; i++) out[i] = Math.trunc(out[i]);
    return this.wrap(a.dtype, out);
  }

  where(cond: Storage, a: Storage, b: Storage, outShape: readonly number[], cStrides: readonly number[], aStrides: readonly number[], bStrides: readonly number[]): Storage {
    const C = this.arr(cond);
    const A = this.arr(a);
    const B = this.arr(b);
    const out = arrayFor(a.dtype, sizeOf(outShape));
    forEachStrided(outShape, [cStrides, aStrides, bStrides], (i, o) => {
      out[i] = C[o[0]] !== 0 ? A[o[1]] : B[o[2]];
    });
    return this.wrap(a.dtype, out);
  }

  reduce(op: ReduceOp, x: Storage, shape: readonly number[], axes: readonly number[], scale?: number): Storage {
    checkReduceScale('cpu', op, x.dtype, scale);
    const src = this.arr(x);
    const outShape = shape.map((d, i) => (axes.includes(i) ? 1 : d));
    const outStrides = contiguousStrides(outShape).map((s, i) => (axes.includes(i) ? 0 : s));
    const out = arrayFor(x.dtype, sizeOf(outShape));
    const init = op === 'sum' ? 0 : op === 'max' ? -Infinity : Infinity;
    out.fill(init);
    forEachStrided(shape, [outStrides], (i, o) => {
      const v = src[i];
      const j = o[0];
      if (op === 'sum') out[j] += v;
      else if (op === 'max') out[j] = v > out[j] || Number.isNaN(v) ? v : out[j];
      else out[j] = v < out[j] || Number.isNaN(v) ? v : out[j];
    });
    if (scale !== undefined) for (let j = 0; j < out.length; j++) out[j] = out[j] * scale;
    return this.wrap(x.dtype, out);
  }

  matmul(a: Storage, b: Storage, p: MatmulParams, bias?: Storage | null): Storage {
    const A = this.arr(a);
    const B = this.arr(b);
    const { m, n, k } = p;
    const out = arrayFor(a.dtype, sizeOf(p.batchShape) * m * n);
    const acc = new Float64Array(4 * n);
    forEachStrided(p.batchShape, [p.aBatchStrides, p.bBatchStrides], (bi, o) => {
      matmulInto(A, o[0], B, o[1], out, bi * m * n, m, n, k, p.transA, p.transB, acc);
    });
    if (bias) {
      // Added after the product is rounded to the output dtype, as the GPU epilogue does.
      const c = this.arr(bias);
      const stride = p.biasBatchStride ?? 0;
      for (let r = 0; r < out.length; r += n) {
        const o = Math.floor(r / (m * n)) * stride;
        for (let j = 0; j < n; j++) out[r + j] += c[o + j];
      }
    }
    return this.wrap(a.dtype, out);
  }

  matmulWithSums(a: Storage, b: Storage, p: MatmulParams, sums: MatmulSums, bias?: Storage | null): { out: Storage; sums: Storage } {
    const { m, n, k } = p;
    const len = sums === 'colsOfB' ? n : m;
    const out = arrayFor(a.dtype, sizeOf(p.batchShape) * len);
    const acc = new Float64Array(len);
    const [X, strides] = sums === 'colsOfB' ? [this.arr(b), p.bBatchStrides] : [this.arr(a), p.aBatchStrides];
    forEachStrided(p.batchShape, [strides], (bi, o) => {
      operandSums(X, o[0], acc, m, n, k, sums === 'colsOfB' ? p.transB : p.transA, sums);
      out.set(acc, bi * len);
    });
    return { out: this.matmul(a, b, p, bias), sums: this.wrap(a.dtype, out) };
  }

  /** The unfused ops in turn (the reference): matmul with its bias, then unary(activation) or binary('add', residual, ·). */
  matmulEpilogue(a: Storage, b: Storage, p: MatmulParams, e: MatmulEpilogue): { out: Storage; pre: Storage | null } {
    checkMatmulEpilogue('cpu', e, p, a.dtype);
    const v = this.matmul(a, b, p, e.bias);
    if (e.activation) {
      const out = this.unary(e.activation, v);
      if (e.keepPre) return { out, pre: v };
      this.free(v);
      return { out, pre: null };
    }
    if (!e.residual) return { out: v, pre: null };
    const shape = [v.size];
    const out = this.binary('add', e.residual, v, shape, [1], [1]);
    this.free(v);
    return { out, pre: null };
  }

  indexSelect(x: Storage, idx: Storage, outer: number, dim: number, inner: number): Storage {
    const X = this.arr(x);
    const I = this.arr(idx);
    const nIdx = I.length;
    const out = arrayFor(x.dtype, outer * nIdx * inner);
    for (let o = 0; o < outer; o++) {
      for (let j = 0; j < nIdx; j++) {
        if (!(I[j] >= 0 && I[j] < dim)) throw new RangeError(`indexSelect: index ${I[j]} at position ${j} is out of range [0, ${dim})`);
        const src = (o * dim + I[j]) * inner;
        const dst = (o * nIdx + j) * inner;
        for (let i = 0; i < inner; i++) out[dst + i] = X[src + i];
      }
    }
    return this.wrap(x.dtype, out);
  }

  indexAdd(src: Storage, idx: Storage, outer: number, dim: number, inner: number): Storage {
    const S = this.arr(src);
    const I = this.arr(idx);
    const nIdx = I.length;
    const out = arrayFor(src.dtype, outer * dim * inner);
    for (let o = 0; o < outer; o++) {
      for (let j = 0; j < nIdx; j++) {
        const dst = (o * dim + I[j]) * inner;
        const from = (o * nIdx + j) * inner;
        for (let i = 0; i < inner; i++) out[dst + i] += S[from + i];
      }
    }
    return this.wrap(src.dtype, out);
  }

  softmax(x: Storage, rows: number, cols: number, log: boolean): Storage {
    const X = this.arr(x);
    const out = arrayFor(x.dtype, rows * cols);
    for (let r = 0; r < rows; r++) {
      const o = r * cols;
      let max = -Infinity;
      for (let c = 0; c < cols; c++) max = Math.max(max, X[o + c]);
      if (max === -Infinity) max = 0; // a fully masked row: keep it finite-safe
      let sum = 0;
      for (let c = 0; c < cols; c++) sum += Math.exp(X[o + c] - max);
      // Relative to the max (not via lse = max + log(sum)), as the GPU kernel does: exact for huge scores.
      const logSum = Math.log(sum);
      for (let c = 0; c < cols; c++) out[o + c] = log ? X[o + c] - max - logSum : Math.exp(X[o + c] - max) / sum;
    }
    return this.wrap(x.dtype, out);
  }

  softmaxBackward(y: Storage, dy: Storage, rows: number, cols: number, log: boolean): Storage {
    const Y = this.arr(y);
    const G = this.arr(dy);
    const out = arrayFor(y.dtype, rows * cols);
    for (let r = 0; r < rows; r++) {
      const o = r * cols;
      let dot = 0;
      // softmax: dx = y ⊙ (dy − Σ dy·y); log-softmax: dx = dy − softmax · Σ dy
      for (let c = 0; c < cols; c++) dot += log ? G[o + c] : G[o + c] * Y[o + c];
      for (let c = 0; c < cols; c++) out[o + c] = log ? G[o + c] - Math.exp(Y[o + c]) * dot : Y[o + c] * (G[o + c] - dot);
    }
    return this.wrap(y.dtype, out);
  }

  layerNorm(x: Storage, gamma: Storage, beta: Storage, rows: number, cols: number, eps: number, groups = 1) {
    const X = this.arr(x);
    const W = this.arr(gamma);
    const B = this.arr(beta);
    const y = arrayFor(x.dtype, rows * cols);
    const mean = arrayFor(x.dtype, rows);
    const rstd = arrayFor(x.dtype, rows);
    for (let r = 0; r < rows; r++) {
      const o = r * cols;
      let mu = 0;
      for (let c = 0; c < cols; c++) mu += X[o + c];
      mu /= cols;
      let v = 0;
      for (let c = 0; c < cols; c++) v += (X[o + c] - mu) ** 2;
      const rs = 1 / Math.sqrt(v / cols + eps);
      mean[r] = mu;
      rstd[r] = rs;
      const gb = Math.floor(r / (rows / groups)) * cols;
      for (let c = 0; c < cols; c++) y[o + c] = (X[o + c] - mu) * rs * W[gb + c] + B[gb + c];
    }
    return { y: this.wrap(x.dtype, y), mean: this.wrap(x.dtype, mean), rstd: this.wrap(x.dtype, rstd) };
  }

  layerNormBackward(dy: Storage, x: Storage, gamma: Storage, mean: Storage, rstd: Storage, rows: number, cols: number, groups = 1, paramGrads = true, dxAdd: Storage | null = null) {
    if (dxAdd && (dxAdd.size !== rows * cols || dxAdd.dtype !== x.dtype)) {
      throw new Error(`cpu layerNormBackward: dxAdd has ${dxAdd.size} ${dxAdd.dtype} elements, expected ${rows * cols} ${x.dtype}`);
    }
    const A = dxAdd ? this.arr(dxAdd) : null;
    const G = this.arr(dy);
    const X = this.arr(x);
    const W = this.arr(gamma);
    const M = this.arr(mean);
    const R = this.arr(rstd);
    const dx = arrayFor(x.dtype, rows * cols);
    const dgamma = new Float64Array(groups * cols);
    const dbeta = new Float64Array(groups * cols);
    for (let r = 0; r < rows; r++) {
      const o = r * cols;
      const gb = Math.floor(r / (rows / groups)) * cols;
      let sumG = 0;
      let sumGX = 0;
      for (let c = 0; c < cols; c++) {
        const xhat = (X[o + c] - M[r]) * R[r];
        const g = G[o + c] * W[gb + c];
        sumG += g;
        sumGX += g * xhat;
        dgamma[gb + c] += G[o + c] * xhat;
        dbeta[gb + c] += G[o + c];
      }
      for (let c = 0; c < cols; c++) {
        const xhat = (X[o + c] - M[r]) * R[r];
        dx[o + c] = (R[r] / cols) * (cols * G[o + c] * W[gb + c] - sumG - xhat * sumGX);
        // dx holds the dtype's rounding of the gradient; the sum is then rounded again, as an add.
        if (A) dx[o + c] = A[o + c] + dx[o + c];
      }
    }
    return {
      dx: this.wrap(x.dtype, dx),
      dgamma: paramGrads ? this.upload(x.dtype, dgamma) : null,
      dbeta: paramGrads ? this.upload(x.dtype, dbeta) : null,
    };
  }

  gatherLogProbs(logits: Storage, targets: Storage, rows: number, cols: number) {
    const L = this.arr(logits);
    const T = this.arr(targets);
    const logp = arrayFor(logits.dtype, rows);
    const lse = arrayFor(logits.dtype, rows);
    for (let r = 0; r < rows; r++) {
      const o = r * cols;
      let max = -Infinity;
      for (let c = 0; c < cols; c++) max = Math.max(max, L[o + c]);
      let sum = 0;
      for (let c = 0; c < cols; c++) sum += Math.exp(L[o + c] - max);
      lse[r] = max + Math.log(sum);
      if (T[r] >= cols) throw new RangeError(`gatherLogProbs: target ${T[r]} at row ${r} is out of range [0, ${cols})`);
      logp[r] = T[r] >= 0 ? L[o + T[r]] - lse[r] : 0;
    }
    return { logp: this.wrap(logits.dtype, logp), lse: this.wrap(logits.dtype, lse) };
  }

  gatherLogProbsBackward(dlogp: Storage, logits: Storage, lse: Storage, targets: Storage, rows: number, cols: number): Storage {
    const G = this.arr(dlogp);
    const L = this.arr(logits);
    const S = this.arr(lse);
    const T = this.arr(targets);
    const out = arrayFor(logits.dtype, rows * cols);
    for (let r = 0; r < rows; r++) {
      if (T[r] < 0) continue;
      const o = r * cols;
      for (let c = 0; c < cols; c++) out[o + c] = -G[r] * Math.exp(L[o + c] - S[r]);
      out[o + T[r]] += G[r];
    }
    return this.wrap(logits.dtype, out);
  }

  /** q, k, v as separate [batch·heads, T, d] arrays: themselves, or unpacked from a packed projection. */
  private unpackQKV(q: Storage, k: Storage, v: Storage, p: AttentionParams): [TypedArray, TypedArray, TypedArray] {
    if (!p.packedQKV) return [this.arr(q), this.arr(k), this.arr(v)];
    const X = this.arr(q);
    const { batch: B, heads: H, tq: T, d: D } = p;
    return [0, 1, 2].map((part) => {
      const out = arrayFor(q.dtype, B * H * T * D) as TypedArray;
      forEachPackedRow(p, part, (src, dst) => {
        for (let c = 0; c < D; c++) out[dst + c] = X[src + c];
      });
      return out;
    }) as [TypedArray, TypedArray, TypedArray];
  }

  /** Separate [batch·heads, T, d] arrays q, k, v (or their gradients) packed into one [batch, T, 3, heads, d]. */
  private packQKV(parts: [TypedArray, TypedArray, TypedArray], dtype: DType, p: AttentionParams): TypedArray {
    const out = arrayFor(dtype, 3 * parts[0].length) as TypedArray;
    parts.forEach((x, part) => forEachPackedRow(p, part, (dst, src) => {
      for (let c = 0; c < p.d; c++) out[dst + c] = x[src + c];
    }));
    return out;
  }

  /**
   * [batch, heads, T, d] ↔ [batch, T, heads, d] (the packed layout's out and dout): toMerged moves
   * heads-major rows to merged, else back.
   */
  private swapHeads(x: TypedArray, dtype: DType, p: AttentionParams, toMerged: boolean): TypedArray {
    const { batch: B, heads: H, tq: T, d: D } = p;
    const out = arrayFor(dtype, x.length) as TypedArray;
    for (let b = 0; b < B; b++) {
      for (let h = 0; h < H; h++) {
        for (let t = 0; t < T; t++) {
          const hm = ((b * H + h) * T + t) * D;
          const mg = ((b * T + t) * H + h) * D;
          for (let c = 0; c < D; c++) {
            if (toMerged) out[mg + c] = x[hm + c];
            else out[hm + c] = x[mg + c];
          }
        }
      }
    }
    return out;
  }

  attention(q: Storage, k: Storage, v: Storage, keyMask: Storage | null, p: AttentionParams) {
    checkPackedQKV('cpu attention', q, k, v, p);
    const [Q, K, V] = this.unpackQKV(q, k, v, p);
    const { tq, tk, d } = p;
    const rows = p.batch * p.heads * tq;
    const out = arrayFor(q.dtype, rows * d);
    const lse = arrayFor(q.dtype, rows);
    const s = new Float64Array(tk);
    for (let r = 0; r < rows; r++) {
      this.attentionScores(Q, K, keyMask, p, r, s);
      let max = -Infinity;
      for (let j = 0; j < tk; j++) max = Math.max(max, s[j]);
      let sum = 0;
      for (let j = 0; j < tk; j++) sum += Math.exp(s[j] - max);
      const l = max + Math.log(sum);
      lse[r] = l;
      const vBase = Math.floor(r / tq) * tk * d;
      for (let j = 0; j < tk; j++) {
        const pj = Math.exp(s[j] - l);
        for (let c = 0; c < d; c++) out[r * d + c] += pj * V[vBase + j * d + c];
      }
    }
    return { out: this.wrap(q.dtype, p.packedQKV ? this.swapHeads(out, q.dtype, p, true) : out), lse: this.wrap(q.dtype, lse) };
  }

  attentionBackward(q: Storage, k: Storage, v: Storage, keyMask: Storage | null, out: Storage, lse: Storage, dout: Storage, p: PackedAttentionParams): { dqkv: Storage };
  attentionBackward(q: Storage, k: Storage, v: Storage, keyMask: Storage | null, out: Storage, lse: Storage, dout: Storage, p: AttentionParams & { packedQKV?: false }): AttentionGrads;
  attentionBackward(q: Storage, k: Storage, v: Storage, keyMask: Storage | null, out: Storage, lse: Storage, dout: Storage, p: AttentionParams): AttentionGrads | { dqkv: Storage } {
    checkPackedQKV('cpu attentionBackward', q, k, v, p);
    const [Q, K, V] = this.unpackQKV(q, k, v, p);
    const [O, L, G] = p.packedQKV
      ? [this.swapHeads(this.arr(out), out.dtype, p, false), this.arr(lse), this.swapHeads(this.arr(dout), dout.dtype, p, false)]
      : [this.arr(out), this.arr(lse), this.arr(dout)];
    const { tq, tk, d, scale } = p;
    const rows = p.batch * p.heads * tq;
    const dq = arrayFor(q.dtype, Q.length);
    const dk = arrayFor(q.dtype, K.length);
    const dv = arrayFor(q.dtype, V.length);
    const s = new Float64Array(tk);
    for (let r = 0; r < rows; r++) {
      this.attentionScores(Q, K, keyMask, p, r, s);
      const kvBase = Math.floor(r / tq) * tk * d;
      // D = dout·out = Σ_j P_j (dout·v_j): the softmax backward's row dot product.
      let D = 0;
      for (let c = 0; c < d; c++) D += G[r * d + c] * O[r * d + c];
      for (let j = 0; j < tk; j++) {
        const pj = Math.exp(s[j] - L[r]);
        let dp = 0;
        for (let c = 0; c < d; c++) dp += G[r * d + c] * V[kvBase + j * d + c];
        const ds = pj * (dp - D) * scale;
        for (let c = 0; c < d; c++) {
          dq[r * d + c] += ds * K[kvBase + j * d + c];
          dk[kvBase + j * d + c] += ds * Q[r * d + c];
          dv[kvBase + j * d + c] += pj * G[r * d + c];
        }
      }
    }
    if (p.packedQKV) return { dqkv: this.wrap(q.dtype, this.packQKV([dq, dk, dv], q.dtype, p)) };
    return { dq: this.wrap(q.dtype, dq), dk: this.wrap(q.dtype, dk), dv: this.wrap(q.dtype, dv) };
  }

  /** Row r's scores ((q·k)·scale + causal bias) + key bias, rounded to the storage dtype as the composed op's tensors are. */
  private attentionScores(Q: TypedArray, K: TypedArray, keyMask: Storage | null, p: AttentionParams, r: number, s: Float64Array): void {
    const { tq, tk, d } = p;
    const round = Q instanceof Float32Array ? Math.fround : (x: number) => x;
    const M = keyMask ? this.arr(keyMask) : null;
    const bh = Math.floor(r / tq);
    const i = r % tq;
    const b = Math.floor(bh / p.heads);
    for (let j = 0; j < tk; j++) {
      let dot = 0;
      for (let c = 0; c < d; c++) dot += Q[r * d + c] * K[(bh * tk + j) * d + c];
      let x = round(round(dot) * round(p.scale));
      if (p.causal && j - i > tk - tq) x = round(x - 1e9);
      if (M) x = round(x + round((M[b * tk + j] - 1) * 1e9));
      s[j] = x;
    }
  }

  random(kind: 'uniform' | 'normal', dtype: DType, size: number, key: readonly [number, number], offset: number): Storage {
    const k: [number, number] = [key[0], key[1]];
    const out = dtype === 'f64' ? new Float64Array(size) : new Float32Array(size);
    if (kind === 'uniform') fillUniform(out, k, offset);
    else fillNormal(out, k, offset);
    return this.wrap(dtype, out);
  }

  dropoutMask(dtype: DType, size: number, key: readonly [number, number], offset: number | readonly number[], p: number): Storage {
    const offs = typeof offset === 'number' ? [offset] : offset;
    if (offs.length < 1 || offs.length > 4 || size % offs.length !== 0) throw new RangeError(`dropoutMask: ${offs.length} slab offsets for ${size} elements (1 to 4, dividing the size)`);
    const out = dtype === 'f64' ? new Float64Array(size) : new Float32Array(size);
    const slab = size / offs.length;
    offs.forEach((o, s) => fillDropoutUniform(out.subarray(s * slab, (s + 1) * slab), [key[0], key[1]], o));
    const round = dtype === 'f64' ? (v: number) => v : Math.fround;
    const keep = round(1 - p);
    const scale = round(1 / (1 - p));
    for (let i = 0; i < size; i++) out[i] = out[i] < keep ? scale : 0;
    return this.wrap(dtype, out);
  }

  spectralNormalize(w: Storage, u: Storage, v: Storage, rows: number, cols: number, eps: number, batch: number, iterate: boolean) {
    if (iterate) this.powerIteration(w, u, v, rows, cols, eps, batch);
    const W = this.arr(w);
    const U = this.arr(u);
    const V = this.arr(v);
    const wn = arrayFor(w.dtype, batch * rows * cols);
    const sigma = arrayFor(w.dtype, batch);
    const uv = arrayFor(w.dtype, batch * (rows + cols));
    for (let b = 0; b < batch; b++) {
      const wo = b * rows * cols;
      // σ = Σ_i u_i (W v)_i, accumulated in f64 and rounded once.
      let s = 0;
      for (let i = 0; i < rows; i++) {
        let acc = 0;
        for (let j = 0; j < cols; j++) acc += W[wo + i * cols + j] * V[b * cols + j];
        s += U[b * rows + i] * acc;
      }
      sigma[b] = s;
      const sr = sigma[b];
      for (let k = 0; k < rows * cols; k++) wn[wo + k] = W[wo + k] / sr;
      uv.set(U.subarray(b * rows, (b + 1) * rows), b * (rows + cols));
      uv.set(V.subarray(b * cols, (b + 1) * cols), b * (rows + cols) + rows);
    }
    return { wn: this.wrap(w.dtype, wn), sigma: this.wrap(w.dtype, sigma), uv: this.wrap(w.dtype, uv) };
  }

  spectralNormalizeBackward(g: Storage, w: Storage, uv: Storage, sigma: Storage, rows: number, cols: number, batch: number): Storage {
    const G = this.arr(g);
    const W = this.arr(w);
    const UV = this.arr(uv);
    const S = this.arr(sigma);
    const dw = arrayFor(w.dtype, batch * rows * cols);
    for (let b = 0; b < batch; b++) {
      const wo = b * rows * cols;
      const n = b * (rows + cols);
      let gw = 0;
      for (let k = 0; k < rows * cols; k++) gw += G[wo + k] * W[wo + k];
      const c = gw / S[b];
      for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) dw[wo + i * cols + j] = (G[wo + i * cols + j] - c * UV[n + i] * UV[n + rows + j]) / S[b];
    }
    return this.wrap(w.dtype, dw);
  }

  dropoutApply(x: Storage, key: readonly [number, number], offset: number | readonly number[], p: number, fuse: DropoutFusion = {}) {
    const r = fuse.residual;
    if (r && (r.dtype !== x.dtype || r.size !== x.size)) throw new Error(`cpu dropoutApply: residual ${r.dtype}[${r.size}] does not match x ${x.dtype}[${x.size}]`);
    const mask = this.dropoutMask(x.dtype, x.size, key, offset, p);
    const X = this.arr(x);
    const M = this.arr(mask);
    const R = r ? this.arr(r) : null;
    const act = fuse.activation ? unaryFn(fuse.activation, 0, 0) : null;
    // Each step rounds to the dtype where the composed ops store a tensor: act(x), the product, the sum.
    const round = x.dtype === 'f32' ? Math.fround : (v: number) => v;
    const y = arrayFor(x.dtype, x.size);
    for (let i = 0; i < y.length; i++) {
      const v = act ? round(act(X[i])) : X[i];
      y[i] = R ? R[i] + round(v * M[i]) : v * M[i];
    }
    return { y: this.wrap(x.dtype, y), mask };
  }

  dropoutActivationBackward(g: Storage, x: Storage, mask: Storage, activation: DropoutActivation): Storage {
    const G = this.arr(g);
    const X = this.arr(x);
    const M = this.arr(mask);
    const d = unaryFn(activation === 'gelu' ? 'geluGrad' : 'geluTanhGrad', 0, 0);
    const round = x.dtype === 'f32' ? Math.fround : (v: number) => v;
    const out = arrayFor(x.dtype, x.size);
    // (g · mask) rounded as mul stores it, then times act'(x) as geluBackward computes it.
    for (let i = 0; i < out.length; i++) out[i] = round(G[i] * M[i]) * d(X[i]);
    return this.wrap(x.dtype, out);
  }

  powerIteration(w: Storage, u: Storage, v: Storage, rows: number, cols: number, eps: number, batch = 1): void {
    if (batch !== 1) {
      // Each problem of the batch alone, on views of its slices.
      for (let b = 0; b < batch; b++) {
        const part = (s: Storage, n: number): Storage => new CpuStorage(this, s.dtype, this.arr(s).subarray(b * n, (b + 1) * n));
        this.powerIteration(part(w, rows * cols), part(u, rows), part(v, cols), rows, cols, eps);
      }
      return;
    }
    const W = this.arr(w);
    const U = this.arr(u);
    const V = this.arr(v);
    // Products and norms accumulated in f64; each stored value is rounded to the dtype.
    const normalizeInto = (out: TypedArray, values: Float64Array): void => {
      out.set(values);
      let ss = 0;
      for (let k = 0; k < out.length; k++) ss += out[k] * out[k];
      const n = Math.max(Math.sqrt(ss), eps);
      for (let k = 0; k < out.length; k++) out[k] = out[k] / n;
    };
    const wtu = new Float64Array(cols);
    for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) wtu[j] += W[i * cols + j] * U[i];
    normalizeInto(V, wtu);
    const wv = new Float64Array(rows);
    for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) wv[i] += W[i * cols + j] * V[j];
    normalizeInto(U, wv);
  }

  adamw(param: Storage, grad: Storage, m: Storage, v: Storage, p: AdamWParams): void {
    const P = this.arr(param);
    const G = this.arr(grad);
    const M = this.arr(m);
    const V = this.arr(v);
    const bc1 = 1 - p.beta1 ** p.step;
    const bc2 = 1 - p.beta2 ** p.step;
    for (let i = 0; i < P.length; i++) {
      const g = G[i];
      M[i] = p.beta1 * M[i] + (1 - p.beta1) * g;
      V[i] = p.beta2 * V[i] + (1 - p.beta2) * g * g;
      const update = M[i] / bc1 / (Math.sqrt(V[i] / bc2) + p.eps);
      P[i] = P[i] * (1 - p.lr * p.weightDecay) - p.lr * update;
    }
  }

  adamwMany(updates: readonly AdamWUpdate[], gate?: Storage | null): void {
    if (gate && this.arr(gate)[0] === 0) return;
    for (const u of updates) this.adamw(u.param, u.grad, u.m, u.v, u.p);
  }

  sumSquares(xs: readonly Storage[]): Storage {
    // Accumulated in f64 and rounded once to the dtype (of the first storage).
    let acc = 0;
    for (const x of xs) {
      const a = this.arr(x);
      for (let i = 0; i < a.length; i++) acc += a[i] * a[i];
    }
    return this.upload(xs[0]?.dtype ?? 'f32', [acc]);
  }

  clipByNorm(xs: readonly Storage[], norm: Storage, maxNorm: number): void {
    // Each step rounded to the dtype, as the composed ops (add, div, minimum, mul) round.
    const round = norm.dtype === 'f32' ? Math.fround : (v: number) => v;
    const scale = Math.min(round(round(maxNorm) / round(this.arr(norm)[0] + round(1e-6))), 1);
    for (const x of xs) {
      const a = this.arr(x);
      for (let i = 0; i < a.length; i++) a[i] = a[i] * scale;
    }
  }
}
