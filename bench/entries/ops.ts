// Single-op entries: square f32 matmul, causal attention forward + backward, softmax and layerNorm
// rows; each against the same computation written with tfjs ops on the peer backend.

import type * as tfTypes from '@tensorflow/tfjs-core';
import { attention, backward, layerNorm, matmul, ones, randn, softmax, tidy, zeros, type Tensor } from '../../src/tensor/index.js';
import { Generator } from '../../src/tensor/random/philox.js';
import { countOnce, peerTask, plan, syncOurs, type BenchContext, type Entry } from '../context.js';
import { timeTasks, type Plan } from '../harness.js';
import type { BenchResult } from '../results.js';

type TF = typeof tfTypes;

/** Times ours against the peer and fills the shared fields; `work` turns a time into a rate. */
async function compare(
  ctx: BenchContext, name: string, params: BenchResult['params'], p: Plan,
  ours: () => Promise<void>, peer: () => Promise<void>, rate: (ms: number) => Partial<BenchResult>, peerRate: (ms: number) => Partial<BenchResult>,
): Promise<BenchResult> {
  const t = await timeTasks({ ours, peer: peerTask(ctx, peer) }, plan(ctx, p));
  const counters = await countOnce(ctx.backend, ours);
  return {
    name, ...ctx.stamp, params, median_ms: t.ours.median_ms, samples: t.ours.samples, ...rate(t.ours.median_ms),
    peer: ctx.peer.name, peer_median_ms: t.peer.median_ms, ...peerRate(t.peer.median_ms),
    ratio_vs_peer: t.peer.median_ms / t.ours.median_ms, counters,
  };
}

const gflops = (flops: number) => (ms: number) => ({ gflops: flops / (ms * 1e6) });
const peerGflops = (flops: number) => (ms: number) => ({ peer_gflops: flops / (ms * 1e6) });
const gbps = (bytes: number) => (ms: number) => ({ gbps: bytes / (ms * 1e6) });
const peerGbps = (bytes: number) => (ms: number) => ({ peer_gbps: bytes / (ms * 1e6) });

function disposeAll(...ts: Tensor[]): void {
  for (const t of ts) t.dispose();
}

/** Runs a tfjs computation and waits for it on the peer device, then frees what it made. */
async function peerCall(ctx: BenchContext, fn: () => tfTypes.TensorContainer): Promise<void> {
  const out = ctx.peer.tf.tidy(fn);
  await ctx.peer.sync();
  ctx.peer.tf.dispose(out);
}

async function matmulCase(ctx: BenchContext, n: number): Promise<BenchResult> {
  const { tf } = ctx.peer;
  const gen = new Generator(n);
  const a = randn([n, n], { backend: ctx.backend, generator: gen });
  const b = randn([n, n], { backend: ctx.backend, generator: gen });
  const ta = tf.randomNormal([n, n]);
  const tb = tf.randomNormal([n, n]);
  const flops = 2 * n ** 3;
  const p: Plan = n <= 256 ? { rounds: 3, iterations: 10, warmup: 3 } : n <= 512 ? { rounds: 3, iterations: 5, warmup: 2 } : { rounds: 4, iterations: 4, warmup: 2 };
  try {
    return await compare(ctx, 'matmul', { n, dtype: 'f32' }, p,
      async () => {
        const c = matmul(a, b);
        await syncOurs(ctx.backend);
        c.dispose();
      },
      () => peerCall(ctx, () => tf.matMul(ta, tb)),
      gflops(flops), peerGflops(flops));
  } finally {
    disposeAll(a, b);
    tf.dispose([ta, tb]);
  }
}

const matmulEntry: Entry = {
  name: 'matmul',
  async run(ctx) {
    const sizes = [256, 512, 1024];
    const out: BenchResult[] = [];
    for (const n of sizes) out.push(await matmulCase(ctx, n));
    if (ctx.gpu && !ctx.gpu.isSoftwareAdapter) out.push(await matmulCase(ctx, 4096));
    else out[out.length - 1].note = 'n=4096 skipped: the adapter is a software driver (or ours runs on the CPU)';
    return out;
  },
};

/** The tfjs composition of our attention op: scaled scores, additive causal bias, softmax, · v. */
function tfAttention(tf: TF, bias: tfTypes.Tensor, scale: number) {
  return (q: tfTypes.Tensor, k: tfTypes.Tensor, v: tfTypes.Tensor): tfTypes.Tensor =>
    tf.matMul(tf.softmax(tf.add(tf.mul(tf.matMul(q, k, false, true), scale), bias)), v);
}

