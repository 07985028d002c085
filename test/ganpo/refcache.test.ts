import { describe, expect, test } from 'vitest';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GPT } from '../../src/nn/gpt.js';
import { defaultBaseLoss } from '../../src/ganpo/losses.js';
import { defaultGanpo } from '../../src/ganpo/regularizer.js';
import { defaultTrainConfig, PreferenceTrainer } from '../../src/ganpo/trainer.js';
import { loadOrBuildReferenceCache } from '../../src/ganpo/refcache.js';
import type { TokenizedPair } from '../../src/ganpo/data.js';
import { Generator } from '../../src/tensor/random/philox.js';
import { cpu, manualSeed } from '../../src/index.js';

const mc = { vocabSize: 24, contextLength: 10, dModel: 16, nLayers: 1, nHeads: 2, dropout: 0 };
const pairs: TokenizedPair[] = Array.from({ length: 24 }, (_, k) => ({
  index: k, prompt: [2 + (k % 5), 3 + (k % 3)].slice(0, 1 + (k % 2)), chosen: [12 + (k % 4), 1].slice(0, 1 + (k % 2)), rejected: [16 + (k % 4), 5, 1].slice(0, 1 + (k % 3)),
}));
const dir = mkdtempSync(join(tmpdir(), 'ganpo-refcache-'));

describe('reference cache', () => {
  test('training from the cache gives the same metrics as running the reference', async () => {
    const run = async (cached: boolean) => {
      manualSeed(0);
      const policy = new GPT(mc, { generator: new Generator(1), backend: cpu });
      const reference = new GPT(mc, { generator: new Generator(1), backend: cpu });
      const c = defaultTrainConfig(defaultBaseLoss('dpo'));
      Object.assign(c, { steps: 4, batchSize: 6, lr: 1e-3 });
      c.ganpo = { ...defaultGanpo(1e-3, 10), criticWidth: 16, criticHeads: 2, criticLayers: 1, criticDropout: 0 };
      const cache = cached ? (await loadOrBuildReferenceCache(join(dir, 'a.safetensors'), reference, pairs, 0, true)).cache : undefined;
      const t = new PreferenceTrainer(policy, reference, pairs, [], c, { padId: 0, backend: cpu, referenceCache: cache });
      const out = [];
      for (let s = 0; s < 4; s++) out.push(await t.trainStep());
      t.dispose();
      return out;
    };
    const [live, cached] = [await run(false), await run(true)];
    live.forEach((m, s) => {
      for (const k of ['loss', 'base_loss', 'ganpo/critic_loss_chosen', 'ganpo/generator_loss', 'rewards/margins']) expect(cached[s][k]).toBeCloseTo(m[k], 5);
    });
  });

  test('a cache is reused when model and data match, and rebuilt (never reused) when either changes', async () => {
    const path = join(dir, 'b.safetensors');
    const ref = new GPT(mc, { generator: new Generator(2), backend: cpu });
    expect((await loadOrBuildReferenceCache(path, ref, pairs, 0, false)).status).toBe('built');
    expect((await loadOrBuildReferenceCache(path, ref, pairs, 0, false)).status).toBe('reused');
    const changed = pairs.map((p, i) => (i === 3 ? { ...p, chosen: [13, 1] } : p));
    expect((await loadOrBuildReferenceCache(path, ref, changed, 0, false)).status).toBe('rebuilt');
    const other = new GPT(mc, { generator: new Generator(3), backend: cpu });
    expect((await loadOrBuildReferenceCache(path, other, changed, 0, false)).status).toBe('rebuilt');
    expect((await loadOrBuildReferenceCache(path, other, changed, 0, true)).status).toBe('rebuilt');
  });
});
