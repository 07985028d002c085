// Gradient and forward property helpers shared by the op tests. A gradient is checked with
// gradcheck (float64 central differences on the CPU); on any other backend its analytic f32
// gradient must also agree with that CPU float64 one, so a WebGPU suite can reuse the same cases.

import fc from 'fast-check';
import { expect } from 'vitest';
import {
  type Backend,
  cpu,
  type DType,
  gradcheck,
  mul,
  sum,
  type Tensor,
  tensor,
  tidy,
  valueAndGrad,
} from '../../src/tensor/index.js';

/** An input of an op under test: float values (f64 on the CPU check) or integer ids (i32). */
export interface InputSpec {
  data: ArrayLike<number>;
  shape: readonly number[];
  int?: boolean;
}

export interface GradSpec {
  /** The op under test; build any constant it needs on xs[0].backend with xs[0].dtype. */
  fn: (...xs: Tensor[]) => Tensor;
  inputs: InputSpec[];
  /** gradcheck tolerances (defaults 1e-6, 1e-5) and step (default 1e-6). */
  atol?: number;
  rtol?: number;
  eps?: number;
  /** Indices of float inputs not to differentiate. */
  skip?: number[];
  /** Tolerances of the f32-vs-f64 comparison used on a non-CPU backend (default 2e-3 each). */
  f32Tol?: { atol: number; rtol: number };
}

export const input = (data: ArrayLike<number>, shape: readonly number[]): InputSpec => ({ data, shape });
export const ints = (data: ArrayLike<number>, shape: readonly number[]): InputSpec => ({ data, shape, int: true });

export function materialize(spec: InputSpec, backend: Backend, floatDtype: DType): Tensor {
  return tensor(spec.data, spec.shape, { backend, dtype: spec.int ? 'i32' : floatDtype });
}

/** Throws with gradcheck's report (naming the worst input and element) when the gradient is off. */
export function expectGradcheck(spec: GradSpec): void {
  const res = tidy(() => {
    const xs = spec.inputs.map((s) => materialize(s, cpu, 'f64'));
    return gradcheck(spec.fn, xs, { atol: spec.atol, rtol: spec.rtol, eps: spec.eps, skip: spec.skip });
  });
  if (!res.ok) throw new Error(res.report);
}

/** d(Σ fn(xs)·r)/dx for the float inputs, r a fixed pseudo-random projection (as gradcheck does). */
async function projectedGrads(spec: GradSpec, backend: Backend, dtype: DType): Promise<Float64Array[]> {
  const pending = tidy(() => {
    const xs = spec.inputs.map((s) => materialize(s, backend, dtype));
    const diff = xs.map((x, i) => !spec.inputs[i].int && !(spec.skip ?? []).includes(i));
    const wrt = xs.filter((_, i) => diff[i]);
    const { grads } = valueAndGrad((...ws: Tensor[]) => {
      let k = 0;
      const y = spec.fn(...xs.map((x, i) => (diff[i] ? ws[k++] : x)));
      const r = Array.from({ length: y.size }, (_, j) => Math.sin(12.9898 * (j + 1)) * 2);
      return sum(mul(y, tensor(r, y.shape, { backend, dtype })));
    })(...wrt);
    return grads;
  });
  const out = await Promise.all(pending.map(async (g) => Float64Array.from(await g.data())));
  pending.forEach((g) => g.dispose());
  return out;
}

/** Checks an op's gradient at one point on the given backend (see the file comment). */
export async function checkGradient(spec: GradSpec, backend: Backend = cpu): Promise<void> {
  // The CPU f64 gradient is the reference, so it must itself pass gradcheck first.
  expectGradcheck(spec);
  if (backend === cpu) return;
  const tol = spec.f32Tol ?? { atol: 2e-3, rtol: 2e-3 };
  const [got, want] = [await projectedGrads(spec, backend, 'f32'), await projectedGrads(spec, cpu, 'f64')];
  got.forEach((g, i) => expectAllClose(g, want[i], tol.atol, tol.rtol, `gradient of input ${i} on ${backend.name}`));
}

export interface PropertyOptions {
  numRuns?: number;
  backend?: Backend;
  seed?: number;
}

/** fast-check property: the gradient of toSpec(case) checks out for every generated case. */
export async function gradProperty<C>(arb: fc.Arbitrary<C>, toSpec: (c: C) => GradSpec, opts: PropertyOptions = {}): Promise<void> {
  const backend = opts.backend ?? cpu;
  await fc.assert(
    fc.asyncProperty(arb, async (c) => {
      await checkGradient(toSpec(c), backend);
    }),
    // A failing case can take long to shrink (each step is a gradcheck): stop after 30 s and report it.
    { numRuns: opts.numRuns ?? 30, seed: opts.seed, interruptAfterTimeLimit: 30_000, markInterruptAsFailure: true },
  );
}

/** Elementwise |a − b| <= atol + rtol·|b|, with the first failing index in the message. */
export function expectAllClose(a: ArrayLike<number>, b: ArrayLike<number>, atol: number, rtol: number, label = 'values'): void {
  expect(a.length, `${label}: length`).toBe(b.length);
  for (let i = 0; i < a.length; i++) {
    const ok = Math.abs(a[i] - b[i]) <= atol + rtol * Math.abs(b[i]) || (Number.isNaN(a[i]) && Number.isNaN(b[i])) || a[i] === b[i];
    if (!ok) throw new Error(`${label}: element ${i} is ${a[i]}, expected ${b[i]} (atol ${atol}, rtol ${rtol})`);
  }
}

/** Reads a tensor on any backend as float64. */
export async function read(t: Tensor): Promise<Float64Array> {
  return Float64Array.from(await t.data());
}
