// Helpers every op file uses: wrapping backend storages into tensors, input checks, and
// reducing a broadcast gradient back to an input's shape.

import type { Backend, Storage } from '../backend.js';
import type { DType } from '../dtype.js';
import { fmtShape, type Shape, ShapeError } from '../shape.js';
import { Tensor } from '../tensor.js';

export function wrap(storage: Storage, shape: Shape): Tensor {
  return new Tensor(storage, shape);
}

/** Checks that all tensors share one backend (and dtype unless mixed is allowed); returns it. */
export function backendOf(op: string, tensors: readonly Tensor[], sameDtype = true): Backend {
  const b = tensors[0].backend;
  for (const t of tensors) {
    if (t.backend !== b) throw new Error(`${op}: inputs live on different backends (${b.name} and ${t.backend.name}); move them with .to()`);
    if (sameDtype && t.dtype !== tensors[0].dtype) {
      throw new ShapeError(op, `dtype mismatch: ${tensors.map((x) => `${fmtShape(x.shape)} ${x.dtype}`).join(' vs ')}`);
    }
  }
  return b;
}

export function requireFloat(op: string, t: Tensor): void {
  if (t.dtype === 'i32') throw new ShapeError(op, `expects a floating-point tensor, got ${t.label()}`);
}

export function requireDtype(op: string, t: Tensor, dtype: DType): void {
  if (t.dtype !== dtype) throw new ShapeError(op, `expects ${dtype}, got ${t.label()}`);
}
