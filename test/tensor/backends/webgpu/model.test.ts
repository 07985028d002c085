// A whole model agrees across backends: a 2-layer GPT built with the same seed on the CPU and on
// WebGPU starts from identical weights (counter-based init), and its masked cross-entropy loss and
// every parameter gradient match. Also counts the GPU work of one AdamW training step, and checks
// the fused epilogues (the MLP's GELU in c_fc's matmul, the residual adds in the output
// projections' where dropout is inactive) against the separate ops: bit for bit, and exactly the
// dispatches they save.

import { afterAll, expect, it } from 'vitest';
import { GPT, type GPTConfig } from '../../../../src/nn/gpt.js';
import { AdamW } from '../../../../src/nn/optim.js';
import type { Backend } from '../../../../src/tensor/backend.js';
import { crossEntropy, noGrad, tensor, tidy } from '../../../../src/tensor/index.js';
import { Generator } from '../../../../src/tensor/random/philox.js';
import type { Tensor } from '../../../../src/tensor/tensor.js';
import { cpu, describeGpu, expectClose, gpu } from '../../../helpers/webgpu.js';

const config: GPTConfig = { vocabSize: 64, contextLength: 16, dModel: 32, nLayers: 2, nHeads: 4, dropout: 0 };
const B = 3;
const T = 16;

/** Token ids, next-token targets with the padded positions ignored, and a mask padding row 1's first 5 positions. */
function batch(backend: Backend): { ids: Tensor; targets: Tensor; mask: Tensor } {
  const ids: number[] = [];
  const targets: number[] = [];
  const mask: number[] = [];
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      const pad = b === 1 && t < 5;
      ids.push((7 * b + 13 * t + ((b * t) % 5)) % config.vocabSize);
      targets.push(pad ? -100 : (3 * b + 11 * t + 1) % config.vocabSize);
      mask.push(pad ? 0 : 1);
    }
  }
  return {
    ids: tensor(ids, [B, T], { dtype: 'i32', backend }),
    targets: tensor(targets, [B, T], { dtype: 'i32', backend }),
    mask: tensor(mask, [B, T], { backend }),
  };
}

function lossOf(m: GPT, d: ReturnType<typeof batch>): Tensor {
  return crossEntropy(m.forward(d.ids, { attentionMask: d.mask }).logits, d.targets);
}

const models: GPT[] = [];
afterAll(() => models.forEach((m) => m.dispose()));

