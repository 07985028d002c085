// Training-step entries: a GPT language-model step (ours vs the tfjs GPT of bench/tfjsGpt.ts) and
// one PreferenceTrainer step of DPO and of DPO + GANPO at the embedded-task settings. Each of our
// trainers gets a device of its own so its peak pool bytes are its own.

import { GPT, type GPTConfig } from '../../src/nn/gpt.js';
import { AdamW } from '../../src/nn/optim.js';
import { defaultBaseLoss } from '../../src/ganpo/losses.js';
import { defaultGanpo } from '../../src/ganpo/regularizer.js';
import { defaultTrainConfig, PreferenceTrainer, type TrainConfig } from '../../src/ganpo/trainer.js';
import type { TokenizedPair } from '../../src/ganpo/data.js';
import { backward, crossEntropy, keep, tensor, tidy, type Backend } from '../../src/tensor/index.js';
import { Generator, uniformAt } from '../../src/tensor/random/philox.js';
import { countOnce, freshBackend, peakBytes, peerTask, plan, withBackend, type BenchContext, type Entry } from '../context.js';
import { timeTasks } from '../harness.js';
import type { BenchResult } from '../results.js';
import { causalBias, TfGpt } from '../tfjsGpt.js';

/** The GPT of the training entries: 4 layers, d = 128, 4 heads, T = 64, vocab 4096, no dropout. */
export const BENCH_GPT: GPTConfig = { vocabSize: 4096, contextLength: 64, dModel: 128, nLayers: 4, nHeads: 4, dropout: 0 };

/** n token ids uniform in [0, vocab), reproducible from the seed. */
function randomIds(n: number, vocab: number, seed: number): Int32Array {
  const g = new Generator(seed);
  const off = g.next(n);
  return Int32Array.from({ length: n }, (_, i) => Math.floor(uniformAt(g.key, off, i) * vocab));
}

const gptTrainStep: Entry = {
  name: 'gpt_train_step',
  async run(ctx) {
    const B = 16;
    const T = BENCH_GPT.contextLength;
    const V = BENCH_GPT.vocabSize;
    const ids = randomIds(B * T, V, 11);
    const targets = randomIds(B * T, V, 12);
    const lr = 3e-4;

    const own = await freshBackend(ctx);
    const backend: Backend = own.backend;
    const model = new GPT(BENCH_GPT, { backend, generator: new Generator(1) });
    // weightDecay 0 makes AdamW plain Adam, the peer's optimizer.
    const opt = new AdamW(model, { lr, weightDecay: 0 });
    const ours = () => withBackend(backend, async () => {
      const loss = tidy(() => {
        const x = tensor(ids, [B, T], { dtype: 'i32', backend });
        const y = tensor(targets, [B, T], { dtype: 'i32', backend });
        const l = crossEntropy(model.forward(x).logits, y);
        backward(l);
        return keep(l.detach());
      });
      opt.step();
      opt.zeroGrad();
      await loss.data();
      loss.dispose();
    });

    const { tf } = ctx.peer;
    const tfModel = new TfGpt(tf, BENCH_GPT, 1);
    const tfOpt = tf.train.adam(lr);
    const tIds = tf.tensor1d(ids, 'int32');
    const tLabels = tf.oneHot(tf.tensor1d(targets, 'int32'), V);
    const bias = causalBias(tf, T);
    const vars = tfModel.variables();
    const peer = async () => {
      const loss = tf.tidy(() => {
        const { value, grads } = tf.variableGrads(() => tfModel.loss(tIds, tLabels, B, T, bias), vars);
        tfOpt.applyGradients(Object.entries(grads).map(([name, tensor]) => ({ name, tensor })));
        return value;
      });
      await loss.data();
      loss.dispose();
    };

    try {
      const t = await timeTasks({ ours, peer: peerTask(ctx, peer) }, plan(ctx, { rounds: 2, iterations: 2, warmup: 1 }));
      const counters = await countOnce(backend, ours);
      const tokens = B * T;
      return [{
        name: 'gpt_train_step', ...ctx.stamp,
        params: { layers: BENCH_GPT.nLayers, d: BENCH_GPT.dModel, heads: BENCH_GPT.nHeads, T, batch: B, vocab: V, optimizer: 'adam' },
        median_ms: t.ours.median_ms, samples: t.ours.samples, tokens_per_s: tokens / (t.ours.median_ms / 1000),
        peer: ctx.peer.name, peer_median_ms: t.peer.median_ms, peer_tokens_per_s: tokens / (t.peer.median_ms / 1000),
        ratio_vs_peer: t.peer.median_ms / t.ours.median_ms, counters, peak_bytes: peakBytes(backend),
        note: 'one step = forward, backward, Adam update and a readback of the loss; ours AdamW with weight decay 0, peer tf.train.adam via tf.variableGrads + applyGradients; peer cross-entropy is tf.losses.softmaxCrossEntropy on one-hot labels',
      }];
    } finally {
      opt.dispose();
      tf.dispose([tIds, tLabels, bias, ...vars]);
      tfOpt.dispose();
      own.close();
    }
  },
};

