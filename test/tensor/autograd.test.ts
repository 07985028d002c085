// Autodiff semantics: accumulation, noGrad, detach, requiresGrad propagation, explicit output
// gradients, graph release and retainGraph, valueAndGrad, and user ops from defineOp.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import * as T from '../../src/tensor/index.js';
import type { Tensor } from '../../src/tensor/index.js';
import { tensorArb, valuesArb } from '../helpers/arbitraries.js';
import { expectAllClose, gradProperty, input } from '../helpers/gradients.js';

const f64 = (data: number[], shape: number[], requiresGrad = false) => T.tensor(data, shape, { dtype: 'f64', requiresGrad });
const values = (t: Tensor | null) => Array.from(t!.dataSync());

describe('backward', () => {
  it('gradients accumulate across two backward() calls until the gradient is zeroed', () => {
    T.tidy(() => {
      const x = f64([1, 2, 3], [3], true);
      T.sum(T.square(x)).backward();
      expect(values(x.grad)).toEqual([2, 4, 6]);
      T.sum(T.square(x)).backward();
      expect(values(x.grad)).toEqual([4, 8, 12]);
      x.grad!.dispose();
      x.grad = null;
      T.sum(T.mul(x, 3)).backward();
      expect(values(x.grad)).toEqual([3, 3, 3]);
    });
  });

  it('noGrad records nothing: outputs have no node and do not require grad', () => {
    T.tidy(() => {
      const x = f64([1, 2], [2], true);
      const y = T.noGrad(() => T.exp(T.mul(x, 2)));
      expect(y.node).toBeNull();
      expect(y.requiresGrad).toBe(false);
      expect(T.isGradEnabled()).toBe(true);
      expect(() => T.sum(y).backward()).toThrowError(/does not require grad/);
    });
  });

  it('noGrad restores recording after its function throws', () => {
    expect(() => T.noGrad(() => { throw new Error('boom'); })).toThrowError('boom');
    expect(T.isGradEnabled()).toBe(true);
  });

  it('detach() stops gradients: only the attached path contributes', () => {
    T.tidy(() => {
      const x = f64([1, 2], [2], true);
      const y = T.add(T.mul(x, T.detach(x)), x); // d/dx = detach(x) + 1, not 2x + 1
      T.sum(y).backward();
      expect(values(x.grad)).toEqual([2, 3]);
      expect(x.detach().requiresGrad).toBe(false);
    });
  });

  it('requiresGrad propagates from any input through every op, and not from constants alone', () => {
    T.tidy(() => {
      const a = f64([1, 2], [2], true);
      const c = f64([3, 4], [2]);
      expect(T.mul(c, a).requiresGrad).toBe(true);
      expect(T.softmax(T.add(c, a)).requiresGrad).toBe(true);
      expect(T.exp(c).requiresGrad).toBe(false);
      expect(T.exp(c).node).toBeNull();
      const y = T.mul(c, a);
      expect(y.isLeaf).toBe(false);
      expect(y.node!.op).toBe('mul');
    });
  });

  it('backward with an explicit output gradient computes the vector-Jacobian product', () => {
    fc.assert(
      fc.property(tensorArb({ minRank: 1 }), ({ shape, data }) => {
        T.tidy(() => {
          const x = f64(data, shape, true);
          const g = f64(data.map((_, i) => (i % 3) - 1), shape);
          T.exp(x).backward(g);
          expectAllClose(x.grad!.dataSync(), data.map((v, i) => Math.exp(v) * ((i % 3) - 1)), 1e-15, 1e-15, 'vjp');
        });
      }),
      { numRuns: 30 },
    );
  });

  it('backward of a non-scalar without an output gradient throws a ShapeError naming backward and the shape', () => {
    T.tidy(() => {
      const y = T.exp(f64([1, 2], [2], true));
      expect(() => y.backward()).toThrowError(T.ShapeError);
      expect(() => y.backward()).toThrowError(/backward: .*\[2\].*not a scalar/);
      expect(() => y.backward(f64([1, 2, 3], [3]))).toThrowError(/backward: output gradient \[3\] does not match \[2\]/);
    });
  });

  it('after backward the graph is released: intermediates have node === null', () => {
    T.tidy(() => {
      const x = f64([1, 2], [2], true);
      const h = T.exp(x);
      const y = T.sum(T.mul(h, h));
      y.backward();
      expect(h.node).toBeNull();
      expect(y.node).toBeNull();
    });
  });

  it('a second backward through a released graph throws and names retainGraph', () => {
    T.tidy(() => {
      const x = f64([1, 2], [2], true);
      const y = T.sum(T.exp(x));
      y.backward();
      expect(() => y.backward()).toThrowError(/released.*retainGraph/);
      expect(values(x.grad)).toEqual([Math.exp(1), Math.exp(2)]); // unchanged by the failed call
    });
  });

  it('retainGraph allows a second backward, which accumulates', () => {
    T.tidy(() => {
      const x = f64([1, 2], [2], true);
      const y = T.sum(T.square(x));
      y.backward(undefined, { retainGraph: true });
      expect(y.node).not.toBeNull();
      y.backward();
      expect(values(x.grad)).toEqual([4, 8]);
    });
  });

  it('a gradient shared by two branches (add of equal shapes) reaches both', () => {
    T.tidy(() => {
      const x = f64([1, 2], [2], true);
      const z = f64([3, 4], [2], true);
      T.sum(T.add(T.exp(x), T.exp(z))).backward();
      expect(values(x.grad)).toEqual([Math.exp(1), Math.exp(2)]);
      expect(values(z.grad)).toEqual([Math.exp(3), Math.exp(4)]);
    });
  });

  it('a deep chain (10 000 ops) backpropagates without overflowing the stack', () => {
    T.tidy(() => {
      const x = f64([1], [1], true);
      let y: Tensor = x;
      for (let i = 0; i < 10_000; i++) y = T.add(y, 0);
      T.sum(y).backward();
      expect(values(x.grad)).toEqual([1]);
    });
  });
});

