// The fused attention op on the CPU backend: its gradients pass gradcheck in f64, and its values
// and gradients equal the composed matmul + bias + softmax version (the fallback) for causal,
// bidirectional and key-masked attention, with tq <= tk (causal queries aligned at the end).

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { backward, cpu, gradcheck, mul, sum, tensor, tidy } from '../../../src/tensor/index.js';
import { attention, composedAttention, type AttentionOptions } from '../../../src/tensor/ops/nn.js';
import type { Tensor } from '../../../src/tensor/tensor.js';
import { attentionCaseArb, keyMaskValues, values, type AttentionCase } from '../../helpers/attentionCases.js';

function inputs(c: AttentionCase, dtype: 'f32' | 'f64'): { q: Tensor; k: Tensor; v: Tensor; w: Tensor; opts: AttentionOptions } {
  const o = { backend: cpu, dtype };
  return {
    q: tensor(values(c.B * c.H * c.tq * c.D, c.seed), [c.B, c.H, c.tq, c.D], o),
    k: tensor(values(c.B * c.H * c.tk * c.D, c.seed + 1), [c.B, c.H, c.tk, c.D], o),
    v: tensor(values(c.B * c.H * c.tk * c.D, c.seed + 2), [c.B, c.H, c.tk, c.D], o),
    w: tensor(values(c.B * c.H * c.tq * c.D, c.seed + 3), [c.B, c.H, c.tq, c.D], o),
    opts: { causal: c.causal, keyMask: c.masked ? tensor(keyMaskValues(c), [c.B, c.tk], o) : undefined },
  };
}

describe('fused attention (CPU)', () => {
  it('passes gradcheck in f64 for q, k and v (causal, bidirectional, key-masked)', () => {
    fc.assert(fc.property(attentionCaseArb, (c) => {
      tidy(() => {
        const { q, k, v, w, opts } = inputs(c, 'f64');
        const r = gradcheck((a, b, d) => sum(mul(attention(a, b, d, opts), w)), [q, k, v]);
        expect(r.ok, r.report).toBe(true);
      });
    }), { numRuns: 20 });
  });

  it('equals the composed matmul + bias + softmax attention in values and gradients (f64, within 1e-12)', () => {
    fc.assert(fc.property(attentionCaseArb, (c) => {
      tidy(() => {
        const run = (f: typeof attention) => {
          const { q, k, v, w, opts } = inputs(c, 'f64');
          for (const t of [q, k, v]) t.requiresGrad = true;
          const out = f(q, k, v, opts);
          backward(sum(mul(out, w)));
          return [out, q.grad!, k.grad!, v.grad!].map((t) => Array.from(t.dataSync()));
        };
        const fused = run(attention);
        const composed = run(composedAttention);
        fused.forEach((xs, n) => xs.forEach((x, i) => expect(Math.abs(x - composed[n][i]), `tensor ${n} at ${i}`).toBeLessThan(1e-12 * (1 + Math.abs(composed[n][i])))));
      });
    }), { numRuns: 30 });
  });

  it('treats a fully masked row as the composed version does (uniform over the masked keys)', () => {
    const c: AttentionCase = { B: 1, H: 2, tq: 3, tk: 3, D: 4, causal: false, masked: true, seed: 5 };
    const run = (f: typeof attention) => tidy(() => {
      const { q, k, v } = inputs(c, 'f32');
      return Array.from(f(q, k, v, { keyMask: tensor([0, 0, 0], [1, 3], { backend: cpu }) }).dataSync());
    });
    const fused = run(attention);
    const composed = run(composedAttention);
    fused.forEach((x, i) => expect(Math.abs(x - composed[i])).toBeLessThan(1e-5));
  });
});
