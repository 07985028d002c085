// User-written WGSL kernels as tensor ops: defineKernel runs one (any number of outputs, no
// gradient); defineKernelOp makes a one-output differentiable op whose backward is a second kernel
// or a VJP written with tensor ops. On the CPU backend the spec's `cpu` reference runs instead, so
// the op can be gradchecked in f64 (see docs/custom-kernels.md).

import { noGrad, record, type OpContext } from './autograd.js';
import type { Backend, Storage } from './backend.js';
import { type DType, isFloat, type TypedArray } from './dtype.js';
import { fmtShape, type Shape, ShapeError, sizeOf } from './shape.js';
import { Tensor } from './tensor.js';
import { MAX_WORKGROUPS_PER_DIM, packUniforms, type Kernel, type Launch, type UniformField } from '../shaders/kernel.js';

export interface KernelInputSpec {
  name: string;
  /**
   * 'f32' (default) accepts any floating-point tensor the backend computes in: f32 on WebGPU, f32
   * or f64 on the CPU (gradcheck runs the `cpu` reference in f64). 'i32' requires i32.
   */
  dtype?: 'f32' | 'i32';
}

export interface KernelOutputSpec {
  name: string;
  shape: Shape;
  /** 'f32' (default) means the float dtype of the float inputs (f64 under gradcheck). */
  dtype?: 'f32' | 'i32';
}

/** One WGSL kernel with its shape rule, launch geometry and CPU reference. Shapes are the inputs', in order. */
export interface KernelSpec {
  /** Appears in every error; the WebGPU pipeline is named `custom:<name>`. */
  name: string;
  inputs: readonly KernelInputSpec[];
  outputs: (shapes: readonly Shape[]) => readonly KernelOutputSpec[];
  /** Fields of the uniform struct `u` at binding 0, in declaration order (see packUniforms). Default: none. */
  uniforms?: (shapes: readonly Shape[]) => readonly UniformField[];
  /** WGSL; binding 0 = `u`, bindings 1.. = inputs (read) then outputs (read_write); entry point `main`. */
  code: string;
  workgroups: (shapes: readonly Shape[]) => readonly [number, number, number];
  /** Reference implementation for the CPU backend; gets and returns row-major arrays, one per output. */
  cpu?: (inputs: readonly TypedArray[], shapes: readonly Shape[]) => readonly TypedArray[];
  /** Extra shape rules: return a message to reject the inputs (it is prefixed with the op name and shapes). */
  check?: (shapes: readonly Shape[]) => string | null;
  /**
   * Zero the outputs before the kernel runs (default true), so an element the kernel forgets reads 0
   * instead of a pooled buffer's stale data. Set false when the kernel writes every element.
   */
  zeroOutputs?: boolean;
}

/**
 * The backward kernel of a one-output op: its inputs are (inputs..., output, outputGrad) and its
 * outputs are the gradients of the forward's float inputs, in order (i32 inputs get none).
 */
export type BackwardKernelSpec = Omit<KernelSpec, 'name'> & { name?: string };

export interface KernelOpSpec extends KernelSpec {
  /** Without one, the op still runs but backward through it throws an error naming it. */
  backward?: { kernel: BackwardKernelSpec } | ((grad: Tensor, ctx: OpContext) => readonly (Tensor | null)[]);
}

/** What the WebGPU backend offers for user kernels (duck-typed so the CPU-only path never loads Dawn). */
interface KernelRunner {
  runKernel(launch: Launch, inputs: readonly Storage[], outputs: readonly Storage[]): void;
}

function runsKernels(b: Backend): b is Backend & KernelRunner {
  return typeof (b as Partial<KernelRunner>).runKernel === 'function';
}

function describe(tensors: readonly Tensor[]): string {
  return tensors.map((t) => `${fmtShape(t.shape)} ${t.dtype}`).join(', ');
}

/** Checks inputs against the spec; returns the backend and the float dtype the outputs use. */
function checkInputs(spec: KernelSpec, inputs: readonly Tensor[]): { backend: Backend; floatDtype: DType } {
  const op = spec.name;
  const fail = (msg: string): never => {
    throw new ShapeError(op, `${msg} (inputs: ${describe(inputs)})`);
  };
  if (inputs.length !== spec.inputs.length) {
    fail(`expects ${spec.inputs.length} inputs (${spec.inputs.map((i) => i.name).join(', ')}), got ${inputs.length}`);
  }
  const backend = inputs[0]?.backend;
  let floatDtype: DType | null = null;
  inputs.forEach((t, i) => {
    const want = spec.inputs[i];
    if (t.backend !== backend) throw new Error(`${op}: inputs live on different backends (${backend.name} and ${t.backend.name}); move them with toBackend()`);
    if ((want.dtype ?? 'f32') === 'i32') {
      if (t.dtype !== 'i32') fail(`input '${want.name}' must be i32, got ${t.dtype}`);
    } else {
      if (!isFloat(t.dtype)) fail(`input '${want.name}' must be floating-point, got ${t.dtype}`);
      if (floatDtype !== null && t.dtype !== floatDtype) fail(`float inputs must share one dtype, got ${floatDtype} and ${t.dtype} ('${want.name}')`);
      floatDtype = t.dtype;
    }
  });
  const msg = spec.check?.(inputs.map((t) => t.shape)) ?? null;
  if (msg !== null) fail(msg);
  return { backend: backend ?? fail('needs at least one input'), floatDtype: floatDtype ?? 'f32' };
}