describe('valueAndGrad', () => {
  it('returns the value and gradients without touching the arguments\' .grad', () => {
    T.tidy(() => {
      const x = f64([1, 2], [2], true);
      const w = f64([3, 4], [2]);
      const { value, grads } = T.valueAndGrad((a, b) => T.sum(T.mul(a, b)))(x, w);
      expect(value.itemSync()).toBe(11);
      expect(value.requiresGrad).toBe(false);
      expect(values(grads[0])).toEqual([3, 4]);
      expect(values(grads[1])).toEqual([1, 2]);
      expect(x.grad).toBeNull();
      expect(w.grad).toBeNull();
    });
  });

  it('gives zeros for an argument the function ignores, and works when fn returns an argument', () => {
    T.tidy(() => {
      const { grads } = T.valueAndGrad((a, _b) => T.sum(a))(f64([1, 2], [2]), f64([5], [1]));
      expect(values(grads[1])).toEqual([0]);
      const id = T.valueAndGrad((a) => a)(f64([7], []));
      expect(id.value.itemSync()).toBe(7);
      expect(values(id.grads[0])).toEqual([1]);
    });
  });

  it('leaves no tensor behind inside tidy beyond what it returns', () => {
    const x = T.keep(f64([1, 2], [2]));
    const before = T.liveTensorCount();
    T.tidy(() => {
      for (let i = 0; i < 5; i++) T.valueAndGrad((a) => T.sum(T.exp(a)))(x);
    });
    expect(T.liveTensorCount()).toBe(before);
    x.dispose();
  });
});

// A user op: x³ with a hand-written backward.
const cube = T.defineOp({
  name: 'cube',
  forward: (x) => T.mul(T.square(x), x),
  backward: (g, { inputs: [x] }) => [T.mul(g, T.mul(T.square(x), 3))],
});

// A fused SwiGLU-style gate x·σ(x)·y, saving σ(x) for the backward.
const swiglu = T.defineOp({
  name: 'swiglu',
  forward: (x, y) => {
    const s = T.sigmoid(x);
    return { output: T.mul(T.mul(x, s), y), saved: [s] };
  },
  backward: (g, { inputs: [x, y], saved: [s] }) => {
    const silu = T.mul(x, s);
    const dsilu = T.mul(s, T.add(T.mul(x, T.sub(1, s)), 1)); // σ(x)(1 + x(1 − σ(x)))
    return [T.mul(T.mul(g, y), dsilu), T.mul(g, silu)];
  },
});

