// Optimizers against PyTorch's update formulas written out by hand, gradient clipping, the
// optimizer state dict, and the learning-rate schedules.

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { AdamW, clipGradNorm, SGD } from '../../src/nn/optim.js';
import { constant, warmupConstant, warmupCosine, warmupLinear } from '../../src/nn/schedules.js';
import { keep, tensor, type Tensor } from '../../src/tensor/index.js';

const f64 = { dtype: 'f64' as const };
const param = (v: number[]): Tensor => {
  const p = keep(tensor(v, undefined, f64));
  p.requiresGrad = true;
  return p;
};
const setGrad = (p: Tensor, g: number[]) => {
  p.grad?.dispose();
  p.grad = keep(tensor(g, undefined, f64));
};
const values = (t: Tensor) => Array.from(t.dataSync());

describe('AdamW', () => {
  it('matches torch.optim.AdamW written out by hand for 3 steps', () => {
    const p0 = [0.5, -1.5, 2];
    const grads = [[0.1, -0.2, 0.3], [-0.4, 0.5, 0.05], [0.2, 0.2, -0.6]];
    const [lr, b1, b2, eps, wd] = [0.01, 0.9, 0.999, 1e-8, 0.1];
    const p = param(p0);
    const opt = new AdamW([['w', p]], { lr, betas: [b1, b2], eps, weightDecay: wd });
    const ref = [...p0];
    const m = [0, 0, 0];
    const v = [0, 0, 0];
    for (let t = 1; t <= 3; t++) {
      setGrad(p, grads[t - 1]);
      opt.step();
      for (let i = 0; i < 3; i++) {
        const g = grads[t - 1][i];
        ref[i] *= 1 - lr * wd;
        m[i] = b1 * m[i] + (1 - b1) * g;
        v[i] = b2 * v[i] + (1 - b2) * g * g;
        const mHat = m[i] / (1 - b1 ** t);
        const vHat = v[i] / (1 - b2 ** t);
        ref[i] -= (lr * mHat) / (Math.sqrt(vHat) + eps);
      }
      values(p).forEach((x, i) => expect(x).toBeCloseTo(ref[i], 12));
    }
    const state = opt.stateDict();
    expect([...state.tensors.keys()]).toEqual(['w.exp_avg', 'w.exp_avg_sq']);
    values(state.tensors.get('w.exp_avg')!).forEach((x, i) => expect(x).toBeCloseTo(m[i], 14));
    expect(state.steps.get('w')).toBe(3);
    opt.dispose();
    p.dispose();
  });

  it('resumes exactly from its state dict', () => {
    const grads = [[0.3, -0.1], [0.2, 0.4], [-0.5, 0.1], [0.05, 0.05]];
    const run = (split: boolean) => {
      const p = param([1, -1]);
      let opt = new AdamW([['w', p]], { lr: 0.1 });
      grads.forEach((g, i) => {
        if (split && i === 2) {
          const next = new AdamW([['w', p]], { lr: 0.1 });
          next.loadStateDict(opt.stateDict());
          opt.dispose();
          opt = next;
        }
        setGrad(p, g);
        opt.step();
      });
      const out = values(p);
      opt.dispose();
      p.dispose();
      return out;
    };
    expect(run(true)).toEqual(run(false));
  });

  it('skips parameters without a gradient and excludes those the decay filter rejects', () => {
    const a = param([1]);
    const b = param([1]);
    const opt = new AdamW([['a', a], ['b', b]], { lr: 0.1, weightDecay: 0.5, decay: (n) => n !== 'a' });
    setGrad(a, [0]);
    opt.step();
    expect(values(a)).toEqual([1]); // zero gradient, no decay
    expect(values(b)).toEqual([1]); // no gradient, untouched
    expect(opt.stateDict().steps.has('b')).toBe(false);
    opt.dispose();
    a.dispose();
    b.dispose();
  });

  it('names the tensor when a loaded state has the wrong shape', () => {
    const p = param([1, 2]);
    const opt = new AdamW([['w', p]], { lr: 0.1 });
    const bad = tensor([1, 2, 3], undefined, f64);
    expect(() => opt.loadStateDict({ tensors: new Map([['w.exp_avg', bad]]), steps: new Map() })).toThrow(/'w\.exp_avg' is \[3\]/);
    expect(() => opt.loadStateDict({ tensors: new Map([['x.exp_avg', bad]]), steps: new Map() })).toThrow(/unexpected state 'x\.exp_avg'/);
    bad.dispose();
    p.dispose();
  });
});

