// User WGSL kernels as differentiable ops, on the worked example of docs/custom-kernels.md: a fused
// SwiGLU, gradchecked in f64 through its CPU references and compared on WebGPU with the same
// function composed from built-in ops.

import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { expect, it } from 'vitest';
import {
  add, cpu, defineKernel, defineKernelOp, flatIndexWGSL, gradcheck, grid1d, mul, sigmoid, sizeOf, sub, sum, tensor, tidy, valueAndGrad,
  type Backend, type KernelOpSpec, type Shape, type Tensor, type TypedArray,
} from '../../src/tensor/index.js';
import { seededValues } from '../helpers/backendArbitraries.js';
import { describeGpu, expectClose, gpu } from '../helpers/webgpu.js';

// ---- the worked example: docs/custom-kernels.md quotes the lines between the docs markers ----

// docs:begin swiglu
const WG = 64; // threads per workgroup; grid1d + flatIndex spread large tensors over x and y

function sig(x: number): number {
  return x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x));
}

const swigluForward: KernelOpSpec = {
  name: 'swiglu',
  inputs: [{ name: 'a' }, { name: 'b' }],
  check: ([a, b]) => (a.length === b.length && a.every((d, i) => d === b[i]) ? null : 'a and b must have the same shape'),
  outputs: ([a]) => [{ name: 'y', shape: a }],
  uniforms: ([a]) => [['u32', sizeOf(a)]],
  workgroups: ([a]) => grid1d(sizeOf(a), WG),
  code: `struct U { n: u32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
${flatIndexWGSL(WG)}
fn sigmoid(x: f32) -> f32 {
  if (x >= 0.0) { return 1.0 / (1.0 + exp(-x)); }
  let e = exp(x);
  return e / (1.0 + e);
}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = flatIndex(wid, nwg, lid);
  if (i >= u.n) { return; }
  y[i] = a[i] * sigmoid(a[i]) * b[i];
}`,
  cpu: ([a, b]) => [a.map((x, i) => x * sig(x) * b[i])],
};

/** swiglu(a, b) = a·σ(a)·b; its backward kernel reads (a, b, y, dy) and writes (da, db). */
const swiglu = defineKernelOp({
  ...swigluForward,
  backward: {
    kernel: {
      inputs: [{ name: 'a' }, { name: 'b' }, { name: 'y' }, { name: 'dy' }],
      outputs: ([a]) => [{ name: 'da', shape: a }, { name: 'db', shape: a }],
      uniforms: ([a]) => [['u32', sizeOf(a)]],
      workgroups: ([a]) => grid1d(sizeOf(a), WG),
      code: `struct U { n: u32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> y: array<f32>;
@group(0) @binding(4) var<storage, read> dy: array<f32>;
@group(0) @binding(5) var<storage, read_write> da: array<f32>;
@group(0) @binding(6) var<storage, read_write> db: array<f32>;
${flatIndexWGSL(WG)}
fn sigmoid(x: f32) -> f32 {
  if (x >= 0.0) { return 1.0 / (1.0 + exp(-x)); }
  let e = exp(x);
  return e / (1.0 + e);
}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = flatIndex(wid, nwg, lid);
  if (i >= u.n) { return; }
  let x = a[i];
  let s = sigmoid(x);
  da[i] = dy[i] * b[i] * (s + x * s * (1.0 - s));
  db[i] = dy[i] * x * s;
}`,
      cpu: ([a, b, , dy]) => [
        a.map((x, i) => dy[i] * b[i] * (sig(x) + x * sig(x) * (1 - sig(x)))),
        a.map((x, i) => dy[i] * x * sig(x)),
      ],
    },
  },
});

/** The same op with its backward written with tensor ops instead of a kernel. */
const swigluOps = defineKernelOp({
  ...swigluForward,
  backward: (g, { inputs: [a, b] }) => {
    const s = sigmoid(a);
    const dSilu = add(s, mul(a, mul(s, sub(1, s)))); // d(a·σ(a))/da
    return [mul(mul(g, b), dSilu), mul(g, mul(a, s))];
  },
});
// docs:end swiglu

const composed = (a: Tensor, b: Tensor): Tensor => mul(mul(a, sigmoid(a)), b);

// ---- CPU: gradients in f64 ----

const smallShape = fc.array(fc.constantFrom(1, 2, 3, 5), { minLength: 0, maxLength: 3 });

function f64(data: number[], shape: Shape): Tensor {
  return tensor(data, shape, { backend: cpu, dtype: 'f64' });
}

