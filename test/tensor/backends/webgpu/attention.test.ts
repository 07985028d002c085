// The fused attention kernels (src/shaders/attention.ts) agree with the CPU backend's loop version,
// values and q/k/v gradients in f32, for causal, bidirectional and key-masked attention at odd sizes
// (rows spanning several workgroups and partly filling the last one, tq < tk and tq > tk, head dims
// with vec4 and scalar rows), including rows that keep no key (the kernels skip causally hidden keys
// except for those rows), and the GPU op matches the composed version too. With the packed q|k|v
// layout the backward writes every element of the one packed gradient, in its three dispatches.

import fc from 'fast-check';
import { expect, it } from 'vitest';
import { backward, clone, mul, sum, tensor, tidy } from '../../../../src/tensor/index.js';
import { attention, composedAttention, type AttentionOptions } from '../../../../src/tensor/ops/nn.js';
import type { Backend, PackedAttentionParams } from '../../../../src/tensor/backend.js';
import { ATTENTION_VARIANT, ATTENTION_VARIANT_HARDWARE } from '../../../../src/shaders/attention.js';
import { attentionCaseArb, keyMaskValues, values, type AttentionCase } from '../../../helpers/attentionCases.js';
import { cpu, describeGpu, expectClose, gpu } from '../../../helpers/webgpu.js';

/** Output and q, k, v gradients of sum(attention(q, k, v) · w) on a backend. */
async function run(backend: Backend, c: AttentionCase, f: typeof attention, maskOf = keyMaskValues): Promise<number[][]> {
  const out = tidy(() => {
    const o = { backend };
    const q = tensor(values(c.B * c.H * c.tq * c.D, c.seed), [c.B, c.H, c.tq, c.D], o);
    const k = tensor(values(c.B * c.H * c.tk * c.D, c.seed + 1), [c.B, c.H, c.tk, c.D], o);
    const v = tensor(values(c.B * c.H * c.tk * c.D, c.seed + 2), [c.B, c.H, c.tk, c.D], o);
    const w = tensor(values(c.B * c.H * c.tq * c.D, c.seed + 3), [c.B, c.H, c.tq, c.D], o);
    const opts: AttentionOptions = { causal: c.causal, keyMask: c.masked ? tensor(maskOf(c), [c.B, c.tk], o) : undefined };
    for (const t of [q, k, v]) t.requiresGrad = true;
    const y = f(q, k, v, opts);
    backward(sum(mul(y, w)));
    return [clone(y.detach()), clone(q.grad!), clone(k.grad!), clone(v.grad!)];
  });
  const data = await Promise.all(out.map(async (t) => Array.from(await t.data())));
  out.forEach((t) => t.dispose());
  return data;
}

// Head dims are few (each compiles its own pipelines); the sizes around them vary.
const gpuCaseArb = fc.tuple(attentionCaseArb, fc.constantFrom(1, 7, 32), fc.integer({ min: 1, max: 40 }))
  .map(([c, D, tq]) => ({ ...c, D, tq, tk: tq + (c.tk - c.tq) }));

const names = ['out', 'dq', 'dk', 'dv'];

/**
 * Cases where some rows keep no key: tq > tk (causal rows before tq − tk see none), and key masks
 * that drop the first keys of batch 0 (causal rows seeing only those keep none) and, with B > 1,
 * every key of batch 1. Sizes reach past one workgroup's block of rows (32 on lavapipe).
 */
const degenerateCaseArb = fc.tuple(attentionCaseArb, fc.constantFrom(1, 7, 32), fc.integer({ min: 1, max: 70 }), fc.integer({ min: -9, max: 9 }))
  .map(([c, D, tq, dt]) => ({ ...c, D, tq, tk: Math.max(1, tq + dt) }));

function droppingMask(c: AttentionCase): number[] {
  return Array.from({ length: c.B * c.tk }, (_, n) => {
    const [b, j] = [Math.floor(n / c.tk), n % c.tk];
    if (b === 1) return 0;
    if (b === 0 && j < 3) return 0;
    return (n * 7 + c.seed) % 3 !== 0 ? 1 : 0;
  });
}

