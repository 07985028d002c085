// Module bookkeeping: dotted names, state-dict round trips and their errors, modes, freezing,
// and the basic layers' shapes.

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Dropout, Embedding, GELU, LayerNorm, Linear } from '../../src/nn/layers.js';
import { Module, ModuleList } from '../../src/nn/module.js';
import { backward, Generator, liveTensorCount, ones, sum, tensor, tidy, zeros, type Tensor } from '../../src/tensor/index.js';

class Block extends Module {
  readonly fc: Linear;
  readonly ln: LayerNorm;
  readonly scale: Tensor;
  readonly stat: Tensor;
  constructor(seed: number) {
    super();
    this.scale = this.param('scale', ones([3]));
    this.stat = this.buffer('stat', zeros([2]));
    this.fc = this.module('fc', new Linear(3, 4, { generator: new Generator(seed) }));
    this.ln = this.module('ln', new LayerNorm(4));
  }
}

class Net extends Module {
  readonly blocks: ModuleList<Block>;
  readonly drop = new Dropout(0.5);
  constructor(seed: number) {
    super();
    this.blocks = this.module('blocks', new ModuleList([new Block(seed), new Block(seed + 1)]));
    this.module('drop', this.drop);
  }
}

describe('Module', () => {
  it('names parameters and buffers by dotted path in PyTorch order', () => {
    const net = new Net(1);
    const names = (b: number) => [`blocks.${b}.scale`, `blocks.${b}.fc.weight`, `blocks.${b}.fc.bias`, `blocks.${b}.ln.weight`, `blocks.${b}.ln.bias`];
    expect(net.namedParameters().map(([n]) => n)).toEqual([...names(0), ...names(1)]);
    expect(net.namedBuffers().map(([n]) => n)).toEqual(['blocks.0.stat', 'blocks.1.stat']);
    expect([...net.stateDict().keys()]).toEqual([
      'blocks.0.scale', 'blocks.0.stat', 'blocks.0.fc.weight', 'blocks.0.fc.bias', 'blocks.0.ln.weight', 'blocks.0.ln.bias',
      'blocks.1.scale', 'blocks.1.stat', 'blocks.1.fc.weight', 'blocks.1.fc.bias', 'blocks.1.ln.weight', 'blocks.1.ln.bias',
    ]);
    for (const [n, t] of net.stateDict()) expect(t.name).toBe(n);
    expect(net.numParameters()).toBe(2 * (3 + 12 + 4 + 8));
    for (const p of net.parameters()) expect(p.requiresGrad).toBe(true);
    net.dispose();
  });

  it('round-trips a state dict into a differently seeded module', () => {
    const a = new Net(1);
    const b = new Net(7);
    const before = b.parameters();
    expect(b.loadStateDict(a.stateDict())).toEqual({ missing: [], unexpected: [] });
    for (const [n, t] of b.stateDict()) expect(Array.from(t.dataSync())).toEqual(Array.from(a.getTensor(n).dataSync()));
    // In place: the parameter tensors are the same objects.
    b.parameters().forEach((p, i) => expect(p).toBe(before[i]));
    a.dispose();
    b.dispose();
  });

  it('rejects a state dict with a wrong shape, naming the tensor and both shapes, and writes nothing', () => {
    const net = new Net(1);
    const state = new Map(net.stateDict());
    const orig = Array.from(net.getTensor('blocks.0.scale').dataSync());
    state.set('blocks.0.scale', tensor([5, 5, 5]));
    state.set('blocks.1.fc.weight', zeros([3, 4]));
    expect(() => net.loadStateDict(state)).toThrow(/'blocks\.1\.fc\.weight' has shape \[3, 4\] in the state dict but \[4, 3\] in the module/);
    expect(Array.from(net.getTensor('blocks.0.scale').dataSync())).toEqual(orig);
    state.set('blocks.1.fc.weight', zeros([4, 3], { dtype: 'f64' }));
    expect(() => net.loadStateDict(state)).toThrow(/'blocks\.1\.fc\.weight' has dtype f64 in the state dict but f32/);
    net.dispose();
  });

  it('names missing and unexpected keys (strict) or reports them (non-strict)', () => {
    const net = new Net(1);
    const state = new Map(net.stateDict());
    state.delete('blocks.1.ln.bias');
    state.set('head.weight', zeros([1]));
    expect(() => net.loadStateDict(state)).toThrow(/missing keys: blocks\.1\.ln\.bias; unexpected keys: head\.weight/);
    expect(net.loadStateDict(state, { strict: false })).toEqual({ missing: ['blocks.1.ln.bias'], unexpected: ['head.weight'] });
    state.get('head.weight')!.dispose();
    net.dispose();
  });

  it('propagates train/eval, freezes and unfreezes, zeroes gradients and frees everything on dispose', () => {
    const live = liveTensorCount();
    const net = new Net(1);
    net.eval();
    expect(net.namedModules().every(([, m]) => !m.training)).toBe(true);
    net.train();
    expect(net.drop.training).toBe(true);
    tidy(() => backward(sum(net.blocks.at(0).ln.forward(net.blocks.at(0).fc.forward(ones([2, 3]))))));
    expect(net.blocks.at(0).fc.weight.grad).not.toBeNull();
    net.zeroGrad();
    expect(net.parameters().every((p) => p.grad === null)).toBe(true);
    net.freeze();
    expect(net.parameters().every((p) => !p.requiresGrad)).toBe(true);
    net.unfreeze();
    expect(net.parameters().every((p) => p.requiresGrad)).toBe(true);
    net.dispose();
    expect(liveTensorCount()).toBe(live);
  });

  it('rejects duplicate and dotted names', () => {
    class Bad extends Module {
      constructor(name: string, twice: boolean) {
        super();
        this.param(name, ones([1]));
        if (twice) this.param(name, ones([1]));
      }
    }
    expect(() => new Bad('w', true)).toThrow(/'w' is already registered/);
    expect(() => new Bad('a.b', false)).toThrow(/invalid name/);
  });
});