/** Prompt of 10 tokens, chosen and rejected responses of 16 tokens each: 26 tokens a sequence. */
function syntheticPairs(n: number, seed: number): TokenizedPair[] {
  const ids = randomIds(n * 42, BENCH_GPT.vocabSize - 1, seed);
  // Ids start at 1: 0 is the pad id.
  const at = (k: number, from: number, len: number) => Array.from(ids.subarray(k * 42 + from, k * 42 + from + len), (x) => x + 1);
  return Array.from({ length: n }, (_, k) => ({ index: k, prompt: at(k, 0, 10), chosen: at(k, 10, 16), rejected: at(k, 26, 16) }));
}

/** The embedded task's training settings: batch 8 pairs, DPO β 0.1, lr 5e-4, cosine schedule. */
function preferenceConfig(ganpo: boolean): TrainConfig {
  const c = defaultTrainConfig(defaultBaseLoss('dpo'));
  Object.assign(c, { lr: 5e-4, batchSize: 8, steps: 10_000, schedule: 'cosine', warmupSteps: 0 });
  if (ganpo) c.ganpo = defaultGanpo(c.lr, BENCH_GPT.contextLength);
  return c;
}

async function openTrainer(ctx: BenchContext, ganpo: boolean, pairs: TokenizedPair[]) {
  const own = await freshBackend(ctx);
  const backend = own.backend;
  return withBackend(backend, async () => {
    const policy = new GPT(BENCH_GPT, { backend, generator: new Generator(1) });
    const reference = new GPT(BENCH_GPT, { backend, generator: new Generator(1) });
    const trainer = new PreferenceTrainer(policy, reference, pairs, [], preferenceConfig(ganpo), { padId: 0, backend });
    return {
      backend,
      step: () => withBackend(backend, () => trainer.trainStep()),
      close() {
        trainer.dispose();
        own.close();
      },
    };
  });
}

/** Back-to-back step pairs behind ganpo_overhead_paired. */
const PAIRS = 10;

/** Median of b / a over n back-to-back (a, b) calls, alternating which runs first. */
async function pairedRatio(a: () => Promise<unknown>, b: () => Promise<unknown>, n: number): Promise<number> {
  const time = async (f: () => Promise<unknown>) => {
    const t0 = performance.now();
    await f();
    return performance.now() - t0;
  };
  const ratios: number[] = [];
  for (let i = 0; i < n; i++) {
    if (i % 2 === 0) {
      const ta = await time(a);
      ratios.push((await time(b)) / ta);
    } else {
      const tb = await time(b);
      ratios.push(tb / (await time(a)));
    }
  }
  ratios.sort((x, y) => x - y);
  const m = ratios.length >> 1;
  return ratios.length % 2 ? ratios[m] : (ratios[m - 1] + ratios[m]) / 2;
}

const preferenceSteps: Entry = {
  name: 'ganpo_step',
  async run(ctx) {
    const pairs = syntheticPairs(64, 21);
    const dpo = await openTrainer(ctx, false, pairs);
    const ganpo = await openTrainer(ctx, true, pairs);
    try {
      const t = await timeTasks({ dpo: dpo.step, ganpo: ganpo.step }, plan(ctx, { rounds: 2, iterations: 3, warmup: 1 }));
      const paired = await pairedRatio(dpo.step, ganpo.step, ctx.quick ? 1 : PAIRS);
      const params = { layers: BENCH_GPT.nLayers, d: BENCH_GPT.dModel, heads: BENCH_GPT.nHeads, vocab: BENCH_GPT.vocabSize, pairs: 8, prompt: 10, response: 16, beta: 0.1 };
      const tokens = 2 * 8 * 26;
      const dpoResult: BenchResult = {
        name: 'dpo_step', ...ctx.stamp, params, median_ms: t.dpo.median_ms, samples: t.dpo.samples,
        tokens_per_s: tokens / (t.dpo.median_ms / 1000), counters: await countOnce(dpo.backend, dpo.step), peak_bytes: peakBytes(dpo.backend),
        note: 'one PreferenceTrainer.trainStep: policy and reference forwards, DPO loss, backward, clip, AdamW, one readback',
      };
      const ganpoResult: BenchResult = {
        name: 'ganpo_step', ...ctx.stamp, params: { ...params, critic_width: 64 }, median_ms: t.ganpo.median_ms, samples: t.ganpo.samples,
        tokens_per_s: tokens / (t.ganpo.median_ms / 1000),
        peer: 'dpo_step', peer_median_ms: t.dpo.median_ms, ratio_vs_peer: t.dpo.median_ms / t.ganpo.median_ms,
        ganpo_overhead: t.ganpo.median_ms / t.dpo.median_ms, ganpo_overhead_paired: paired, pairs: ctx.quick ? 1 : PAIRS,
        counters: await countOnce(ganpo.backend, ganpo.step), peak_bytes: peakBytes(ganpo.backend),
        note: 'DPO + GANPO with default critics (width 64, 2 layers, 4 heads, one critic update per step); its peer is our dpo_step, timed in alternation with it',
      };
      return [dpoResult, ganpoResult];
    } finally {
      dpo.close();
      ganpo.close();
    }
  },
};

export const trainingEntries: Entry[] = [gptTrainStep, preferenceSteps];
