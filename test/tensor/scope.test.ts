// Explicit lifetime: tidy frees intermediates but keeps what is returned or kept and the graph it
// needs; a training loop (forward, backward, SGD update) keeps live tensors and bytes flat.

import { describe, expect, it } from 'vitest';
import * as T from '../../src/tensor/index.js';
import type { Tensor } from '../../src/tensor/index.js';

function counts() {
  return { tensors: T.liveTensorCount(), bytes: T.cpu.memory().liveBytes, buffers: T.cpu.memory().liveBuffers };
}

describe('tidy', () => {
  it('frees every intermediate and keeps the returned tensors (in arrays, objects and Maps)', () => {
    const before = counts();
    const out = T.tidy(() => {
      const a = T.ones([3]);
      const b = T.exp(a);
      T.mul(b, 2); // dropped
      return { list: [T.add(a, 1)], map: new Map([['b', b]]) };
    });
    // a and the dropped product are freed; the two returned tensors remain
    expect(counts().tensors).toBe(before.tensors + 2);
    expect(Array.from(out.list[0].dataSync())).toEqual([2, 2, 2]);
    out.list[0].dispose();
    out.map.get('b')!.dispose();
    expect(counts()).toEqual(before);
  });

  it('keeps the graph a returned tensor needs, so backward after tidy works; an outer scope frees it all', () => {
    const before = counts();
    T.tidy(() => {
      const x = T.tensor([1, 2], [2], { dtype: 'f64', requiresGrad: true });
      const loss = T.tidy(() => T.sum(T.mul(T.exp(x), T.tanh(x))));
      expect(loss.node!.inputs[0].isDisposed).toBe(false);
      loss.backward();
      const want = [1, 2].map((v) => Math.exp(v) * (Math.tanh(v) + 1 - Math.tanh(v) ** 2));
      x.grad!.dataSync().forEach((g, i) => expect(g).toBeCloseTo(want[i], 12));
    });
    expect(counts()).toEqual(before);
  });

  it('frees intermediates that no returned graph needs (inputs of a noGrad computation)', () => {
    const before = counts();
    const y = T.tidy(() => T.noGrad(() => T.exp(T.exp(T.ones([3])))));
    expect(counts().tensors).toBe(before.tensors + 1);
    y.dispose();
    expect(counts()).toEqual(before);
  });

  it('nested scopes: an inner returned tensor moves to the outer scope and is freed there', () => {
    const before = counts();
    T.tidy(() => {
      const inner = T.tidy(() => T.exp(T.ones([4])));
      expect(inner.isDisposed).toBe(false);
      expect(T.scopeDepth()).toBe(1);
    });
    expect(counts()).toEqual(before);
  });

  it('keep() exempts a tensor from every enclosing scope', () => {
    let kept: Tensor | null = null;
    T.tidy(() => T.tidy(() => void (kept = T.keep(T.zeros([2])))));
    expect(kept!.isDisposed).toBe(false);
    kept!.dispose();
  });

  it('a throwing function frees what it created and rethrows', () => {
    const before = counts();
    expect(() => T.tidy(() => { T.ones([8]); throw new Error('boom'); })).toThrowError('boom');
    expect(counts()).toEqual(before);
    expect(T.scopeDepth()).toBe(0);
  });

  it('rejects an async function', () => {
    expect(() => T.tidy((async () => T.ones([1])) as unknown as () => Tensor)).toThrowError(/Promise/);
  });
});

describe('memory in a training loop', () => {
  it('50 steps of forward + backward + SGD update inside tidy keep live tensors and bytes exactly flat', () => {
    const g = new T.Generator(3);
    const V = 7, D = 6, N = 5;
    const params = {
      emb: T.keep(T.randn([V, D], { generator: g, requiresGrad: true })),
      w1: T.keep(T.randn([D, D], { generator: g, requiresGrad: true })),
      gamma: T.keep(T.ones([D], { requiresGrad: true })),
      beta: T.keep(T.zeros([D], { requiresGrad: true })),
      w2: T.keep(T.randn([D, V], { generator: g, requiresGrad: true })),
    };
    const ids = T.keep(T.tensor([0, 3, 5, 1, 6], [N], { dtype: 'i32' }));
    const targets = T.keep(T.tensor([3, 5, 1, 6, -100], [N], { dtype: 'i32' }));
    const losses: number[] = [];
    let after1: ReturnType<typeof counts> | null = null;
    for (let step = 0; step < 50; step++) {
      T.tidy(() => {
        const h = T.layerNorm(T.embedding(params.emb, ids), params.gamma, params.beta);
        const a = T.dropout(T.gelu(T.matmul(h, params.w1)), 0.1, { generator: new T.Generator(step) });
        const q = T.reshape(a, [1, 1, N, D]);
        const att = T.reshape(T.attention(q, q, q, { causal: true }), [N, D]);
        const loss = T.crossEntropy(T.matmul(T.add(a, att), params.w2), targets);
        loss.backward();
        losses.push(loss.itemSync());
        T.noGrad(() => {
          for (const key of Object.keys(params) as (keyof typeof params)[]) {
            const p = params[key];
            const next = T.keep(T.sub(p, T.mul(p.grad!, 0.05)));
            next.requiresGrad = true;
            p.dispose(); // frees its .grad too
            params[key] = next;
          }
        });
      });
      if (step === 0) after1 = counts();
      else expect(counts(), `step ${step}`).toEqual(after1);
    }
    expect(losses[49]).toBeLessThan(losses[0]);
    for (const p of [...Object.values(params), ids, targets]) p.dispose();
  });

  it('the peak of the loop does not grow with the number of steps', () => {
    const w = { t: T.keep(T.randn([16, 16], { requiresGrad: true, generator: new T.Generator(1) })) };
    const step = () =>
      T.tidy(() => {
        T.sum(T.square(T.matmul(w.t, w.t))).backward();
        T.noGrad(() => {
          const next = T.keep(T.sub(w.t, T.mul(w.t.grad!, 1e-4)));
          next.requiresGrad = true;
          w.t.dispose();
          w.t = next;
        });
      });
    step();
    const before = counts();
    for (let i = 0; i < 20; i++) step();
    expect(counts()).toEqual(before);
    w.t.dispose();
  });
});
