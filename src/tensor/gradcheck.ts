// gradcheck: compares an op's analytical gradient with central finite differences in float64 and
// reports the worst element. Our own tests use it for every differentiable op.

import { valueAndGrad, noGrad } from './autograd.js';
import { cpu } from './engine.js';
import { tidy } from './scope.js';
import { Tensor } from './tensor.js';
import { tensor } from './ops/creation.js';
import { mul } from './ops/elementwise.js';
import { sum } from './ops/reduce.js';
import { fmtShape } from './shape.js';
import { Generator, fillNormal } from './random/philox.js';

export interface GradcheckOptions {
  /** Finite-difference step (default 1e-6). */
  eps?: number;
  /** Passes when |analytic − numeric| <= atol + rtol·|numeric| for every element (defaults 1e-6, 1e-5). */
  atol?: number;
  rtol?: number;
  /** Seed of the random projection used when fn's output is not a scalar. */
  seed?: number;
  /** Indices of inputs not to check (e.g. integer targets or masks). */
  skip?: number[];
}

export interface GradcheckResult {
  ok: boolean;
  maxAbsError: number;
  /** The element with the largest error relative to the tolerance. */
  worst: { input: number; index: number; analytic: number; numeric: number; error: number } | null;
  /** A readable one-paragraph report. */
  report: string;
}

/**
 * Checks fn's gradients w.r.t. each input at the given point. Inputs are copied to float64 on the
 * CPU backend; a non-scalar output y is reduced to Σ y·r with a fixed random r.
 */
export function gradcheck(fn: (...xs: Tensor[]) => Tensor, inputs: readonly Tensor[], opts: GradcheckOptions = {}): GradcheckResult {
  const eps = opts.eps ?? 1e-6;
  const atol = opts.atol ?? 1e-6;
  const rtol = opts.rtol ?? 1e-5;
  const skip = new Set(opts.skip ?? []);
  return tidy(() => {
    const base = inputs.map((x) => {
      if (!x.backend.readSync) throw new Error('gradcheck: inputs must be on the CPU backend');
      const data = x.dataSync();
      return { data: Float64Array.from(data), shape: [...x.shape], float: x.dtype !== 'i32', dtype: x.dtype };
    });
    const make = (i: number, data: Float64Array): Tensor =>
      tensor(data, base[i].shape, { backend: cpu, dtype: base[i].float ? 'f64' : 'i32' });
    let proj: Tensor | null = null;
    const scalarFn = (...xs: Tensor[]): Tensor => {
      const y = fn(...xs);
      if (y.size === 1) return y;
      if (!proj) {
        const r = new Float64Array(y.size);
        fillNormal(r, new Generator(opts.seed ?? 1234).key, 0);
        proj = tensor(r, y.shape, { backend: cpu, dtype: 'f64' });
      }
      return sum(mul(y, proj));
    };
    const evalAt = (datas: Float64Array[]): number =>
      tidy(() => noGrad(() => scalarFn(...datas.map((d, i) => make(i, d))).itemSync()));

    const checked = base.map((b, i) => b.float && !skip.has(i));
    const points = base.map((b, i) => make(i, b.data));
    const wrt = points.filter((_, i) => checked[i]);
    const positions = points.map((_, i) => (checked[i] ? checked.slice(0, i).filter(Boolean).length : -1));
    const { grads } = valueAndGrad((...diff: Tensor[]) => scalarFn(...points.map((p, i) => (positions[i] >= 0 ? diff[positions[i]] : p))))(...wrt);

    let worst: GradcheckResult['worst'] = null;
    let worstRatio = -1;
    let maxAbs = 0;
    base.forEach((b, i) => {
      if (!checked[i]) return;
      const analytic = grads[positions[i]].dataSync();
      const datas = base.map((x) => Float64Array.from(x.data));
      for (let j = 0; j < b.data.length; j++) {
        const orig = datas[i][j];
        datas[i][j] = orig + eps;
        const fp = evalAt(datas);
        datas[i][j] = orig - eps;
        const fm = evalAt(datas);
        datas[i][j] = orig;
        const numeric = (fp - fm) / (2 * eps);
        const err = Math.abs(analytic[j] - numeric);
        const ratio = err / (atol + rtol * Math.abs(numeric));
        maxAbs = Math.max(maxAbs, Number.isNaN(err) ? Infinity : err);
        if (ratio > worstRatio || Number.isNaN(ratio)) {
          worstRatio = Number.isNaN(ratio) ? Infinity : ratio;
          worst = { input: i, index: j, analytic: analytic[j], numeric, error: err };
        }
      }
    });
    const ok = worstRatio <= 1;
    const w = worst as GradcheckResult['worst'];
    const report = w
      ? `gradcheck ${ok ? 'passed' : 'FAILED'}: worst element input ${w.input} ${fmtShape(base[w.input].shape)} at flat index ${w.index}: ` +
        `analytic ${w.analytic}, numeric ${w.numeric}, |error| ${w.error.toExponential(3)} (tolerance ${atol} + ${rtol}·|numeric|)`
      : 'gradcheck: no floating-point input to check';
    return { ok, maxAbsError: maxAbs, worst: w, report };
  });
}
