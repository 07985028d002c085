// Profiles one GPT training step (forward, cross-entropy, backward, clipGradNorm, AdamW) on the
// WebGPU backend: the step's wall time, and each recorded dispatch replayed alone (submit, wait)
// so GPU time is attributed per kernel. Run: node dist/bench/profileStep.js [steps] [cpu]
// (after `npx tsc -p tsconfig.json --outDir dist`). Exits explicitly (Dawn keeps the process alive).

import { GPT } from '../src/nn/gpt.js';
import { AdamW, clipGradNorm } from '../src/nn/optim.js';
import { CpuBackend } from '../src/tensor/backends/cpu/index.js';
import { WebGPUBackend } from '../src/tensor/backends/webgpu/index.js';
import type { Backend } from '../src/tensor/backend.js';
import type { Launch } from '../src/shaders/kernel.js';
import { backward, crossEntropy, keep, tensor, tidy } from '../src/tensor/index.js';
import { Generator } from '../src/tensor/random/philox.js';
import { median, recordDispatches, replay, tally } from './replay.js';

const config = { vocabSize: 4096, contextLength: 64, dModel: 128, nLayers: 4, nHeads: 4, dropout: 0 };
const B = 16;
const T = 64;

async function trainSteps(backend: Backend, steps: number, onStepStart?: (i: number) => void): Promise<number[]> {
  const model = new GPT(config, { backend, generator: new Generator(1) });
  const opt = new AdamW(model, { lr: 1e-3 });
  const gen = new Generator(7);
  const times: number[] = [];
  for (let i = 0; i < steps; i++) {
    const ids = Array.from({ length: B * T }, (_, j) => (j * 2654435761 + i * 97) % config.vocabSize);
    const tg = ids.map((v) => (v * 31 + 7) % config.vocabSize);
    onStepStart?.(i);
    const t0 = performance.now();
    const loss = tidy(() => {
      const l = crossEntropy(model.forward(tensor(ids, [B, T], { dtype: 'i32', backend })).logits, tensor(tg, [B, T], { dtype: 'i32', backend }));
      backward(l);
      return keep(l.detach());
    });
    const norm = clipGradNorm(model.parameters(), 1.0);
    opt.step();
    opt.zeroGrad();
    await loss.item();
    await norm.item();
    times.push(performance.now() - t0);
    loss.dispose();
    norm.dispose();
  }
  void gen;
  model.dispose();
  return times;
}

/** The kernel name, with its shape when DETAIL=1 (matmul: M×N×K, batch, operand strides; others: the first uniform words). */
function detailKey(l: Launch): string {
  if (process.env.DETAIL !== '1') return l.kernel.name;
  const u = l.uniforms;
  if (l.kernel.name.startsWith('matmul')) return `${l.kernel.name} ${u[0]}x${u[1]}x${u[2]} b${u[3]} a(${u[4]},${u[5]}) b(${u[6]},${u[7]})`;
  return `${l.kernel.name} [${Array.from(u.slice(0, 4)).join(',')}]${u.length > 12 ? ` shape ${Array.from(u.slice(4, 8)).join(',')}` : ''}`;
}

async function main(): Promise<void> {
  const steps = Number(process.argv[2] ?? 3);
  if (process.argv[3] === 'cpu') {
    const t = await trainSteps(new CpuBackend(), steps);
    console.log(`cpu step ms: ${t.map((x) => x.toFixed(0)).join(' ')}; median ${median(t).toFixed(0)} (${(B * T / median(t) * 1000).toFixed(0)} tok/s)`);
    process.exit(0);
  }
  const gpu = await WebGPUBackend.create();
  const rec = recordDispatches(gpu);
  const times = await trainSteps(gpu, steps, (i) => {
    if (i === steps - 1) rec.start();
    gpu.resetCounters();
  });
  const c = gpu.counters();
  console.log(`webgpu step ms: ${times.map((x) => x.toFixed(0)).join(' ')}; median ${median(times).toFixed(0)} (${(B * T / median(times) * 1000).toFixed(0)} tok/s); last step ${c.dispatches} dispatches, ${c.submits} submits`);
  const recs = rec.take();
  const { base, ms } = await replay(gpu, recs, rec.dispatch, Number(process.env.REPS ?? 5));
  const per = new Map<string, { ms: number; n: number }>();
  recs.forEach((r, i) => tally(per, detailKey(r.launch), ms[i]));
  let total = 0;
  const rows = [...per.entries()].sort((a, b) => b[1].ms - a[1].ms);
  for (const [, e] of rows) total += e.ms;
  console.log(`replayed kernel time ${total.toFixed(0)} ms over ${recs.length} dispatches (wait overhead ${base.toFixed(3)} ms subtracted each)`);
  for (const [name, e] of rows) console.log(`${name.padEnd(40)} ${e.ms.toFixed(1).padStart(8)} ms  ${String(e.n).padStart(5)}x`);
  gpu.destroy();
  process.exit(0);
}

await main();
