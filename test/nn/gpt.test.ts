// GPT-2 causal LM: Hugging Face parameter names, output shapes, KV-cache agreement, and that a
// tiny model can overfit a tiny sequence.

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { GPT, type GPTConfig } from '../../src/nn/gpt.js';
import { Generator, noGrad, tensor, tidy, type Tensor } from '../../src/tensor/index.js';

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
});