describe('defineOp', () => {
  it('a user cube op passes gradcheck on random inputs', async () => {
    await gradProperty(tensorArb(), ({ shape, data }) => ({ fn: cube, inputs: [input(data, shape)] }), { numRuns: 30 });
  });

  it('a fused SwiGLU op passes gradcheck on random inputs', async () => {
    const arb = tensorArb().chain((t) => valuesArb(t.data.length).map((y) => ({ ...t, y })));
    await gradProperty(arb, ({ shape, data, y }) => ({ fn: swiglu, inputs: [input(data, shape), input(y, shape)] }), { numRuns: 30 });
  });

  it('user ops agree with their composed versions in value and gradient', () => {
    fc.assert(
      fc.property(tensorArb(), ({ shape, data }) => {
        T.tidy(() => {
          const ys = data.map((v) => 1 - v / 2);
          const fused = T.valueAndGrad((a, b) => T.sum(T.add(swiglu(a, b), cube(a))));
          const composed = T.valueAndGrad((a, b) => T.sum(T.add(T.mul(T.mul(a, T.sigmoid(a)), b), T.pow(a, 3))));
          const u = fused(f64(data, shape), f64(ys, shape));
          const v = composed(f64(data, shape), f64(ys, shape));
          expect(u.value.itemSync()).toBeCloseTo(v.value.itemSync(), 12);
          u.grads.forEach((g, i) => expectAllClose(g.dataSync(), v.grads[i].dataSync(), 1e-12, 1e-12, `grad ${i}`));
        });
      }),
      { numRuns: 30 },
    );
  });

  it('a deliberately wrong backward is caught by gradcheck, which names the input and element', () => {
    const wrong = T.defineOp({
      name: 'wrongSwiglu',
      forward: (x, y) => T.mul(T.mul(x, T.sigmoid(x)), y),
      backward: (g, { inputs: [x, y] }) => [T.mul(T.mul(g, y), T.sigmoid(x)), T.mul(g, T.mul(x, T.sigmoid(x)))], // d/dx drops the x·σ'(x) term
    });
    const r = T.tidy(() => T.gradcheck(wrong, [f64([0.5, 1.5, -1], [3]), f64([2, 1, 0.5], [3])]));
    expect(r.ok).toBe(false);
    expect(r.worst!.input).toBe(0);
    expect(r.report).toMatch(/FAILED: worst element input 0 \[3\] at flat index \d/);
  });

  it('a backward that returns the wrong number of gradients throws naming the op', () => {
    const bad = T.defineOp({ name: 'bad', forward: (x) => T.exp(x), backward: (g) => [g, g] });
    T.tidy(() => {
      expect(() => T.sum(bad(f64([1], [1], true))).backward()).toThrowError(/defineOp 'bad': backward returned 2 gradients for 1 inputs/);
    });
  });
});

// A backward may take the gradient already accumulated for an input and return the sum (the fold
// layerNorm uses for a residual connection): the result must equal the unfolded accumulation.
describe('pending gradients (PendingGrads)', () => {
  /** y = k·x (elementwise), whose backward takes x's pending gradient when asked to. */
  function scaled(x: Tensor, k: number, fold: boolean, seen: (Tensor | null)[]): Tensor {
    const y = T.mul(T.detach(x), k);
    return T.record('scaled', y, [x], (g, _needs, pending) => {
      const prev = fold ? pending?.take(0) ?? null : null;
      seen.push(prev);
      const own = T.mul(g, k);
      return [prev ? T.add(prev, own) : own];
    });
  }

  it('a taken gradient is replaced by the sum the backward returns, not added twice', () => {
    fc.assert(fc.property(valuesArb(4), fc.double({ min: -3, max: 3, noNaN: true }), (v, k) => {
      T.tidy(() => {
        const grads = [false, true].map((fold) => {
          const x = f64(v, [4], true);
          const seen: (Tensor | null)[] = [];
          // x feeds scaled() and, after it, the residual add: backward visits the add first.
          const y = T.add(x, T.mul(scaled(x, k, fold, seen), 2));
          T.sum(T.mul(y, y)).backward();
          expect(seen.length).toBe(1);
          expect(seen[0] !== null).toBe(fold);
          return values(x.grad);
        });
        expectAllClose(grads[1], grads[0], 0, 1e-12);
        // d/dx sum((x + 2kx)^2) = 2 (1 + 2k)^2 x
        expectAllClose(grads[1], v.map((a) => 2 * (1 + 2 * k) ** 2 * a), 1e-300, 1e-9);
      });
    }), { numRuns: 30 });
  });

  it('the same tensor as two inputs: a taken gradient counts once', () => {
    T.tidy(() => {
      const x = f64([1, -2, 3], [3], true);
      const prod = T.mul(T.detach(x), T.detach(x));
      // p = x·x, whose backward folds x's pending gradient into input 1 only.
      const p = T.record('square2', prod, [x, x], (g, _needs, pending) => {
        const prev = pending?.take(1) ?? null;
        expect(pending?.take(0)).toBeNull();
        const own = T.mul(g, T.detach(x));
        return [own, prev ? T.add(prev, own) : own];
      });
      const y = T.add(x, p);
      T.sum(y).backward();
      expect(values(x.grad)).toEqual([3, -3, 7]);
    });
  });

  it('returning the taken gradient itself (no contribution of its own) keeps it intact', () => {
    T.tidy(() => {
      const x = f64([1, 2], [2], true);
      const z = T.record('nothing', T.mul(T.detach(x), 0), [x], (_g, _needs, pending) => [pending?.take(0) ?? T.zeros([2], { dtype: 'f64' })]);
      T.sum(T.mul(T.add(x, z), 3)).backward();
      expect(values(x.grad)).toEqual([3, 3]);
    });
  });

  it('taking a gradient and returning none for that input is an error naming the op', () => {
    T.tidy(() => {
      const x = f64([1, 2], [2], true);
      const z = T.record('forgetful', T.mul(T.detach(x), 2), [x], (_g, _needs, pending) => {
        pending?.take(0);
        return [null];
      });
      expect(() => T.sum(T.add(x, z)).backward()).toThrowError(/backward of forgetful: took the pending gradient of input 0/);
    });
  });
});
