// Profiles one PreferenceTrainer step of DPO and of DPO + GANPO at the bench's embedded-task
// settings (bench/entries/training.ts): the steps' wall times, interleaved in one process, then the
// dispatches of one step of each, replayed one at a time (submit, wait) so GPU time is attributed
// per kernel. With ORIGIN=1 dispatches are also grouped by the first src/ganpo, src/nn or trainer
// frame of the call stack that recorded them (where in the step they come from); DETAIL=1 splits
// matmuls by shape (other kernels by their first uniform words); ORIGIN=2 adds the caller of that frame.
// CRITIC_DROPOUT=p overrides the critics' dropout (0: none, which bounds what fusing the dropout could save).
// SEQ=1 lists the dispatches in order (with each one's replayed time unless REPLAY=0); REPLAY=0 only times the steps; ONLY=dpo or ONLY=ganpo steps that trainer alone.
// Run: node dist/bench/profileGanpo.js [steps] (after `npx tsc -p tsconfig.json --outDir dist`).
// Exits explicitly (Dawn keeps the process alive).

import { GPT } from '../src/nn/gpt.js';
import { defaultBaseLoss } from '../src/ganpo/losses.js';
import { defaultGanpo } from '../src/ganpo/regularizer.js';
import { defaultTrainConfig, PreferenceTrainer, type TrainConfig } from '../src/ganpo/trainer.js';
import type { TokenizedPair } from '../src/ganpo/data.js';
import { WebGPUBackend } from '../src/tensor/backends/webgpu/index.js';
import type { Launch } from '../src/shaders/kernel.js';
import { setBackend } from '../src/tensor/index.js';
import { Generator, uniformAt } from '../src/tensor/random/philox.js';
import { BENCH_GPT } from './entries/training.js';
import { median, recordDispatches, replay, tally, type Recorded } from './replay.js';

/** The same synthetic pairs as the bench entry (prompt 10, responses 16). */
function pairs(n: number, seed: number): TokenizedPair[] {
  const g = new Generator(seed);
  const off = g.next(n * 42);
  const ids = Int32Array.from({ length: n * 42 }, (_, i) => Math.floor(uniformAt(g.key, off, i) * (BENCH_GPT.vocabSize - 1)));
  const at = (k: number, from: number, len: number) => Array.from(ids.subarray(k * 42 + from, k * 42 + from + len), (x) => x + 1);
  return Array.from({ length: n }, (_, k) => ({ index: k, prompt: at(k, 0, 10), chosen: at(k, 10, 16), rejected: at(k, 26, 16) }));
}

function config(ganpo: boolean): TrainConfig {
  const c = defaultTrainConfig(defaultBaseLoss('dpo'));
  Object.assign(c, { lr: 5e-4, batchSize: 8, steps: 10_000, schedule: 'cosine', warmupSteps: 0 });
  if (ganpo) c.ganpo = { ...defaultGanpo(c.lr, BENCH_GPT.contextLength), ...(process.env.CRITIC_DROPOUT ? { criticDropout: Number(process.env.CRITIC_DROPOUT) } : {}) };
  return c;
}

/**
 * The first stack frame in our sources outside the backends: a src/ganpo or src/nn line for
 * forward work, a src/tensor op file (its VJP) or autograd for backward work.
 */
function origin(): string {
  const lines = (new Error().stack ?? '').split('\n').slice(2);
  // ORIGIN=2: the first two such frames (the op and who called it).
  const depth = process.env.ORIGIN === '2' ? 2 : 1;
  const found: string[] = [];
  for (const l of lines) {
    const m = /src\/(ganpo\/[\w/]+|nn\/[\w/]+|tensor\/ops\/\w+|tensor\/autograd)\.(?:js|ts):(\d+)/.exec(l);
    if (m) found.push(`${m[1]}:${m[2]} ${/at (?:async )?([\w.$<>]+) /.exec(l)?.[1] ?? '?'}`);
    if (found.length === depth) break;
  }
  return found.length ? found.join(' < ') : '(other)';
}

/** The kernel name, with the matmul's M×N×K and batch (others: the first uniform words) when DETAIL=1. */
function detailKey(l: Launch): string {
  const u = l.uniforms;
  if (process.env.DETAIL !== '1') return l.kernel.name;
  if (l.kernel.name.startsWith('matmul')) return `${l.kernel.name} ${u[0]}x${u[1]}x${u[2]} b${u[3]}`;
  return `${l.kernel.name} [${Array.from(u.slice(0, 8)).join(',')}]`;
}

