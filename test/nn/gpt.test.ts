// GPT-2 causal LM: Hugging Face parameter names, output shapes, KV-cache agreement, and that a
// tiny model can overfit a tiny sequence.

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { GPT, type GPTConfig } from '../../src/nn/gpt.js';
import { generate } from '../../src/nn/generate.js';
import { AdamW } from '../../src/nn/optim.js';
import { concat, crossEntropy, Generator, liveTensorCount, noGrad, tensor, tidy, type Tensor } from '../../src/tensor/index.js';

const tiny: GPTConfig = { vocabSize: 13, contextLength: 16, dModel: 8, nLayers: 2, nHeads: 2, dropout: 0 };
const ids = (rows: number[][]): Tensor => tensor(rows, undefined, { dtype: 'i32' });

describe('GPT', () => {
  it('names its parameters exactly as Hugging Face GPT-2 does', () => {
    const m = new GPT(tiny, { generator: new Generator(1) });
    const d = tiny.dModel;
    const expected: [string, number[]][] = [
      ['transformer.wte.weight', [13, d]],
      ['transformer.wpe.weight', [16, d]],
    ];
    for (let i = 0; i < 2; i++) {
      const p = `transformer.h.${i}.`;
      expected.push(
        [`${p}ln_1.weight`, [d]], [`${p}ln_1.bias`, [d]],
        [`${p}attn.c_attn.weight`, [d, 3 * d]], [`${p}attn.c_attn.bias`, [3 * d]],
        [`${p}attn.c_proj.weight`, [d, d]], [`${p}attn.c_proj.bias`, [d]],
        [`${p}ln_2.weight`, [d]], [`${p}ln_2.bias`, [d]],
        [`${p}mlp.c_fc.weight`, [d, 4 * d]], [`${p}mlp.c_fc.bias`, [4 * d]],
        [`${p}mlp.c_proj.weight`, [4 * d, d]], [`${p}mlp.c_proj.bias`, [d]],
      );
    }
    expected.push(['transformer.ln_f.weight', [d]], ['transformer.ln_f.bias', [d]]);
    const got = m.namedParameters().map(([n, t]) => [n, [...t.shape]]);
    expect(got).toEqual(expected);
    for (const [n, t] of m.namedParameters()) expect(t.name).toBe(n);
    expect([...m.stateDict().keys()]).toEqual(expected.map(([n]) => n));
    m.dispose();
  });

  it('gives logits [B, T, V] and hidden [B, T, d] for any batch and length', () => {
    const m = new GPT(tiny, { generator: new Generator(2) });
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 16 }), (B, T) =>
        tidy(() => {
          const x = ids(Array.from({ length: B }, (_, b) => Array.from({ length: T }, (_, t) => (b + 3 * t) % 13)));
          const { logits, hidden } = noGrad(() => m.forward(x, { returnHidden: true }));
          expect(logits.shape).toEqual([B, T, 13]);
          expect(hidden!.shape).toEqual([B, T, 8]);
        }),
      ),
      { numRuns: 10 },
    );
    m.dispose();
  });

  it('gives the same last-position logits with a KV cache as without, prompt then token by token', () => {
    const m = new GPT(tiny, { generator: new Generator(3) });
    fc.assert(
      fc.property(fc.array(fc.array(fc.integer({ min: 0, max: 12 }), { minLength: 9, maxLength: 9 }), { minLength: 1, maxLength: 3 }), fc.integer({ min: 1, max: 8 }), (rows, split) =>
        noGrad(() =>
          tidy(() => {
            const full = m.forward(ids(rows)).logits;
            const cache = m.newCache();
            const parts = [m.forward(ids(rows.map((r) => r.slice(0, split))), { kvCache: cache }).logits];
            for (let t = split; t < 9; t++) parts.push(m.forward(ids(rows.map((r) => r.slice(t, t + 1))), { kvCache: cache }).logits);
            expect(cache.length).toBe(9);
            cache.dispose();
            const a = full.dataSync();
            const b = concat(parts, 1).dataSync();
            a.forEach((x, i) => expect(Math.abs(x - b[i])).toBeLessThan(1e-5));
          }),
        ),
      ),
      { numRuns: 10 },
    );
    m.dispose();
  });

  it('generates identical tokens with and without the cache, greedy and seeded sampling', async () => {
    const m = new GPT(tiny, { generator: new Generator(4) });
    const prompts = [[1, 2, 3], [4], [5, 6]];
    const live = liveTensorCount();
    for (const opts of [{ temperature: 0 }, { temperature: 1.3, topK: 5 }, { temperature: 0.8, topP: 0.9 }]) {
      const cached = await generate(m, prompts, { ...opts, maxNewTokens: 8, generator: new Generator(11) });
      const uncached = await generate(m, prompts, { ...opts, maxNewTokens: 8, generator: new Generator(11), useCache: false });
      expect(cached).toEqual(uncached);
      expect(cached.map((r) => r.length)).toEqual([8, 8, 8]);
    }
    expect(liveTensorCount()).toBe(live);
    m.dispose();
  });

  it('is deterministic given the seed, and a left-padded row generates what it would alone', async () => {
    const m = new GPT(tiny, { generator: new Generator(5) });
    const prompts = [[1, 2, 3, 4, 5], [7, 8]];
    const opts = { maxNewTokens: 6, temperature: 0 };
    const a = await generate(m, prompts, { ...opts, temperature: 1, generator: new Generator(3) });
    const b = await generate(m, prompts, { ...opts, temperature: 1, generator: new Generator(3) });
    const c = await generate(m, prompts, { ...opts, temperature: 1, generator: new Generator(4) });
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
    const batched = await generate(m, prompts, opts);
    const alone = [await generate(m, [prompts[0]], opts), await generate(m, [prompts[1]], opts)];
    expect(batched).toEqual(alone.map((r) => r[0]));
    m.dispose();
  });

  it('stops each row at end-of-text', async () => {
    const m = new GPT(tiny, { generator: new Generator(6) });
    const prompts = [[1, 2], [3, 4], [5]];
    const free = await generate(m, prompts, { maxNewTokens: 10, temperature: 1, generator: new Generator(8) });
    const eos = free[0][2];
    const stopped = await generate(m, prompts, { maxNewTokens: 10, temperature: 1, generator: new Generator(8), eosTokenId: eos });
    free.forEach((row, r) => {
      const at = row.indexOf(eos);
      expect(stopped[r]).toEqual(at < 0 ? row : row.slice(0, at));
    });
    expect(stopped[0].length).toBeLessThanOrEqual(2);
    const withStop = await generate(m, prompts, { maxNewTokens: 10, temperature: 1, generator: new Generator(8), eosTokenId: eos, includeStopToken: true });
    expect(withStop[0]).toEqual(free[0].slice(0, free[0].indexOf(eos) + 1));
    m.dispose();
  });

  it('overfits a tiny sequence: loss falls by more than half in 50 AdamW steps', () => {
    const m = new GPT({ ...tiny, dModel: 16, dropout: 0.1 }, { generator: new Generator(7), dropoutGenerator: new Generator(8) });
    const seq = [0, 5, 2, 9, 11, 3, 7, 7, 1, 4, 12, 6, 8];
    const x = ids([seq.slice(0, -1)]);
    const y = ids([seq.slice(1)]);
    const opt = new AdamW(m, { lr: 1e-2, weightDecay: 0 });
    const losses: number[] = [];
    let live = 0;
    for (let step = 0; step < 50; step++) {
      if (step === 1) live = liveTensorCount();
      losses.push(
        tidy(() => {
          const loss = crossEntropy(m.forward(x).logits, y);
          loss.backward();
          return loss.itemSync();
        }),
      );
      opt.step();
      opt.zeroGrad();
    }
    expect(losses[losses.length - 1]).toBeLessThan(0.5 * losses[0]);
    // Live memory is flat: after the optimizer state exists, a step leaves nothing behind.
    expect(liveTensorCount()).toBe(live);
    opt.dispose();
    m.dispose();
    x.dispose();
    y.dispose();
  });

  it('keeps the hidden states it returns equal to ln_f output feeding the tied head', () => {
    const m = new GPT(tiny, { generator: new Generator(9) });
    tidy(() =>
      noGrad(() => {
        const { logits, hidden } = m.forward(ids([[1, 2, 3]]), { returnHidden: true });
        const again = hidden!.matmul(m.transformer.wte.weight.transpose());
        const a = logits.dataSync();
        again.dataSync().forEach((v, i) => expect(v).toBeCloseTo(a[i], 5));
      }),
    );
    m.dispose();
  });

  it('backpropagates the finite-difference gradient to every parameter, the tied wte included (f64)', () => {
    const m = new GPT({ ...tiny, dModel: 4, nLayers: 1 }, { dtype: 'f64', generator: new Generator(10) });
    const x = ids([[1, 2, 3, 4], [5, 6, 7, 8]]);
    // The padded position's target is ignored, as in training on padded batches.
    const y = ids([[2, 3, 4, 5], [-100, 7, 8, 9]]);
    const mask = tensor([[1, 1, 1, 1], [0, 1, 1, 1]], undefined, { dtype: 'f64' });
    const loss = () => crossEntropy(m.forward(x, { attentionMask: mask }).logits, y);
    tidy(() => loss().backward());
    const evalLoss = () => tidy(() => noGrad(() => loss().itemSync()));
    const eps = 1e-6;
    for (const [name, p] of m.namedParameters()) {
      const grad = p.grad!.dataSync();
      const data = Float64Array.from(p.dataSync());
      for (const j of [0, Math.floor(data.length / 3), data.length - 1]) {
        const at = (v: number) => {
          data[j] = v;
          tidy(() => m.assign(name, tensor(data, p.shape, { dtype: 'f64' })));
        };
        const orig = data[j];
        at(orig + eps);
        const fp = evalLoss();
        at(orig - eps);
        const fm = evalLoss();
        at(orig);
        const numeric = (fp - fm) / (2 * eps);
        expect(Math.abs(grad[j] - numeric), `${name}[${j}]: analytic ${grad[j]} numeric ${numeric}`).toBeLessThan(1e-7 + 1e-5 * Math.abs(numeric));
      }
    }
    m.dispose();
    for (const t of [x, y, mask]) t.dispose();
  });
});