describeGpu('fused attention on WebGPU', () => {
  it('matches the CPU backend in values and gradients (f32, within 2e-5 + 1e-4·|cpu|)', async () => {
    await fc.assert(fc.asyncProperty(gpuCaseArb, async (c) => {
      const g = await run(gpu, c, attention);
      const r = await run(cpu, c, attention);
      g.forEach((xs, i) => expectClose(xs, r[i], 2e-5, 1e-4, `${names[i]} ${JSON.stringify(c)}`));
    }), { numRuns: 12 });
  });

  it('matches the CPU backend where rows keep no key (tq > tk, masks dropping the first or all keys)', async () => {
    await fc.assert(fc.asyncProperty(degenerateCaseArb, async (c) => {
      const g = await run(gpu, c, attention, droppingMask);
      const r = await run(cpu, c, attention, droppingMask);
      g.forEach((xs, i) => expectClose(xs, r[i], 2e-5, 1e-4, `${names[i]} ${JSON.stringify(c)}`));
    }), { numRuns: 12 });
  });

  // The other adapter kind's kernel shape, on this adapter (lavapipe runs the hardware form here).
  const other = ATTENTION_VARIANT_HARDWARE;
  it(`the ${other.g}x${other.rpi} form matches the CPU backend too, rows that keep no key included`, async () => {
    const mine = gpu.attentionVariant;
    const swapped = mine.g === other.g && mine.rpi === other.rpi ? ATTENTION_VARIANT : other;
    gpu.attentionVariant = swapped;
    try {
      await fc.assert(fc.asyncProperty(gpuCaseArb, async (c) => {
        const g = await run(gpu, c, attention);
        const r = await run(cpu, c, attention);
        g.forEach((xs, i) => expectClose(xs, r[i], 2e-5, 1e-4, `${swapped.g}x${swapped.rpi} ${names[i]} ${JSON.stringify(c)}`));
      }), { numRuns: 6 });
      await fc.assert(fc.asyncProperty(degenerateCaseArb, async (c) => {
        const g = await run(gpu, c, attention, droppingMask);
        const r = await run(cpu, c, attention, droppingMask);
        g.forEach((xs, i) => expectClose(xs, r[i], 2e-5, 1e-4, `${swapped.g}x${swapped.rpi} ${names[i]} ${JSON.stringify(c)}`));
      }), { numRuns: 6 });
    } finally {
      gpu.attentionVariant = mine;
    }
  });

  it('matches the composed attention on the GPU, including fully masked rows', async () => {
    for (const c of [
      { B: 2, H: 3, tq: 65, tk: 65, D: 32, causal: true, masked: true, seed: 3 },
      { B: 1, H: 1, tq: 5, tk: 9, D: 7, causal: true, masked: false, seed: 4 },
      { B: 3, H: 2, tq: 6, tk: 6, D: 1, causal: false, masked: true, seed: 11 },
    ] satisfies AttentionCase[]) {
      const g = await run(gpu, c, attention);
      const r = await run(gpu, c, composedAttention);
      g.forEach((xs, i) => expectClose(xs, r[i], 2e-5, 1e-4, names[i]));
    }
    // A batch whose keys are all padding: every score is −1e9 and both versions average the values
    // uniformly, on the GPU as on the CPU (the softmax kernel normalizes relative to the row max, so
    // rows of equal huge scores still sum to 1).
    const make = (backend: Backend, op: typeof attention) => tidy(() => {
      const q = tensor(values(2 * 4 * 3, 1), [1, 2, 4, 3], { backend });
      const k = tensor(values(2 * 4 * 3, 2), [1, 2, 4, 3], { backend });
      const v = tensor(values(2 * 4 * 3, 3), [1, 2, 4, 3], { backend });
      const keyMask = tensor([0, 0, 0, 0], [1, 4], { backend });
      return op(q, k, v, { keyMask });
    });
    const out = [make(gpu, attention), make(gpu, composedAttention), make(cpu, composedAttention)];
    expectClose(await out[0].data(), await out[2].data(), 1e-5, 1e-5, 'fully masked, fused');
    expectClose(await out[1].data(), await out[2].data(), 1e-5, 1e-5, 'fully masked, composed');
    out.forEach((t) => t.dispose());
  });
});

