// Long-run and bad-input guarantees: flat memory over 500 DPO+GANPO steps, and model files from a
// different architecture rejected with the tensor named.
import { describe, expect, test } from 'vitest';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GPT } from '../../src/nn/gpt.js';
import { loadModel, saveModel } from '../../src/nn/lm.js';
import { saveCheckpoint } from '../../src/nn/checkpoint.js';
import { Tokenizer } from '../../src/nn/tokenizer.js';
import { defaultBaseLoss } from '../../src/ganpo/losses.js';
import { defaultGanpo } from '../../src/ganpo/regularizer.js';
import { defaultTrainConfig, PreferenceTrainer } from '../../src/ganpo/trainer.js';
import { Generator } from '../../src/tensor/random/philox.js';
import { cpu, liveTensorCount } from '../../src/index.js';

const dir = mkdtempSync(join(tmpdir(), 'ganpo-rel-'));

describe('memory over a long run', () => {
  test('500 DPO+GANPO steps keep live tensors and bytes flat after warm-up', async () => {
    const mc = { vocabSize: 16, contextLength: 6, dModel: 8, nLayers: 1, nHeads: 2, dropout: 0 };
    const pairs = Array.from({ length: 8 }, (_, k) => ({ index: k, prompt: [2 + (k % 3)], chosen: [8, 1], rejected: [9 + (k % 2), 1] }));
    const c = defaultTrainConfig(defaultBaseLoss('dpo'));
    Object.assign(c, { steps: 500, batchSize: 4, lr: 1e-3 });
    c.ganpo = { ...defaultGanpo(1e-3, 6), criticWidth: 8, criticHeads: 2, criticLayers: 1 };
    const t = new PreferenceTrainer(new GPT(mc, { generator: new Generator(1) }), new GPT(mc, { generator: new Generator(1) }), pairs, pairs, c, { padId: 0, backend: cpu });
    for (let s = 0; s < 5; s++) await t.trainStep();
    const tensors = liveTensorCount();
    const bytes = cpu.memory().liveBytes;
    const samples: number[] = [];
    for (let s = 5; s < 500; s++) {
      await t.trainStep();
      if (s % 50 === 0) samples.push(liveTensorCount());
    }
    expect(samples.every((n) => n === tensors)).toBe(true);
    expect(cpu.memory().liveBytes).toBe(bytes);
    t.dispose();
  });
});

describe('model files', () => {
  const tok = Tokenizer.buildCompact('a small corpus of words and words', 300);
  const cfg = { vocabSize: 300, contextLength: 8, dModel: 8, nLayers: 1, nHeads: 2, dropout: 0 };

  test('a model round-trips with its tokenizer', async () => {
    const m = new GPT(cfg, { backend: cpu, generator: new Generator(2) });
    const path = join(dir, 'm.safetensors');
    await saveModel(path, m, tok, { note: 'x' });
    const back = await loadModel(path, { backend: cpu });
    expect(back.tokenizer.equals(tok)).toBe(true);
    for (const [name, t] of m.stateDict()) expect([...back.model.getTensor(name).dataSync()]).toEqual([...t.dataSync()]);
  });

  test('weights from a different architecture are rejected naming the tensor and both shapes', async () => {
    const wider = new GPT({ ...cfg, dModel: 16 }, { backend: cpu, generator: new Generator(2) });
    const path = join(dir, 'mismatch.safetensors');
    // The metadata claims d_model 8, the weights are d_model 16.
    await saveCheckpoint(path, wider.stateDict(), { format: 'ganpo-lm', version: 1, config: cfg, tokenizer: tok.toJSON() });
    await expect(loadModel(path, { backend: cpu })).rejects.toThrow(/mismatch\.safetensors: .*transformer\.wte\.weight.*\[300, 16\].*\[300, 8\]|mismatch\.safetensors: .*transformer\.wte\.weight.*\[300, 8\].*\[300, 16\]/);
  });

  test('a tokenizer whose size differs from the model is rejected', async () => {
    const m = new GPT({ ...cfg, vocabSize: 299 }, { backend: cpu });
    await expect(saveModel(join(dir, 'x.safetensors'), m, tok)).rejects.toThrow(/tokenizer has 300 tokens but the model's vocabulary is 299/);
  });
});