function checkWorkgroups(op: string, w: readonly number[]): [number, number, number] {
  if (w.length !== 3 || !w.every((n) => Number.isInteger(n) && n >= 0 && n <= MAX_WORKGROUPS_PER_DIM)) {
    throw new Error(`${op}: workgroups() returned [${w.join(', ')}]; want three integers in [0, ${MAX_WORKGROUPS_PER_DIM}] (grid1d spreads large counts over x and y)`);
  }
  return [w[0], w[1], w[2]];
}

/** Runs a kernel spec on its inputs' backend (WGSL on WebGPU, the `cpu` reference elsewhere); no graph. */
function runSpec(spec: KernelSpec, inputs: readonly Tensor[]): Tensor[] {
  const op = spec.name;
  const { backend, floatDtype } = checkInputs(spec, inputs);
  const shapes = inputs.map((t) => t.shape);
  const outs = spec.outputs(shapes).map((o) => {
    const dtype: DType = o.dtype === 'i32' ? 'i32' : floatDtype;
    if (!o.shape.every((d) => Number.isInteger(d) && d >= 0)) throw new ShapeError(op, `output '${o.name}' has an invalid shape ${fmtShape(o.shape)}`);
    return { ...o, dtype };
  });
  if (outs.length === 0) throw new Error(`${op}: outputs() returned no outputs`);

  if (runsKernels(backend)) {
    const kernel: Kernel = {
      name: `custom:${op}`,
      code: spec.code,
      storage: [...inputs.map(() => 'read' as const), ...outs.map(() => 'read_write' as const)],
    };
    // Everything the user's functions compute is validated before any buffer is taken.
    const work = outs.some((o) => sizeOf(o.shape) > 0);
    const launch: Launch | null = work ? { kernel, uniforms: packUniforms(spec.uniforms?.(shapes) ?? []), workgroups: checkWorkgroups(op, spec.workgroups(shapes)) } : null;
    const storages = outs.map((o) => backend.alloc(o.dtype, sizeOf(o.shape)));
    try {
      if (spec.zeroOutputs ?? true) storages.forEach((s) => backend.fill(s, 0));
      if (launch) backend.runKernel(launch, inputs.map((t) => t.storage), storages);
    } catch (e) {
      storages.forEach((s) => backend.free(s));
      throw e;
    }
    return storages.map((s, i) => new Tensor(s, outs[i].shape));
  }

  if (!spec.cpu) throw new Error(`${op}: the ${backend.name} backend cannot run WGSL and the op has no \`cpu\` reference implementation`);
  if (!backend.readSync) throw new Error(`${op}: the ${backend.name} backend has neither runKernel nor readSync`);
  const arrays = spec.cpu(inputs.map((t) => backend.readSync!(t.storage)), shapes);
  if (arrays.length !== outs.length) throw new Error(`${op}: cpu() returned ${arrays.length} arrays for ${outs.length} outputs`);
  return arrays.map((arr, i) => {
    const o = outs[i];
    if (arr.length !== sizeOf(o.shape)) throw new ShapeError(op, `cpu() returned ${arr.length} values for output '${o.name}' of shape ${fmtShape(o.shape)}`);
    return new Tensor(backend.upload(o.dtype, arr), o.shape);
  });
}

/** A user kernel as a function of tensors returning one tensor per declared output; records no gradient. */
export function defineKernel(spec: KernelSpec): (...inputs: Tensor[]) => Tensor[] {
  return (...inputs: Tensor[]): Tensor[] => runSpec(spec, inputs);
}

/**
 * A user kernel as a differentiable op with one output. Check its gradients with gradcheck on the
 * CPU backend (through `cpu`) and compare its WebGPU results with a composition of built-in ops.
 */
export function defineKernelOp(spec: KernelOpSpec): (...inputs: Tensor[]) => Tensor {
  const { backward } = spec;
  const backwardSpec: KernelSpec | null =
    backward && typeof backward !== 'function' ? { ...backward.kernel, name: backward.kernel.name ?? `${spec.name}.backward` } : null;
  return (...inputs: Tensor[]): Tensor => {
    const outs = noGrad(() => runSpec(spec, inputs));
    if (outs.length !== 1) {
      outs.forEach((t) => t.dispose());
      throw new Error(`${spec.name}: defineKernelOp supports one output, outputs() declared ${outs.length}; use defineKernel for several (no gradient)`);
    }
    const output = outs[0];
    const ctx: OpContext = { inputs, output, saved: [] };
    return record(spec.name, output, inputs, (grad) => {
      if (!backward) throw new Error(`${spec.name}: no backward was given to defineKernelOp, so gradients cannot flow through it`);
      if (typeof backward === 'function') {
        const grads = backward(grad, ctx);
        if (grads.length !== inputs.length) throw new Error(`${spec.name}: backward returned ${grads.length} gradients for ${inputs.length} inputs`);
        return grads;
      }
      const floatInputs = inputs.map((t, i) => (spec.inputs[i].dtype === 'i32' ? -1 : i)).filter((i) => i >= 0);
      const gs = runSpec(backwardSpec!, [...inputs, output, grad]);
      if (gs.length !== floatInputs.length) {
        gs.forEach((t) => t.dispose());
        throw new Error(`${backwardSpec!.name}: returned ${gs.length} gradients for ${floatInputs.length} float inputs`);
      }
      return inputs.map((_, i) => (floatInputs.includes(i) ? gs[floatInputs.indexOf(i)] : null));
    });
  };
}