describe('layers', () => {
  it('Linear, Embedding, LayerNorm, GELU and Dropout keep the leading shape', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 0, maxLength: 3 }), fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 5 }), (lead, i, o) =>
        tidy(() => {
          const x = ones([...lead, i]);
          for (const layout of ['torch', 'conv1d'] as const) {
            const lin = new Linear(i, o, { layout, generator: new Generator(3) });
            expect(lin.forward(x).shape).toEqual([...lead, o]);
            expect(lin.weight.shape).toEqual(layout === 'torch' ? [o, i] : [i, o]);
            lin.dispose();
          }
          const ln = new LayerNorm(i);
          expect(ln.forward(x).shape).toEqual([...lead, i]);
          ln.dispose();
          expect(new GELU('tanh').forward(x).shape).toEqual([...lead, i]);
          expect(new Dropout(0.3, new Generator(1)).forward(x).shape).toEqual([...lead, i]);
          const emb = new Embedding(7, o, { generator: new Generator(4) });
          expect(emb.forward(zeros([...lead, 2], { dtype: 'i32' })).shape).toEqual([...lead, 2, o]);
          emb.dispose();
        }),
      ),
      { numRuns: 20 },
    );
  });

  it('Linear computes x Wᵀ + b (torch) and x W + b (conv1d)', () => {
    tidy(() => {
      const torchLin = new Linear(2, 2);
      torchLin.assign('weight', tensor([[1, 2], [3, 4]]));
      torchLin.assign('bias', tensor([10, 20]));
      expect(Array.from(torchLin.forward(tensor([[1, 1]])).dataSync())).toEqual([13, 27]);
      const convLin = new Linear(2, 2, { layout: 'conv1d' });
      convLin.assign('weight', tensor([[1, 2], [3, 4]]));
      convLin.assign('bias', tensor([10, 20]));
      expect(Array.from(convLin.forward(tensor([[1, 1]])).dataSync())).toEqual([14, 26]);
      torchLin.dispose();
      convLin.dispose();
    });
  });

  it('Dropout is the identity in eval mode and seeded in training mode', () => {
    tidy(() => {
      const x = ones([100]);
      const d = new Dropout(0.5, new Generator(9));
      const a = Array.from(d.forward(x).dataSync());
      const b = Array.from(new Dropout(0.5, new Generator(9)).forward(x).dataSync());
      expect(a).toEqual(b);
      expect(a.some((v) => v === 0) && a.some((v) => v === 2)).toBe(true);
      d.eval();
      expect(d.forward(x)).toBe(x);
    });
  });
});
