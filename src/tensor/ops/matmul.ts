// Batched matrix multiply with broadcasting over batch dims. The backward reads operands
// transposed in the kernel (transA/transB), so it needs no transpose copies, and a bias gradient
// comes out of the weight-gradient matmul (the backend's operand sums), not a separate reduce.
// The forward's epilogue can also apply a GELU or add a residual (Backend.matmulEpilogue), saving
// the pass over the output that the separate op would make.

import { record, willRecord } from '../autograd.js';
import type { MatmulActivation, MatmulParams, MatmulSums } from '../backend.js';
import { broadcastShapes, broadcastStrides, fmtShape, shapesEqual, ShapeError, sizeOf } from '../shape.js';
import type { Tensor } from '../tensor.js';
import { backendOf, requireFloat, wrap } from './core.js';
import { geluBackwardOf, sumToShape } from './elementwise.js';
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

/** Work matmulT does after the bias as it stores the output: at most one of the two. */
export interface MatmulEpilogueOptions {
  /**
   * gelu(y) ('gelu', erf form) or gelu(y, 'tanh') ('geluTanh'), bit for bit the separate op. The
   * backward needs y, so the kernel also stores it when a gradient will be recorded (not under
   * noGrad, nor when no input requires one).
   */
  activation?: MatmulActivation | null;
  /**
   * residual + y, bit for bit add(residual, y). residual holds the output's elements in order: the
   * output's shape [...batch, m, n], or another of the same size ending in n (a linear layer's
   * [..., n] for the [rows, n] product it reshapes), its gradient then of its own shape. (Passing
   * it as is, not reshaped, keeps its gradient coming straight from this op, as from the add.)
   */
  residual?: Tensor | null;
}

/**
 * op(a) @ op(b) where op transposes the last two dims when asked. a: [..., m, k] (or [..., k, m]),
 * b: [..., k, n] (or [..., n, k]); the batch dims broadcast. With bias ([n], or [...batch, n]
 * with the output's batch shape: one bias per matrix, as stacked linear layers have), bias is added
 * to every output row inside the matmul kernel (a linear layer's epilogue; no separate add pass).
 * The epilogue options apply a GELU to the result or add a residual to it in the same kernel.
 */
export function matmulT(a: Tensor, b: Tensor, transA = false, transB = false, bias: Tensor | null = null, epilogue: MatmulEpilogueOptions = {}): Tensor {
  const activation = epilogue.activation ?? null;
  const residual = epilogue.residual ?? null;
  const inputs = [a, b, ...(bias ? [bias] : []), ...(residual ? [residual] : [])];
  const backend = backendOf('matmul', inputs);
  requireFloat('matmul', a);
  const p = matmulParams(a, b, transA, transB);
  const { batchShape, m, n } = p;
  const shape = [...batchShape, m, n];
  const perBatch = bias !== null && bias.rank > 1;
  if (bias && (bias.dtype !== a.dtype || bias.shape[bias.rank - 1] !== n || (perBatch && !shapesEqual(bias.shape.slice(0, -1), batchShape)))) {
    throw new ShapeError('matmul', `bias ${fmtShape(bias.shape)} (${bias.dtype}) must be [${n}] or [${[...batchShape, n].join(', ')}] ${a.dtype}: one value per output column, shared or per matrix`);
  }
  if (activation && residual) throw new Error('matmul: an activation and a residual in one epilogue are not supported');
  if (residual && (residual.size !== sizeOf(shape) || residual.shape[residual.rank - 1] !== n)) {
    throw new ShapeError('matmul', `residual ${fmtShape(residual.shape)} must have the output's shape ${fmtShape(shape)} (or its size, ending in ${n})`);
  }
  const q: MatmulParams = { ...p, biasBatchStride: perBatch ? n : 0 };
  let y: Tensor;
  // The activation's input (y before it), kept only for a backward.
  let pre: Tensor | null = null;
  if (activation || residual) {
    const r = backend.matmulEpilogue(a.storage, b.storage, q, { bias: bias?.storage ?? null, activation, keepPre: activation !== null && willRecord(inputs), residual: residual?.storage ?? null });
    y = wrap(r.out, shape);
    pre = r.pre && wrap(r.pre, shape);
  } else {
    y = wrap(backend.matmul(a.storage, b.storage, q, bias?.storage ?? null), shape);
  }
  return record('matmul', y, inputs, (gOut, needs) => {
    // The gradient of the product plus bias: through the activation's backward when there is one
    // (the gelu op's own kernel, on the stored pre-activation).
    const g = pre ? geluBackwardOf(pre, gOut, activation === 'geluTanh' ? 'tanh' : 'none') : gOut;
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
    // Freed as soon as used, as backward frees the separate gelu's gradient after this one's backward.
    if (g !== gOut) g.dispose();
    // A residual's gradient is the output's, passed on as it is (as add's backward does).
    const dres = residual && needs[inputs.length - 1] ? (shapesEqual(residual.shape, shape) ? gOut : reshape(gOut, residual.shape)) : null;
    return [da, db && sumToShape(db, b.shape), ...(bias ? [dbias] : []), ...(residual ? [dres] : [])];
  }, pre ? [pre] : []);
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
