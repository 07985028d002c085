// Indexing: select slices along an axis by integer indices (embedding lookup); the backward is a
// scatter-add of the gradient into the selected positions.

import { record } from '../autograd.js';
import { fmtShape, normAxis, ShapeError, sizeOf } from '../shape.js';
import type { Tensor } from '../tensor.js';
import { backendOf, requireDtype, wrap } from './core.js';
import { flatten, reshape } from './movement.js';

/** out = x taken at idx (i32, 1-D) along axis; out.shape[axis] = idx.size. */
export function indexSelect(x: Tensor, axis: number, idx: Tensor): Tensor {
  const a = normAxis('indexSelect', axis, x.rank);
  requireDtype('indexSelect', idx, 'i32');
  backendOf('indexSelect', [x, idx], false);
  if (idx.rank !== 1) throw new ShapeError('indexSelect', `indices must be 1-D, got ${fmtShape(idx.shape)}`);
  const outer = sizeOf(x.shape.slice(0, a));
  const dim = x.shape[a];
  const inner = sizeOf(x.shape.slice(a + 1));
  const shape = [...x.shape];
  shape[a] = idx.size;
  let out;
  try {
    out = x.backend.indexSelect(x.storage, idx.storage, outer, dim, inner);
  } catch (e) {
    // The kernel knows only flat sizes; name the shapes here.
    if (e instanceof RangeError) throw new RangeError(`${e.message} (x ${fmtShape(x.shape)}, axis ${a}, indices ${fmtShape(idx.shape)})`);
    throw e;
  }
  const y = wrap(out, shape);
  return record('indexSelect', y, [x], (g) => [wrap(g.backend.indexAdd(g.storage, idx.storage, outer, dim, inner), x.shape)], [idx]);
}

/** Rows of weight [V, D] for ids of any shape: out [...ids.shape, D]. Ids must lie in [0, V). */
export function embedding(weight: Tensor, ids: Tensor): Tensor {
  if (weight.rank !== 2) throw new ShapeError('embedding', `weight must be [vocab, dim], got ${fmtShape(weight.shape)}`);
  return reshape(indexSelect(weight, 0, flatten(ids)), [...ids.shape, weight.shape[1]]);
}
