// The CPU matmul: register-blocked loops over typed arrays (4 rows of C at a time, so each loaded
// row of B feeds four accumulators), and matmulWithSums' operand sums. Accumulation is in float64
// (JS numbers), rounded once on store.

import type { MatmulSums } from '../../backend.js';
import type { TypedArray } from '../../dtype.js';

/**
 * One [m, n] product out[oo..] = op(A) @ op(B) with A at offset ao ([m, k], or [k, m] when transA)
 * and B at offset bo ([k, n], or [n, k] when transB).
 */
export function matmulInto(A: TypedArray, ao: number, B: TypedArray, bo: number, out: TypedArray, oo: number,
  m: number, n: number, k: number, transA: boolean, transB: boolean, acc: Float64Array): void {
  // A's element (i, kk), whichever way it is stored.
  const aIdx = (i: number, kk: number): number => (transA ? ao + kk * m + i : ao + i * k + kk);
  if (transB) {
    // C[i, j] = Σ_k A[i, k] B[j, k]: dot products of contiguous rows, 2x2 blocked.
    for (let i = 0; i < m; i += 2) {
      const i1 = Math.min(i + 1, m - 1);
      for (let j = 0; j < n; j += 2) {
        const j1 = Math.min(j + 1, n - 1);
        const b0 = bo + j * k;
        const b1 = bo + j1 * k;
        let c00 = 0, c01 = 0, c10 = 0, c11 = 0;
        for (let kk = 0; kk < k; kk++) {
          const a0 = A[aIdx(i, kk)];
          const a1 = A[aIdx(i1, kk)];
          const x0 = B[b0 + kk];
          const x1 = B[b1 + kk];
          c00 += a0 * x0; c01 += a0 * x1; c10 += a1 * x0; c11 += a1 * x1;
        }
        out[oo + i * n + j] = c00;
        if (j1 !== j) out[oo + i * n + j1] = c01;
        if (i1 !== i) {
          out[oo + i1 * n + j] = c10;
          if (j1 !== j) out[oo + i1 * n + j1] = c11;
        }
      }
    }
    return;
  }
  // C[i, :] += A[i, k] · B[k, :] for four rows at once (acc holds 4 rows of n).
  for (let i = 0; i < m; i += 4) {
    const rows = Math.min(4, m - i);
    acc.fill(0, 0, 4 * n);
    for (let kk = 0; kk < k; kk++) {
      const a0 = A[aIdx(i, kk)];
      const a1 = rows > 1 ? A[aIdx(i + 1, kk)] : 0;
      const a2 = rows > 2 ? A[aIdx(i + 2, kk)] : 0;
      const a3 = rows > 3 ? A[aIdx(i + 3, kk)] : 0;
      const row = bo + kk * n;
      for (let j = 0; j < n; j++) {
        const b = B[row + j];
        acc[j] += a0 * b;
        acc[n + j] += a1 * b;
        acc[2 * n + j] += a2 * b;
        acc[3 * n + j] += a3 * b;
      }
    }
    for (let r = 0; r < rows; r++) {
      const o = oo + (i + r) * n;
      for (let j = 0; j < n; j++) out[o + j] = acc[r * n + j];
    }
  }
}

/**
 * acc = the sums over k of one operand at offset xo (float64): op(B)'s columns ('colsOfB', B
 * [k, n] or [n, k] when trans) or op(A)'s rows ('rowsOfA', A [m, k] or [k, m] when trans).
 */
export function operandSums(X: TypedArray, xo: number, acc: Float64Array, m: number, n: number, k: number, trans: boolean, sums: MatmulSums): void {
  const len = sums === 'colsOfB' ? n : m;
  // The summed index runs along storage rows when the operand is stored [len, k], across them when [k, len].
  const lenMajor = sums === 'colsOfB' ? trans : !trans;
  for (let i = 0; i < len; i++) {
    let s = 0;
    for (let kk = 0; kk < k; kk++) s += X[lenMajor ? xo + i * k + kk : xo + kk * len + i];
    acc[i] = s;
  }
}
