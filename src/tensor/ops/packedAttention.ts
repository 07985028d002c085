// Multi-head self-attention straight from a packed q|k|v projection: qkv [B, T, 3·d] → [B, T, d]
// with the heads merged. Same values as attention(splitHeads(qkv)) then mergeHeads, but the
// attention kernels read q, k and v where the projection put them and write the output with its
// heads merged (AttentionParams.packedQKV: no split or merge copies, no permuted intermediate, no
// slices); the backward kernels write dq, dk and dv straight into one gradient laid out like qkv.

import { record } from '../autograd.js';
import type { PackedAttentionParams } from '../backend.js';
import { fmtShape, ShapeError } from '../shape.js';
import type { Tensor } from '../tensor.js';
import { wrap } from './core.js';
import { permute, reshape, slice } from './movement.js';
import { attention, type AttentionOptions } from './nn.js';

/** The composition this op fuses (and its fallback on a backend without fused attention). */
export function composedPackedAttention(qkv: Tensor, nHeads: number, opts: AttentionOptions = {}): Tensor {
  const [B, T, three] = qkv.shape;
  const Dh = three / 3 / nHeads;
  const heads = permute(reshape(qkv, [B, T, 3, nHeads, Dh]), [2, 0, 3, 1, 4]);
  const part = (i: number) => reshape(slice(heads, 0, i, i + 1), [B, nHeads, T, Dh]);
  const y = attention(part(0), part(1), part(2), opts);
  return reshape(permute(y, [0, 2, 1, 3]), [B, T, three / 3]);
}

/** qkv [B, T, 3d] (q | k | v, each split into nHeads heads of d/nHeads) → [B, T, d]. */
export function packedSelfAttention(qkv: Tensor, nHeads: number, opts: AttentionOptions = {}): Tensor {
  if (qkv.rank !== 3 || qkv.shape[2] % (3 * nHeads) !== 0) {
    throw new ShapeError('packedSelfAttention', `qkv ${fmtShape(qkv.shape)} must be [B, T, 3·d] with d divisible by ${nHeads} heads`);
  }
  const b = qkv.backend;
  const [B, T, three] = qkv.shape;
  const d = three / 3;
  const H = nHeads;
  const Dh = d / H;
  const m = opts.keyMask;
  if (m && (m.rank !== 2 || m.shape[0] !== B || m.shape[1] !== T)) throw new ShapeError('packedSelfAttention', `keyMask ${fmtShape(m.shape)} must be [${B}, ${T}]`);
  if (!b.attention || !b.attentionBackward) return composedPackedAttention(qkv, nHeads, opts);
  // The kernels read q, k and v where the projection put them (packedQKV): no split copies.
  const p: PackedAttentionParams = { batch: B, heads: H, tq: T, tk: T, d: Dh, scale: opts.scale ?? 1 / Math.sqrt(Dh), causal: opts.causal ?? false, packedQKV: true };
  const mask = !m ? null : m.dtype === qkv.dtype ? m : wrap(m.backend.cast(m.storage, qkv.dtype), m.shape);
  const r = b.attention(qkv.storage, qkv.storage, qkv.storage, mask?.storage ?? null, p);
  if (!r) {
    if (mask && mask !== m) mask.dispose();
    return composedPackedAttention(qkv, nHeads, opts);
  }
  // The kernels write the output with its heads merged, [B, T, d], and read the backward's
  // gradient in that layout too: no merge or split copies.
  const y = wrap(r.out, [B, T, d]);
  const lse = wrap(r.lse, [B * H * T]);
  return record('packedSelfAttention', y, [qkv], (g) => {
    // The backward kernels write dq, dk and dv where qkv holds q, k and v: no gather copies.
    const { dqkv } = b.attentionBackward!(qkv.storage, qkv.storage, qkv.storage, mask?.storage ?? null, y.storage, lse.storage, g.storage, p);
    return [wrap(dqkv, qkv.shape)];
  }, mask ? [qkv, y, lse, mask] : [qkv, y, lse]);
}
