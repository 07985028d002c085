// packedSelfAttention (qkv [B, T, 3d] → [B, T, d]) equals the split-heads / attention / merge-heads
// composition it fuses, in values and gradients (f64 CPU, within 1e-12), passes gradcheck, and
// agrees between WebGPU and the CPU.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { backward, cpu, gradcheck, keep, mul, sum, tensor, tidy, type Backend } from '../../../src/tensor/index.js';
import { composedPackedAttention, packedSelfAttention } from '../../../src/tensor/ops/packedAttention.js';
import { ATTENTION_VARIANT, ATTENTION_VARIANT_HARDWARE } from '../../../src/shaders/attention.js';
import { values } from '../../helpers/attentionCases.js';
import { describeGpu, gpu } from '../../helpers/webgpu.js';

interface Case { B: number; T: number; H: number; Dh: number; causal: boolean; masked: boolean; seed: number }

const caseArb: fc.Arbitrary<Case> = fc.record({
  B: fc.integer({ min: 1, max: 3 }), T: fc.integer({ min: 1, max: 5 }), H: fc.integer({ min: 1, max: 3 }), Dh: fc.integer({ min: 1, max: 5 }),
  causal: fc.boolean(), masked: fc.boolean(), seed: fc.integer({ min: 0, max: 10_000 }),
});

function build(c: Case, backend: Backend, dtype: 'f32' | 'f64') {
  const o = { backend, dtype };
  const d = c.H * c.Dh;
  // Every row keeps its first key; others drop pseudo-randomly.
  const mask = c.masked ? tensor(Array.from({ length: c.B * c.T }, (_, i) => (i % c.T === 0 || (i * 7 + c.seed) % 3 ? 1 : 0)), [c.B, c.T], o) : undefined;
  return {
    qkv: tensor(values(c.B * c.T * 3 * d, c.seed), [c.B, c.T, 3 * d], o),
    w: tensor(values(c.B * c.T * d, c.seed + 1), [c.B, c.T, d], o),
    opts: { causal: c.causal, keyMask: mask },
  };
}

function run(c: Case, backend: Backend, dtype: 'f32' | 'f64', f: typeof packedSelfAttention): number[][] {
  return tidy(() => {
    const { qkv, w, opts } = build(c, backend, dtype);
    qkv.requiresGrad = true;
    const y = f(qkv, c.H, opts);
    backward(sum(mul(y, w)));
    return [y, qkv.grad!].map((t) => Array.from(t.dataSync()));
  });
}

describe('packedSelfAttention (CPU)', () => {
  it('equals attention on split heads, merged back, in values and gradients (f64, within 1e-12)', () => {
    fc.assert(fc.property(caseArb, (c) => {
      const fused = run(c, cpu, 'f64', packedSelfAttention);
      const composed = run(c, cpu, 'f64', composedPackedAttention);
      fused.forEach((xs, n) => xs.forEach((x, i) => expect(Math.abs(x - composed[n][i]), `tensor ${n} at ${i}`).toBeLessThan(1e-12 * (1 + Math.abs(composed[n][i])))));
    }), { numRuns: 40 });
  });

  it('passes gradcheck in f64', () => {
    fc.assert(fc.property(caseArb, (c) => {
      tidy(() => {
        const { qkv, w, opts } = build(c, cpu, 'f64');
        const r = gradcheck((x) => sum(mul(packedSelfAttention(x, c.H, opts), w)), [qkv]);
        expect(r.ok, r.report).toBe(true);
      });
    }), { numRuns: 15 });
  });

  it('names the op and the shapes on a bad input', () => {
    tidy(() => expect(() => packedSelfAttention(tensor(new Array(10).fill(0), [1, 2, 5], { backend: cpu }), 2)).toThrow(/packedSelfAttention: qkv \[1, 2, 5\]/));
  });
});

/** Longer sequences (several workgroup blocks of rows) and vec4 head dims for the GPU kernels. */
const gpuCaseArb: fc.Arbitrary<Case> = fc.record({
  B: fc.integer({ min: 1, max: 2 }), T: fc.oneof(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 30, max: 70 })), H: fc.integer({ min: 1, max: 3 }),
  Dh: fc.constantFrom(1, 3, 4, 8, 16), causal: fc.boolean(), masked: fc.boolean(), seed: fc.integer({ min: 0, max: 10_000 }),
});

describeGpu('packedSelfAttention on WebGPU', () => {
  // The kernels read q, k, v straight from the packed projection: checked against the CPU's
  // composition (split heads, attention, merge), in both kernel shapes (software and GPU forms).
  for (const variant of [ATTENTION_VARIANT, ATTENTION_VARIANT_HARDWARE]) {
    it(`values and qkv gradients match the CPU composition within 1e-5 + 1e-4·|cpu| (${variant.g}x${variant.rpi} kernels)`, async () => {
      const mine = gpu.attentionVariant;
      gpu.attentionVariant = variant;
      try {
        await fc.assert(fc.asyncProperty(gpuCaseArb, async (c) => {
          const [y, grad] = tidy(() => {
            const { qkv, w, opts } = build(c, gpu, 'f32');
            qkv.requiresGrad = true;
            const out = packedSelfAttention(qkv, c.H, opts);
            backward(sum(mul(out, w)));
            return [keep(out.detach()), keep(mul(qkv.grad!, 1))];
          });
          const g = [Array.from(await y.data()), Array.from(await grad.data())];
          y.dispose();
          grad.dispose();
          const want = run(c, cpu, 'f32', composedPackedAttention);
          g.forEach((xs, n) => xs.forEach((x, i) => expect(Math.abs(x - want[n][i]), `tensor ${n} at ${i} ${JSON.stringify(c)}`).toBeLessThan(1e-5 + 1e-4 * Math.abs(want[n][i]))));
        }), { numRuns: 10 });
      } finally {
        gpu.attentionVariant = mine;
      }
    });
  }
});
