// A/B timing of the fused attention kernels (src/shaders/attention.ts) at the bench entry's shape,
// B=8 H=4 T=128 causal, interleaved in one process (best of rounds; the machine is shared).
// Run: npx tsc -p tsconfig.json && node dist/bench/abAttention.js [GxRPI,GxRPI,...] [D] [full]
// e.g. `16x1,8x4 32` compares 16 invocations holding one row each with 8 holding four.

import { WebGPUBackend } from '../src/tensor/backends/webgpu/index.js';
import type { AttentionParams, Storage } from '../src/tensor/backend.js';
import { attentionBackwardLaunches, attentionLaunch, type AttentionVariant } from '../src/shaders/attention.js';
import { abTime, report, type Variant } from './abKernels.js';

const gpu = await WebGPUBackend.create();
const args = process.argv.slice(2);
const shapes: AttentionVariant[] = (args[0] ?? '16x1,16x4').split(',').map((s) => {
  const [g, rpi] = s.split('x').map(Number);
  return { g, rpi };
});
// B, H and T from the environment (default the bench entry's 8, 4, 128), e.g. B=48 H=4 T=26 for a critic.
const [B, H, T, D] = [Number(process.env.B ?? 8), Number(process.env.H ?? 4), Number(process.env.T ?? 128), Number(args[1] ?? 32)];
const p: AttentionParams = { batch: B, heads: H, tq: T, tk: T, d: D, scale: 1 / Math.sqrt(D), causal: args[2] !== 'full' };
const rand = (n: number) => gpu.upload('f32', Array.from({ length: n }, () => Math.random() * 2 - 1));
const n = B * H * T * D;
const [q, k, v, dout] = [rand(n), rand(n), rand(n), rand(n)];
const out = gpu.alloc('f32', n);
const lse = gpu.alloc('f32', B * H * T);
const stats = gpu.alloc('f32', 2 * B * H * T);
const [dq, dk, dv] = [gpu.alloc('f32', n), gpu.alloc('f32', n), gpu.alloc('f32', n)];
// Fill out / lse / stats once so the backward kernels see real values.
gpu.runKernel(attentionLaunch(p, false), [q, k, v, q], [out, lse]);
gpu.runKernel(attentionBackwardLaunches(p, false).stats, [out, dout, lse], [stats]);
await gpu.sync();

const variants: Variant[] = [];
const tag = (s: AttentionVariant) => `${s.g}x${s.rpi}`;
for (const s of shapes) {
  const l = attentionBackwardLaunches(p, false, s);
  const bufs: Storage[][] = [[q, k, v, q, out, lse], [q, k, v, q, stats, dout, dq], [q, k, v, q, stats, dout, dk, dv]];
  // abTime binds all buffers in order (the last is just the one it calls the output).
  variants.push({ name: `fwd ${tag(s)}`, launch: attentionLaunch(p, false, s), buffers: bufs[0] });
  variants.push({ name: `dq ${tag(s)}`, launch: l.dq, buffers: bufs[1] });
  variants.push({ name: `dkv ${tag(s)}`, launch: l.dkv, buffers: bufs[2] });
}
// REPS dispatches per submit (default 3); on a real GPU use more, its round trip outweighs a kernel.
const best = await abTime(gpu, variants, Number(process.env.ROUNDS ?? 5), Number(process.env.REPS ?? 3));
for (const s of shapes) {
  const mine = [...best].filter(([name]) => name.endsWith(` ${tag(s)}`));
  report(`${tag(s)} (sum ${mine.reduce((a, [, ms]) => a + ms, 0).toFixed(2)} ms)`, new Map(mine));
}
process.exit(0);