it('swiglu gradchecks in f64 on the CPU, with the backward kernel (its cpu reference) and with a tensor-op backward', () => {
  fc.assert(
    fc.property(smallShape, fc.integer({ min: 0, max: 2 ** 31 - 1 }), (shape, seed) => {
      tidy(() => {
        const n = sizeOf(shape);
        const a = f64(seededValues(seed, n, -4, 4), shape);
        const b = f64(seededValues(seed + 1, n, -4, 4), shape);
        for (const op of [swiglu, swigluOps]) {
          const r = gradcheck(op, [a, b]);
          expect(r.ok, r.report).toBe(true);
        }
      });
    }),
    { numRuns: 12 },
  );
});

it('swiglu on the CPU equals the composition a·σ(a)·b (f64, to 1e-12)', () => {
  tidy(() => {
    const a = f64(seededValues(1, 24, -6, 6), [4, 6]);
    const b = f64(seededValues(2, 24, -6, 6), [4, 6]);
    const got = swiglu(a, b).dataSync();
    const want = composed(a, b).dataSync();
    expectClose(got, want, 1e-12, 1e-12, 'swiglu cpu');
  });
});

it('bad inputs throw errors that name the op: input count, dtype, shape rule, mixed float dtypes', () => {
  tidy(() => {
    const a = tensor([1, 2, 3, 4, 5, 6], [2, 3], { backend: cpu });
    const b3 = tensor([1, 2, 3], [3], { backend: cpu });
    const ai = tensor([1, 2, 3, 4, 5, 6], [2, 3], { backend: cpu, dtype: 'i32' });
    const a64 = tensor([1, 2, 3, 4, 5, 6], [2, 3], { backend: cpu, dtype: 'f64' });
    expect(() => swiglu(a)).toThrow(/^swiglu: expects 2 inputs \(a, b\), got 1/);
    expect(() => swiglu(ai, a)).toThrow(/^swiglu: input 'a' must be floating-point, got i32 \(inputs: \[2, 3\] i32, \[2, 3\] f32\)/);
    expect(() => swiglu(a, b3)).toThrow(/^swiglu: a and b must have the same shape \(inputs: \[2, 3\] f32, \[3\] f32\)/);
    expect(() => swiglu(a64, a)).toThrow(/^swiglu: float inputs must share one dtype/);
  });
});

it('without a cpu reference the CPU backend refuses, naming the op; without a backward, gradients do', () => {
  tidy(() => {
    const a = tensor([1, 2], [2], { backend: cpu, requiresGrad: true });
    const noCpu = defineKernelOp({ ...swigluForward, cpu: undefined });
    expect(() => noCpu(a, a)).toThrow(/^swiglu: the cpu backend cannot run WGSL and the op has no `cpu` reference/);
    const noBackward = defineKernelOp(swigluForward);
    expect(() => valueAndGrad((x: Tensor) => sum(noBackward(x, x)))(a)).toThrow(/^swiglu: no backward was given/);
  });
});

it('defineKernel runs a kernel with several outputs (no gradient), each checked against its declared shape', () => {
  const split = defineKernel({
    name: 'splitSigns',
    inputs: [{ name: 'x' }],
    outputs: ([x]) => [{ name: 'pos', shape: x }, { name: 'neg', shape: x }],
    workgroups: () => [1, 1, 1],
    code: '',
    cpu: ([x]) => [x.map((v) => Math.max(v, 0)), x.map((v) => Math.min(v, 0))],
  });
  tidy(() => {
    const [p, n] = split(tensor([-1, 2, -3], [3], { backend: cpu }));
    expect([...p.dataSync(), ...n.dataSync()]).toEqual([0, 2, 0, -1, 0, -3]);
    const bad = defineKernel({ name: 'short', inputs: [{ name: 'x' }], outputs: ([x]) => [{ name: 'y', shape: x }], workgroups: () => [1, 1, 1], code: '', cpu: ([x]) => [x.subarray(1)] });
    expect(() => bad(tensor([1, 2], [2], { backend: cpu }))).toThrow(/^short: cpu\(\) returned 1 values for output 'y' of shape \[2\]/);
  });
});

it('docs/custom-kernels.md quotes the worked example above verbatim', () => {
  const src = readFileSync(new URL(import.meta.url), 'utf8');
  const example = src.slice(src.indexOf('// docs:begin swiglu\n') + 21, src.indexOf('// docs:end swiglu'));
  const doc = readFileSync(new URL('../../docs/custom-kernels.md', import.meta.url), 'utf8');
  expect(example.length).toBeGreaterThan(1000);
  expect(doc.includes(example), 'docs/custom-kernels.md is out of date: paste the lines between the docs markers of this file').toBe(true);
});

// ---- WebGPU: the kernels agree with the composed ops ----

