// Spectral normalization as one op: W/σ with σ = uᵀ W v from the persistent vectors u and v, after
// an optional power iteration on them (torch.nn.utils.spectral_norm's weight). One kernel each way
// (src/shaders/spectral.ts) instead of the composed matmul, products, sums and division.

import { record } from '../autograd.js';
import { fmtShape, ShapeError } from '../shape.js';
import type { Tensor } from '../tensor.js';
import { backendOf, requireFloat, wrap } from './core.js';

export interface SpectralNormalizeOptions {
  /** Floor of the norms in the power iteration's normalizations (default 1e-12). */
  eps?: number;
  /** Run one power iteration on u and v (in place) first (default false). */
  iterate?: boolean;
}

/**
 * W/σ for w [..., rows, cols] (every leading index one matrix), σ = uᵀ W v with u [..., rows] and
 * v [..., cols]. The gradient flows into w only, through W and σ; u and v are constants with the
 * values this call used (a later iteration updating them in place does not change this backward).
 */
export function spectralNormalize(w: Tensor, u: Tensor, v: Tensor, opts: SpectralNormalizeOptions = {}): Tensor {
  requireFloat('spectralNormalize', w);
  const b = backendOf('spectralNormalize', [w, u, v]);
  if (w.rank < 2) throw new ShapeError('spectralNormalize', `weight ${fmtShape(w.shape)} must be [..., rows, cols]`);
  const [rows, cols] = w.shape.slice(-2);
  const batch = w.size / (rows * cols);
  if (u.size !== batch * rows || v.size !== batch * cols || u.dtype !== w.dtype || v.dtype !== w.dtype) {
    throw new ShapeError('spectralNormalize', `u ${fmtShape(u.shape)} and v ${fmtShape(v.shape)} must hold ${batch}×${rows} and ${batch}×${cols} ${w.dtype} values for weight ${fmtShape(w.shape)}`);
  }
  const r = b.spectralNormalize(w.storage, u.storage, v.storage, rows, cols, opts.eps ?? 1e-12, batch, opts.iterate ?? false);
  const sigma = wrap(r.sigma, [batch]);
  const uv = wrap(r.uv, [batch, rows + cols]);
  return record('spectralNormalize', wrap(r.wn, w.shape), [w], (g) => [
    wrap(b.spectralNormalizeBackward(g.storage, w.storage, uv.storage, sigma.storage, rows, cols, batch), w.shape),
  ], [sigma, uv]);
}