describeGpu('GPT on WebGPU vs CPU', () => {
  it('same seed gives identical init; loss and every parameter gradient agree (loss within 1e-5·(1 + |cpu|), gradients within 1e-5·max|grad|)', async () => {
    const mc = new GPT(config, { backend: cpu, generator: new Generator(1) });
    const mg = new GPT(config, { backend: gpu, generator: new Generator(1) });
    models.push(mc, mg);
    const pc = mc.namedParameters();
    const pg = mg.namedParameters();
    expect(pg.map(([n]) => n)).toEqual(pc.map(([n]) => n));
    // Init draws from Philox counters, so both backends see the same random bits; the GPU turns
    // them into normals in f32 (about 1 ulp off the CPU's f64 transform), so: within 1e-7 + 1e-6·|cpu|.
    for (let i = 0; i < pc.length; i++) {
      expectClose(await pg[i]![1].data(), pc[i]![1].dataSync(), 1e-7, 1e-6, `init ${pc[i]![0]}`);
    }

    const dc = batch(cpu);
    const dg = batch(gpu);
    const lc = tidy(() => {
      const l = lossOf(mc, dc);
      l.backward();
      return l;
    });
    const lg = tidy(() => {
      const l = lossOf(mg, dg);
      l.backward();
      return l;
    });
    expectClose([await lg.item()], [lc.itemSync()], 1e-5, 1e-5, 'loss');
    let worst = 0;
    for (let i = 0; i < pc.length; i++) {
      const [name, p] = pc[i]!;
      const c = p.grad!.dataSync();
      const g = await pg[i]![1].grad!.data();
      let scale = 0;
      for (const v of c) scale = Math.max(scale, Math.abs(v));
      // f32 on both sides with different summation orders (blocked matmul, tree reductions):
      // errors scale with the largest gradient entry of the tensor, not with each entry. Measured on
      // lavapipe: worst 4e-7·max|grad|.
      expectClose(g, c, 1e-5 * scale + 1e-8, 0, `grad ${name}`);
      for (let j = 0; j < c.length; j++) worst = Math.max(worst, Math.abs(g[j]! - c[j]!) / (scale + 1e-30));
    }
    console.log(`GPT backend agreement: loss cpu ${lc.itemSync()} gpu ${await lg.item()}, worst grad |gpu - cpu| / max|grad| = ${worst.toExponential(2)}`);
    for (const t of [lc, lg, dc.ids, dc.targets, dc.mask, dg.ids, dg.targets, dg.mask]) t.dispose();
  });

  it('fused epilogues equal the separate ops bit for bit (loss, logits and every gradient; training with and without dropout, eval, a cached noGrad forward), 3 forward dispatches fewer per block (1 with an active dropout), the same backward', async () => {
    const bitsOf = async (t: Tensor) => Array.from(new Uint32Array(Float32Array.from(await t.data()).buffer));
    const modes = [{ dropout: 0, training: true, saved: 3 }, { dropout: 0.1, training: true, saved: 1 }, { dropout: 0.1, training: false, saved: 3 }];
    for (const mode of modes) {
      const run = async (fuse: boolean) => {
        const m = new GPT({ ...config, dropout: mode.dropout }, { backend: gpu, generator: new Generator(3), dropoutGenerator: new Generator(9), fuseEpilogues: fuse });
        m.train(mode.training);
        const d = batch(gpu);
        gpu.resetCounters();
        const loss = lossOf(m, d);
        const forward = gpu.counters().dispatches;
        gpu.resetCounters();
        loss.backward();
        const backward = gpu.counters().dispatches;
        const values = [await bitsOf(loss), ...(await Promise.all(m.parameters().map((p) => bitsOf(p.grad!))))];
        // Generation's path: the KV cache, no gradient (so no pre-activation is stored).
        const cache = m.newCache();
        const cached = noGrad(() => {
          m.forward(tensor([5, 9, 2, 7, 1, 3, 8, 4, 6], [B, 3], { dtype: 'i32', backend: gpu }), { kvCache: cache, lastOnly: true }).logits.dispose();
          return m.forward(tensor([1, 2, 3], [B, 1], { dtype: 'i32', backend: gpu }), { kvCache: cache }).logits;
        });
        values.push(await bitsOf(cached));
        for (const t of [loss, cached, d.ids, d.targets, d.mask]) t.dispose();
        m.dispose();
        return { forward, backward, values };
      };
      const [fused, plain] = [await run(true), await run(false)];
      const what = `dropout ${mode.dropout}, ${mode.training ? 'training' : 'eval'}`;
      expect(fused.values, what).toEqual(plain.values);
      expect(plain.forward - fused.forward, what).toBe(mode.saved * config.nLayers);
      expect(fused.backward, what).toBe(plain.backward);
    }
  });

  it('one AdamW training step (forward, backward, update) reading the loss once makes exactly one readback', async () => {
    const m = new GPT(config, { backend: gpu, generator: new Generator(2) });
    models.push(m);
    const d = batch(gpu);
    const opt = new AdamW(m, { lr: 1e-3 });
    const step = async (): Promise<number> => {
      const loss = tidy(() => {
        const l = lossOf(m, d);
        l.backward();
        return l;
      });
      opt.step();
      opt.zeroGrad();
      const v = await loss.item();
      loss.dispose();
      return v;
    };
    await step(); // compiles the pipelines and creates the optimizer state
    await gpu.sync();
    gpu.resetCounters();
    const loss = await step();
    const c = gpu.counters();
    console.log(`GPT training step on WebGPU: ${c.dispatches} dispatches, ${c.submits} submits, ${c.readbacks} readbacks`);
    expect(Number.isFinite(loss)).toBe(true);
    expect(c.readbacks).toBe(1);
    opt.dispose();
    for (const t of [d.ids, d.targets, d.mask]) t.dispose();
  });
});