/** Dims up to 130 so tensors span several 64-wide workgroups and partial last groups; 0 skips the dispatch. */
const gpuShape = fc.array(fc.constantFrom(0, 1, 2, 3, 7, 13, 65, 130), { minLength: 0, maxLength: 3 }).filter((s) => sizeOf(s) <= 40000);

async function read(ts: Tensor[]): Promise<TypedArray[]> {
  const out = await Promise.all(ts.map((t) => t.data()));
  ts.forEach((t) => t.dispose());
  return out;
}

/** Value and both input gradients of Σ f(a, b)·r, on backend. */
function valueAndGrads(f: (a: Tensor, b: Tensor) => Tensor, backend: Backend, shape: Shape, seed: number): Tensor[] {
  const n = sizeOf(shape);
  return tidy(() => {
    const a = tensor(seededValues(seed, n, -6, 6), shape, { backend });
    const b = tensor(seededValues(seed + 1, n, -3, 3), shape, { backend });
    const r = tensor(seededValues(seed + 2, n, -1, 1), shape, { backend });
    const y = f(a, b);
    const { grads } = valueAndGrad((x: Tensor, z: Tensor) => sum(mul(f(x, z), r)))(a, b);
    return [y, ...grads];
  });
}

describeGpu('swiglu on WebGPU', () => {
  // f32: the fused and composed forms round differently (da sums two products), so a few ulp.
  const ABS = 1e-5;
  const REL = 1e-5;

  it('forward values and gradients match mul(mul(a, sigmoid(a)), b) for random shapes (abs 1e-5 + rel 1e-5)', async () => {
    await fc.assert(
      fc.asyncProperty(gpuShape, fc.integer({ min: 0, max: 2 ** 31 - 1 }), async (shape, seed) => {
        const [want, wantDa, wantDb] = await read(valueAndGrads(composed, gpu, shape, seed));
        for (const [label, op] of [['backward kernel', swiglu], ['tensor-op backward', swigluOps]] as const) {
          const [y, da, db] = await read(valueAndGrads(op, gpu, shape, seed));
          expectClose(y, want, ABS, REL, `${label} y ${JSON.stringify(shape)}`);
          expectClose(da, wantDa, ABS, REL, `${label} da ${JSON.stringify(shape)}`);
          expectClose(db, wantDb, ABS, REL, `${label} db ${JSON.stringify(shape)}`);
        }
      }),
      { numRuns: 12 },
    );
  });

  it('WebGPU and the cpu references agree in f32 (abs 1e-5 + rel 1e-5) on a tensor of 3 partial workgroups', async () => {
    const shape = [3, 50];
    const [gy, gda, gdb] = await read(valueAndGrads(swiglu, gpu, shape, 7));
    const [cy, cda, cdb] = await read(valueAndGrads(swiglu, cpu, shape, 7));
    expectClose(gy, cy, ABS, REL, 'y');
    expectClose(gda, cda, ABS, REL, 'da');
    expectClose(gdb, cdb, ABS, REL, 'db');
  });

  it('wrong dtype or shape on the GPU throws naming the op before anything is dispatched', () => {
    tidy(() => {
      const a = tensor([1, 2, 3], [3], { backend: gpu });
      const ai = tensor([1, 2, 3], [3], { backend: gpu, dtype: 'i32' });
      const b = tensor([1, 2], [2], { backend: gpu });
      expect(() => swiglu(a, ai)).toThrow(/^swiglu: input 'b' must be floating-point, got i32/);
      expect(() => swiglu(a, b)).toThrow(/^swiglu: a and b must have the same shape \(inputs: \[3\] f32, \[2\] f32\)/);
    });
  });

  it('broken WGSL fails with an error naming custom:swiglu, the line and the source line', async () => {
    const code = swigluForward.code.replace('y[i] = a[i] * sigmoid(a[i]) * b[i];', 'y[i] = a[i] * sigmoid(a[i]) * b[i] + undefinedThing;');
    const line = code.split('\n').findIndex((l) => l.includes('undefinedThing')) + 1;
    const broken = defineKernelOp({ ...swigluForward, code });
    const a = tensor([1, 2, 3], [3], { backend: gpu });
    const y = broken(a, a);
    const err = await y.data().then(() => null, (e: unknown) => e as Error);
    expect(err?.message).toMatch(/kernel 'custom:swiglu'/);
    expect(err?.message).toMatch(new RegExp(`line ${line}:\\d+: .*undefinedThing`));
    expect(err?.message).toMatch(/y\[i\] = a\[i\] \* sigmoid\(a\[i\]\) \* b\[i\] \+ undefinedThing/);
    // The backend keeps working for other kernels.
    const [ok] = await read([swiglu(a, a)]);
    expectClose(ok, [1, 2, 3].map((x) => x * sig(x) * x), ABS, REL, 'after error');
    a.dispose();
    y.dispose();
  });
});
