// Batched matrix multiply with broadcasting over batch dims. The backward reads operands
// transposed in the kernel (transA/transB), so it needs no transpose copies.

import { record } from '../autograd.js';
import { broadcastShapes, broadcastStrides, fmtShape, shapesEqual, ShapeError } from '../shape.js';
import type { Tensor } from '../tensor.js';
import { backendOf, requireFloat, wrap } from './core.js';
import { sumToShape } from './elementwise.js';
import { reshape, squeeze, unsqueeze } from './movement.js';
import { sum } from './reduce.js';

/**
 * op(a) @ op(b) where op transposes the last two dims when asked. a: [..., m, k] (or [..., k, m]),
 * b: [..., k, n] (or [..., n, k]); the batch dims broadcast. With bias ([n], or [...batch, n]
 * with the output's batch shape: one bias per matrix, as stacked linear layers have), bias is added
 * to every output row inside the matmul kernel (a linear layer's epilogue; no separate add pass).
 */
export function matmulT(a: Tensor, b: Tensor, transA = false, transB = false, bias: Tensor | null = null): Tensor {
  const backend = backendOf('matmul', bias ? [a, b, bias] : [a, b]);
  requireFloat('matmul', a);
  if (a.rank < 2 || b.rank < 2) throw new ShapeError('matmul', `operands need rank >= 2, got ${fmtShape(a.shape)} and ${fmtShape(b.shape)}`);
  const [m, ka] = transA ? [a.shape[a.rank - 1], a.shape[a.rank - 2]] : [a.shape[a.rank - 2], a.shape[a.rank - 1]];
  const [kb, n] = transB ? [b.shape[b.rank - 1], b.shape[b.rank - 2]] : [b.shape[b.rank - 2], b.shape[b.rank - 1]];
  if (ka !== kb) {
    throw new ShapeError('matmul', `inner dims differ: ${fmtShape(a.shape)}${transA ? 'ᵀ' : ''} @ ${fmtShape(b.shape)}${transB ? 'ᵀ' : ''} (${ka} vs ${kb})`);
  }
  const aBatch = a.shape.slice(0, -2);
  const bBatch = b.shape.slice(0, -2);
  const batchShape = broadcastShapes('matmul', aBatch, bBatch);
  const perBatch = bias !== null && bias.rank > 1;
  if (bias && (bias.dtype !== a.dtype || bias.shape[bias.rank - 1] !== n || (perBatch && !shapesEqual(bias.shape.slice(0, -1), batchShape)))) {
    throw new ShapeError('matmul', `bias ${fmtShape(bias.shape)} (${bias.dtype}) must be [${n}] or [${[...batchShape, n].join(', ')}] ${a.dtype}: one value per output column, shared or per matrix`);
  }
  const out = backend.matmul(a.storage, b.storage, {
    batchShape,
    aBatchStrides: broadcastStrides(aBatch, batchShape).map((s) => s * m * ka),
    bBatchStrides: broadcastStrides(bBatch, batchShape).map((s) => s * kb * n),
    m, n, k: ka, transA, transB,
    biasBatchStride: perBatch ? n : 0,
  }, bias?.storage ?? null);
  const y = wrap(out, [...batchShape, m, n]);
  return record('matmul', y, bias ? [a, b, bias] : [a, b], (g, needs) => [
    // d(op(a)) = g @ op(b)ᵀ, d(op(b)) = op(a)ᵀ @ g, each transposed back when the operand was.
    needs[0] ? sumToShape(transA ? matmulT(b, g, transB, true) : matmulT(g, b, false, !transB), a.shape) : null,
    needs[1] ? sumToShape(transB ? matmulT(g, a, true, transA) : matmulT(a, g, !transA, false), b.shape) : null,
    // d(bias) = g summed over every row (of its own matrix, for a bias per matrix).
    ...(bias ? [needs[2] ? (perBatch ? sum(g, g.rank - 2) : sumToShape(g, bias.shape)) : null] : []),
  ]);
}

/** NumPy matmul: 1-D operands are promoted to a row (a) or a column (b) and the extra dim removed. */
export function matmul(a: Tensor, b: Tensor): Tensor {
  if (a.rank === 1 && b.rank === 1) return reshape(matmulT(unsqueeze(a, 0), unsqueeze(b, 1)), []);
  if (a.rank === 1) return squeeze(matmulT(unsqueeze(a, 0), b), -2);
  if (b.rank === 1) return squeeze(matmulT(a, unsqueeze(b, 1)), -1);
  return matmulT(a, b);
}
