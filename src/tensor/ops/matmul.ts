// Batched matrix multiply with broadcasting over batch dims. The backward reads operands
// transposed in the kernel (transA/transB), so it needs no transpose copies, and a bias gradient
// comes out of the weight-gradient matmul (the backend's operand sums), not a separate reduce.

import { record } from '../autograd.js';
import type { MatmulParams, MatmulSums } from '../backend.js';
import { broadcastShapes, broadcastStrides, fmtShape, shapesEqual, ShapeError } from '../shape.js';
import type { Tensor } from '../tensor.js';
import { backendOf, requireFloat, wrap } from './core.js';
import { sumToShape } from './elementwise.js';
import { reshape, squeeze, unsqueeze } from './movement.js';
import { sum } from './reduce.js';

/** The backend parameters of op(a) @ op(b) (shapes checked), with the output's batch shape. */
function matmulParams(a: Tensor, b: Tensor, transA: boolean, transB: boolean): MatmulParams {
  if (a.rank < 2 || b.rank < 2) throw new ShapeError('matmul', `operands need rank >= 2, got ${fmtShape(a.shape)} and ${fmtShape(b.shape)}`);
  const [m, ka] = transA ? [a.shape[a.rank - 1], a.shape[a.rank - 2]] : [a.shape[a.rank - 2], a.shape[a.rank - 1]];
  const [kb, n] = transB ? [b.shape[b.rank - 1], b.shape[b.rank - 2]] : [b.shape[b.rank - 2], b.shape[b.rank - 1]];
  if (ka !== kb) {
    throw new ShapeError('matmul', `inner dims differ: ${fmtShape(a.shape)}${transA ? 'ᵀ' : ''} @ ${fmtShape(b.shape)}${transB ? 'ᵀ' : ''} (${ka} vs ${kb})`);
  }
  const aBatch = a.shape.slice(0, -2);
  const bBatch = b.shape.slice(0, -2);
  const batchShape = broadcastShapes('matmul', aBatch, bBatch);
  return {
    batchShape,
    aBatchStrides: broadcastStrides(aBatch, batchShape).map((s) => s * m * ka),
    bBatchStrides: broadcastStrides(bBatch, batchShape).map((s) => s * kb * n),
    m, n, k: ka, transA, transB,
  };
}

/**
 * op(a) @ op(b) where op transposes the last two dims when asked. a: [..., m, k] (or [..., k, m]),
 * b: [..., k, n] (or [..., n, k]); the batch dims broadcast. With bias ([n], or [...batch, n]
 * with the output's batch shape: one bias per matrix, as stacked linear layers have), bias is added
 * to every output row inside the matmul kernel (a linear layer's epilogue; no separate add pass).
 */
export function matmulT(a: Tensor, b: Tensor, transA = false, transB = false, bias: Tensor | null = null): Tensor {
  const backend = backendOf('matmul', bias ? [a, b, bias] : [a, b]);
  requireFloat('matmul', a);
  const p = matmulParams(a, b, transA, transB);
  const { batchShape, m, n } = p;
  const perBatch = bias !== null && bias.rank > 1;
  if (bias && (bias.dtype !== a.dtype || bias.shape[bias.rank - 1] !== n || (perBatch && !shapesEqual(bias.shape.slice(0, -1), batchShape)))) {
    throw new ShapeError('matmul', `bias ${fmtShape(bias.shape)} (${bias.dtype}) must be [${n}] or [${[...batchShape, n].join(', ')}] ${a.dtype}: one value per output column, shared or per matrix`);
  }
  const out = backend.matmul(a.storage, b.storage, { ...p, biasBatchStride: perBatch ? n : 0 }, bias?.storage ?? null);
  const y = wrap(out, [...batchShape, m, n]);
  return record('matmul', y, bias ? [a, b, bias] : [a, b], (g, needs) => {
    // d(op(a)) = g @ op(b)ᵀ, d(op(b)) = op(a)ᵀ @ g, each transposed back when the operand was.
    const da = needs[0] ? sumToShape(transA ? matmulT(b, g, transB, true) : matmulT(g, b, false, !transB), a.shape) : null;
    // d(bias) = g summed over every row (of its own matrix, for a bias per matrix). A linear layer
    // gets it from b's gradient matmul; a shared bias of a batched product (summed over the batch
    // too), or a bias whose weight needs no gradient, reduces g on its own.
    let db: Tensor | null = null;
    let dbias: Tensor | null = null;
    if (bias && needs[1] && needs[2] && (perBatch || batchShape.length === 0)) {
      [db, dbias] = weightGradWithBiasGrad(a, g, transA, transB);
    } else {
      if (needs[1]) db = transB ? matmulT(g, a, true, transA) : matmulT(a, g, !transA, false);
      if (bias && needs[2]) dbias = perBatch ? sum(g, g.rank - 2) : sumToShape(g, bias.shape);
    }
    return [da, db && sumToShape(db, b.shape), ...(bias ? [dbias] : [])];
  });
}

/**
 * b's gradient (before any reduction over broadcast batch dims) for the output gradient g, and g
 * summed over the rows of each matrix ([...batch, n]) from the same kernel: op(a)ᵀ @ g reads g as
 * its b operand (the sums of its columns, 'colsOfB'); gᵀ @ op(a), for b stored transposed, reads g
 * as its a operand transposed (the sums of op(a)'s rows, 'rowsOfA').
 */
function weightGradWithBiasGrad(a: Tensor, g: Tensor, transA: boolean, transB: boolean): [Tensor, Tensor] {
  const [x, y, tA, tB, sums]: [Tensor, Tensor, boolean, boolean, MatmulSums] = transB ? [g, a, true, transA, 'rowsOfA'] : [a, g, !transA, false, 'colsOfB'];
  const p = matmulParams(x, y, tA, tB);
  const r = backendOf('matmul', [x, y]).matmulWithSums(x.storage, y.storage, p, sums);
  return [wrap(r.out, [...p.batchShape, p.m, p.n]), wrap(r.sums, [...p.batchShape, sums === 'colsOfB' ? p.n : p.m])];
}

/** NumPy matmul: 1-D operands are promoted to a row (a) or a column (b) and the extra dim removed. */
export function matmul(a: Tensor, b: Tensor): Tensor {
  if (a.rank === 1 && b.rank === 1) return reshape(matmulT(unsqueeze(a, 0), unsqueeze(b, 1)), []);
  if (a.rank === 1) return squeeze(matmulT(unsqueeze(a, 0), b), -2);
  if (b.rank === 1) return squeeze(matmulT(a, unsqueeze(b, 1)), -1);
  return matmulT(a, b);
}