const attentionEntry: Entry = {
  name: 'attention_fwd_bwd',
  async run(ctx) {
    const [B, H, T, D] = [8, 4, 128, 32];
    const shape = [B, H, T, D];
    const { tf } = ctx.peer;
    const gen = new Generator(7);
    const [q, k, v] = [0, 1, 2].map(() => randn(shape, { backend: ctx.backend, generator: gen, requiresGrad: true }));
    const dy = randn(shape, { backend: ctx.backend, generator: gen });
    const [tq, tk, tv, tdy] = [0, 1, 2, 3].map(() => tf.randomNormal(shape));
    const biasValues = new Float32Array(T * T);
    for (let i = 0; i < T; i++) for (let j = i + 1; j < T; j++) biasValues[i * T + j] = -1e9;
    const bias = tf.tensor2d(biasValues, [T, T]);
    const grads = tf.grads(tfAttention(tf, bias, 1 / Math.sqrt(D)));
    // Dense count: QKᵀ and P·V forward, four products backward (the masked half is computed too).
    const flops = 12 * B * H * T * T * D;
    try {
      const r = await compare(ctx, 'attention_fwd_bwd', { B, H, T, D, causal: true }, { rounds: 3, iterations: 4, warmup: 2 },
        async () => {
          tidy(() => backward(attention(q, k, v, { causal: true }), dy));
          await syncOurs(ctx.backend);
          for (const t of [q, k, v]) {
            t.grad?.dispose();
            t.grad = null;
          }
        },
        () => peerCall(ctx, () => grads([tq, tk, tv], tdy)),
        gflops(flops), peerGflops(flops));
      r.note = 'peer: the same composition (matmul, scale, additive causal bias, tf.softmax, matmul) differentiated by tf.grads; GFLOP/s counts the dense 12·B·H·T²·D';
      return [r];
    } finally {
      disposeAll(q, k, v, dy);
      tf.dispose([tq, tk, tv, tdy, bias]);
    }
  },
};

const ROWS = 4096;
const COLS = 1024;

const softmaxEntry: Entry = {
  name: 'softmax',
  async run(ctx) {
    const { tf } = ctx.peer;
    const x = randn([ROWS, COLS], { backend: ctx.backend, generator: new Generator(3) });
    const tx = tf.randomNormal([ROWS, COLS]);
    const bytes = 2 * ROWS * COLS * 4; // read x, write y
    try {
      const r = await compare(ctx, 'softmax', { rows: ROWS, cols: COLS, pass: 'fwd' }, { rounds: 3, iterations: 5, warmup: 2 },
        async () => {
          const y = softmax(x);
          await syncOurs(ctx.backend);
          y.dispose();
        },
        () => peerCall(ctx, () => tf.softmax(tx)),
        gbps(bytes), peerGbps(bytes));
      r.note = 'GB/s counts one read of x and one write of y';
      return [r];
    } finally {
      x.dispose();
      tx.dispose();
    }
  },
};

const layerNormEntry: Entry = {
  name: 'layernorm',
  async run(ctx) {
    const { tf } = ctx.peer;
    const x = randn([ROWS, COLS], { backend: ctx.backend, generator: new Generator(4) });
    const gamma = ones([COLS], { backend: ctx.backend });
    const beta = zeros([COLS], { backend: ctx.backend });
    const tx = tf.randomNormal([ROWS, COLS]);
    const tg = tf.ones([COLS]);
    const tb = tf.zeros([COLS]);
    const eps = 1e-5;
    const bytes = 2 * ROWS * COLS * 4;
    try {
      const r = await compare(ctx, 'layernorm', { rows: ROWS, cols: COLS, pass: 'fwd' }, { rounds: 3, iterations: 5, warmup: 2 },
        async () => {
          const y = layerNorm(x, gamma, beta, eps);
          await syncOurs(ctx.backend);
          y.dispose();
        },
        () => peerCall(ctx, () => {
          const { mean, variance } = tf.moments(tx, -1, true);
          return tf.add(tf.mul(tf.mul(tf.sub(tx, mean), tf.rsqrt(tf.add(variance, eps))), tg), tb);
        }),
        gbps(bytes), peerGbps(bytes));
      r.note = 'ours is one fused kernel (it also writes the row mean and rstd for backward); peer: tf.moments then elementwise ops. GB/s counts one read of x and one write of y';
      return [r];
    } finally {
      disposeAll(x, gamma, beta);
      tf.dispose([tx, tg, tb]);
    }
  },
};

export const opEntries: Entry[] = [matmulEntry, attentionEntry, softmaxEntry, layerNormEntry];