async function main(): Promise<void> {
  const steps = Number(process.argv[2] ?? 4);
  const withOrigin = process.env.ORIGIN === '1' || process.env.ORIGIN === '2';
  const gpu = await WebGPUBackend.create();
  setBackend(gpu);
  const rec = recordDispatches(gpu, withOrigin ? origin : undefined);
  // Time spent waiting on readbacks (the GPU finishing queued work), per step.
  let waiting = 0;
  const read = gpu.read.bind(gpu);
  gpu.read = async (st) => {
    const t0 = performance.now();
    try {
      return await read(st);
    } finally {
      waiting += performance.now() - t0;
    }
  };
  const waits: Record<string, number[]> = { dpo: [], ganpo: [] };
  const data = pairs(64, 21);
  const make = (ganpo: boolean) => {
    const policy = new GPT(BENCH_GPT, { backend: gpu, generator: new Generator(1) });
    const reference = new GPT(BENCH_GPT, { backend: gpu, generator: new Generator(1) });
    return new PreferenceTrainer(policy, reference, data, [], config(ganpo), { padId: 0, backend: gpu });
  };
  const trainers = { dpo: make(false), ganpo: make(true) };
  const times: Record<string, number[]> = { dpo: [], ganpo: [] };
  const recs: Record<string, Recorded[]> = { dpo: [], ganpo: [] };
  const counts: Record<string, string> = {};
  for (let i = 0; i < steps; i++) {
    // Alternate the order so neither kind always runs first.
    for (const kind of (process.env.ONLY ? [process.env.ONLY] : i % 2 ? ['ganpo', 'dpo'] : ['dpo', 'ganpo']) as ('dpo' | 'ganpo')[]) {
      await gpu.sync();
      const last = i === steps - 1;
      gpu.resetCounters();
      if (last) rec.start();
      const t0 = performance.now();
      waiting = 0;
      await trainers[kind].trainStep();
      if (i > 0) waits[kind].push(waiting);
      await gpu.sync();
      if (i > 0) times[kind].push(performance.now() - t0);
      if (last) {
        recs[kind] = rec.take();
        const c = gpu.counters();
        counts[kind] = `${c.dispatches} dispatches, ${c.submits} submits, ${c.readbacks} readbacks`;
      }
    }
  }
  const kinds = (process.env.ONLY ? [process.env.ONLY] : ['dpo', 'ganpo']) as ('dpo' | 'ganpo')[];
  for (const kind of kinds) {
    console.log(`${kind} step ms: ${times[kind].map((x) => x.toFixed(0)).join(' ')}; median ${median(times[kind]).toFixed(0)} (waiting on readbacks ${median(waits[kind]).toFixed(0)}); last step ${counts[kind]}`);
  }
  // Each round's ratio compares two steps a few seconds apart: steadier under a varying load.
  const ratios = times.ganpo.map((g, i) => g / times.dpo[i]);
  if (!process.env.ONLY) console.log(`ganpo / dpo = ${(median(times.ganpo) / median(times.dpo)).toFixed(2)} (median of per-round ratios ${median(ratios).toFixed(2)})`);
  if (process.env.SEQ === '1' && process.env.REPLAY === '0') {
    // The step's dispatches in order, with where each was issued (ORIGIN=1/2) and its shape (DETAIL=1).
    for (const kind of kinds) recs[kind].forEach((r, i) => console.log(`${kind} ${String(i).padStart(4)} ${detailKey(r.launch).padEnd(60)} ${r.origin}`));
  }
  if (process.env.REPLAY === '0') {
    gpu.destroy();
    process.exit(0);
  }

  const reps = Number(process.env.REPS ?? 5);
  for (const kind of kinds) {
    const { base, ms } = await replay(gpu, recs[kind], rec.dispatch, reps);
    // SEQ=1 with the replay: each dispatch's own kernel time, in order.
    if (process.env.SEQ === '1') recs[kind].forEach((r, i) => console.log(`${kind} ${String(i).padStart(4)} ${ms[i].toFixed(3).padStart(7)} ms ${detailKey(r.launch).padEnd(60)} ${r.origin}`));
    const byKernel = new Map<string, { ms: number; n: number }>();
    const byOrigin = new Map<string, { ms: number; n: number }>();
    recs[kind].forEach((r, i) => {
      tally(byKernel, detailKey(r.launch), ms[i]);
      tally(byOrigin, r.origin, ms[i]);
    });
    const show = (title: string, map: Map<string, { ms: number; n: number }>, top: number) => {
      const rows = [...map.entries()].sort((a, b) => b[1].ms - a[1].ms);
      const total = rows.reduce((s, [, e]) => s + e.ms, 0);
      console.log(`\n${kind}: ${title} — replayed kernel time ${total.toFixed(0)} ms over ${recs[kind].length} dispatches (wait ${base.toFixed(3)} ms subtracted each)`);
      for (const [name, e] of rows.slice(0, top)) console.log(`  ${name.padEnd(56)} ${e.ms.toFixed(1).padStart(8)} ms  ${String(e.n).padStart(5)}x`);
    };
    show('by kernel', byKernel, Number(process.env.TOP ?? 30));
    if (withOrigin) show('by origin', byOrigin, Number(process.env.TOP ?? 60));
  }
  for (const t of Object.values(trainers)) t.dispose();
  gpu.destroy();
  process.exit(0);
}

await main();
