// The PyTorch-style encoder: names, bidirectional attention, and that padded keys are ignored.

import { describe, expect, it } from 'vitest';
import { TransformerEncoder } from '../../src/nn/encoder.js';
import { Generator, noGrad, randn, tensor, tidy } from '../../src/tensor/index.js';

const f64 = { dtype: 'f64' as const };

describe('TransformerEncoder', () => {
  it('names layers.{i} as nn.TransformerEncoderLayer does', () => {
    const enc = new TransformerEncoder(4, 2, 2, { generator: new Generator(1) });
    const names = enc.namedParameters().map(([n]) => n);
    expect(names.slice(0, 12)).toEqual([
      'layers.0.self_attn.in_proj_weight', 'layers.0.self_attn.in_proj_bias', 'layers.0.self_attn.out_proj.weight', 'layers.0.self_attn.out_proj.bias',
      'layers.0.linear1.weight', 'layers.0.linear1.bias', 'layers.0.linear2.weight', 'layers.0.linear2.bias',
      'layers.0.norm1.weight', 'layers.0.norm1.bias', 'layers.0.norm2.weight', 'layers.0.norm2.bias',
    ]);
    expect(names.length).toBe(24);
    enc.dispose();
  });

  it('attends in both directions, and not to keys whose mask is 0', () => {
    const enc = new TransformerEncoder(4, 2, 1, { ...f64, dropout: 0, generator: new Generator(2) });
    tidy(() =>
      noGrad(() => {
        const x = randn([1, 3, 4], { ...f64, generator: new Generator(3) });
        const changedLast = x.mul(tensor([1, 1, 0], [1, 3, 1], f64)).add(tensor([0, 0, 5], [1, 3, 1], f64));
        const first = (t: typeof x, mask?: typeof x) => Array.from(enc.forward(t, mask).slice(1, 0, 1).dataSync());
        // Without a mask, position 0 sees position 2 (bidirectional) ...
        expect(first(x).some((v, i) => Math.abs(v - first(changedLast)[i]) > 1e-6)).toBe(true);
        // ... and with position 2 masked out it does not.
        const mask = tensor([[1, 1, 0]], undefined, f64);
        first(x, mask).forEach((v, i) => expect(v).toBeCloseTo(first(changedLast, mask)[i], 12));
      }),
    );
    enc.dispose();
  });
});