/** Packed self-attention cases (tq = tk = T): one scalar and one vec4 head dim, rows past one block. */
const packedCaseArb = fc.tuple(attentionCaseArb, fc.constantFrom(3, 8), fc.oneof(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 30, max: 70 })))
  .map(([c, D, T]) => ({ ...c, D, tq: T, tk: T }));

describeGpu('fused attention on WebGPU, packed q|k|v layout', () => {
  for (const variant of [ATTENTION_VARIANT, ATTENTION_VARIANT_HARDWARE]) {
    it(`the backward writes all of dqkv (pool buffers poisoned with NaN) in 3 dispatches and matches the CPU (${variant.g}x${variant.rpi} kernels)`, async () => {
      const mine = gpu.attentionVariant;
      gpu.attentionVariant = variant;
      try {
        await fc.assert(fc.asyncProperty(packedCaseArb, async (c) => {
          const p: PackedAttentionParams = { batch: c.B, heads: c.H, tq: c.tq, tk: c.tk, d: c.D, scale: 1 / Math.sqrt(c.D), causal: c.causal, packedQKV: true };
          const n = c.B * c.tq * 3 * c.H * c.D;
          const qkv = values(n, c.seed);
          const dout = values(c.B * c.tq * c.H * c.D, c.seed + 1);
          // Odd seeds drop the first keys of batch 0 and all of batch 1: rows that keep no key.
          const mask = c.masked ? (c.seed % 2 ? droppingMask(c) : keyMaskValues(c)) : null;
          // The CPU's forward gives both backends' backward the same out and lse.
          const [cq, cm, cd] = [cpu.upload('f32', qkv), mask && cpu.upload('f32', mask), cpu.upload('f32', dout)];
          const f = cpu.attention(cq, cq, cq, cm, p);
          const want = cpu.attentionBackward(cq, cq, cq, cm, f.out, f.lse, cd, p).dqkv;
          const [gq, gm, gd] = [gpu.upload('f32', qkv), mask && gpu.upload('f32', mask), gpu.upload('f32', dout)];
          const [gout, glse] = [gpu.upload('f32', cpu.readSync(f.out)), gpu.upload('f32', cpu.readSync(f.lse))];
          // Every free buffer of dqkv's size holds NaN: an element the kernels skip reads back NaN.
          gpu.releasePool();
          for (let i = 0; i < 3; i++) gpu.free(gpu.upload('f32', new Float32Array(n).fill(NaN)));
          await gpu.sync();
          gpu.resetCounters();
          const { dqkv } = gpu.attentionBackward(gq, gq, gq, gm, gout, glse, gd, p);
          expect(gpu.counters().dispatches, 'stats, dq, dk/dv').toBe(3);
          expectClose(await gpu.read(dqkv), cpu.readSync(want), 2e-5, 1e-4, `dqkv ${JSON.stringify(c)}`);
          for (const x of [gq, gm, gd, gout, glse, dqkv]) if (x) gpu.free(x);
        }), { numRuns: 10 });
      } finally {
        gpu.attentionVariant = mine;
      }
    });
  }

  it('names the layout when packedQKV is given separate q, k and v', () => {
    const p: PackedAttentionParams = { batch: 1, heads: 1, tq: 2, tk: 2, d: 4, scale: 0.5, causal: false, packedQKV: true };
    for (const b of [gpu, cpu] as const) {
      const [a, x] = [b.upload('f32', new Array(24).fill(0)), b.upload('f32', new Array(24).fill(0))];
      const small = b.upload('f32', new Array(8).fill(0));
      const lse = b.upload('f32', [0, 0]);
      expect(() => b.attentionBackward(a, x, a, null, small, lse, small, p)).toThrow(new RegExp(`${b.name} attentionBackward: packedQKV needs q, k and v to be one buffer and tq = tk \\(got separate buffers`));
      expect(() => b.attention(a, a, x, null, p)).toThrow(`${b.name} attention: packedQKV needs`);
      for (const s of [a, x, small, lse]) b.free(s);
    }
  });
});
