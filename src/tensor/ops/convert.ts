// Converting tensors: dtype casts, detaching from the graph, and moving between backends.

import { record } from '../autograd.js';
import type { Backend } from '../backend.js';
import { type DType, isFloat } from '../dtype.js';
import { Tensor } from '../tensor.js';
import { wrap } from './core.js';

/** Converts the dtype (float → i32 truncates toward zero). Gradients pass between float dtypes. */
export function cast(x: Tensor, dtype: DType): Tensor {
  if (x.dtype === dtype) return x;
  if (!x.backend.dtypes.includes(dtype)) throw new Error(`cast: the ${x.backend.name} backend does not support ${dtype}`);
  const y = wrap(x.backend.cast(x.storage, dtype), x.shape);
  if (!isFloat(dtype) || !isFloat(x.dtype)) return y;
  return record('cast', y, [x], (g) => [cast(g, x.dtype)]);
}

/** The same data as a new leaf that no gradient flows through (shares storage). */
export function detach(x: Tensor): Tensor {
  const t = new Tensor(x.storage, x.shape, x);
  t.name = x.name;
  return t;
}

/** Copies x to another backend (a readback on the GPU, hence async). */
export async function toBackend(x: Tensor, backend: Backend, dtype: DType = x.dtype): Promise<Tensor> {
  if (backend === x.backend && dtype === x.dtype) return x;
  const data = await x.data();
  return wrap(backend.upload(dtype, data), x.shape);
}