describe('SGD', () => {
  it('matches torch.optim.SGD with momentum, dampening and weight decay, by hand', () => {
    const grads = [[1, -2], [0.5, 0.5], [-1, 3]];
    for (const nesterov of [false, true]) {
      const [lr, mu, wd, damp] = [0.1, 0.9, 0.01, nesterov ? 0 : 0.2];
      const p = param([1, 2]);
      const opt = new SGD([['w', p]], { lr, momentum: mu, weightDecay: wd, dampening: damp, nesterov });
      const ref = [1, 2];
      const buf: number[] = [];
      grads.forEach((g, t) => {
        setGrad(p, g);
        opt.step();
        for (let i = 0; i < 2; i++) {
          let d = g[i] + wd * ref[i];
          buf[i] = t === 0 ? d : mu * buf[i] + (1 - damp) * d;
          d = nesterov ? d + mu * buf[i] : buf[i];
          ref[i] -= lr * d;
        }
        values(p).forEach((x, i) => expect(x).toBeCloseTo(ref[i], 13));
      });
      opt.dispose();
      p.dispose();
    }
  });
});

describe('clipGradNorm', () => {
  it('returns the global norm and scales gradients by min(1, max/(norm + 1e-6))', () => {
    fc.assert(
      fc.property(fc.array(fc.double({ min: -5, max: 5, noNaN: true }), { minLength: 1, maxLength: 6 }), fc.double({ min: 0.1, max: 10, noNaN: true }), (g, maxNorm) => {
        const a = param(g.map(() => 0));
        const b = param([0, 0]);
        setGrad(a, g);
        setGrad(b, [1, -1]);
        const norm = Math.hypot(...g, 1, -1);
        const n = clipGradNorm([a, b], maxNorm);
        expect(n.itemSync()).toBeCloseTo(norm, 10);
        const scale = Math.min(1, maxNorm / (norm + 1e-6));
        values(a.grad!).forEach((x, i) => expect(x).toBeCloseTo(g[i] * scale, 10));
        values(b.grad!).forEach((x, i) => expect(x).toBeCloseTo([1, -1][i] * scale, 10));
        n.dispose();
        a.dispose();
        b.dispose();
      }),
      { numRuns: 30 },
    );
  });
});

describe('schedules', () => {
  it('give the Hugging Face values at chosen steps', () => {
    expect(constant(0.3).lrAt(1234)).toBe(0.3);
    const wc = warmupConstant(1, 4);
    expect([0, 2, 4, 100].map((s) => wc.lrAt(s))).toEqual([0, 0.5, 1, 1]);
    const lin = warmupLinear({ peakLr: 1, warmupSteps: 10, totalSteps: 110 });
    expect([0, 5, 10, 60, 110, 200].map((s) => lin.lrAt(s))).toEqual([0, 0.5, 1, 0.5, 0, 0]);
    const cos = warmupCosine({ peakLr: 2, warmupSteps: 10, totalSteps: 110, minLr: 0.2 });
    expect(cos.lrAt(5)).toBeCloseTo(1, 12);
    expect(cos.lrAt(10)).toBeCloseTo(2, 12);
    expect(cos.lrAt(60)).toBeCloseTo(0.2 + 1.8 * 0.5, 12);
    expect(cos.lrAt(35)).toBeCloseTo(0.2 + 1.8 * 0.5 * (1 + Math.cos(Math.PI / 4)), 12);
    expect(cos.lrAt(110)).toBeCloseTo(0.2, 12);
    expect(cos.lrAt(500)).toBeCloseTo(0.2, 12);
  });

  it('never exceed the peak and decay monotonically after warmup', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 50 }), fc.integer({ min: 1, max: 200 }), (warm, extra) => {
        for (const s of [warmupLinear, warmupCosine]) {
          const sch = s({ peakLr: 1, warmupSteps: warm, totalSteps: warm + extra });
          let prev = Infinity;
          for (let t = warm; t <= warm + extra + 5; t++) {
            const lr = sch.lrAt(t);
            expect(lr).toBeLessThanOrEqual(Math.min(prev, 1) + 1e-15);
            expect(lr).toBeGreaterThanOrEqual(0);
            prev = lr;
          }
        }
      }),
      { numRuns: 30 },
    );
  });
});
