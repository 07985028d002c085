// Runs kernel builders' Launches on a real WebGPU device for tests: compiles (caching pipelines by
// source and failing with the compiler's message and line), uploads inputs, dispatches, reads back.
// Without an adapter, opening returns undefined (the caller skips) or fails under GANPO_REQUIRE_WEBGPU=1.

import type { Launch } from '../../src/shaders/kernel.js';
import { adapterOrSkip } from './webgpuEnv.js';

export type HostArray = Float32Array | Int32Array | Uint32Array;

/** A binding: initial contents (its length fixes the element count and its type the readback type). */
export type Buffers = Record<string, HostArray>;

/** One dispatch of a sequence: the launch and the names of the buffers bound to its storage slots. */
export interface Step {
  launch: Launch;
  bind: readonly string[];
}

export interface KernelHarness {
  readonly device: GPUDevice;
  /**
   * Runs one launch on buffers in storage order and returns every buffer's contents afterwards, or
   * only those at the positions in `only` (big cases skip reading back their inputs; the others
   * come back as given).
   */
  run(launch: Launch, buffers: readonly HostArray[], only?: readonly number[]): Promise<HostArray[]>;
  /** Runs steps in order on named buffers (in one submit) and returns every buffer afterwards (or those in `only`). */
  runSteps(steps: readonly Step[], buffers: Buffers, only?: readonly string[]): Promise<Buffers>;
  /** How many distinct pipelines were compiled (tests check that shapes reuse them). */
  pipelineCount(): number;
  destroy(): void;
}

/** Opens a device; undefined when there is no adapter and the suite is to be skipped (see webgpuEnv.ts). */
export async function openHarness(suite: string): Promise<KernelHarness | undefined> {
  const adapter = await adapterOrSkip(suite);
  if (!adapter) return undefined;
  // Optional features the kernels have variants for (f16 operands, subgroup operations).
  const wanted: GPUFeatureName[] = ['shader-f16', 'subgroups'];
  // As the backend does: workgroup memory up to the adapter's maximum (the 128×128×16 matmul tile needs 32 KiB).
  const requiredLimits = { maxComputeWorkgroupStorageSize: adapter.limits.maxComputeWorkgroupStorageSize };
  const device = await adapter.requestDevice({ requiredFeatures: wanted.filter((f) => adapter.features.has(f)), requiredLimits });
  return makeHarness(device);
}

function makeHarness(device: GPUDevice): KernelHarness {
  const pipelines = new Map<string, Promise<GPUComputePipeline>>();

  async function compile(launch: Launch): Promise<GPUComputePipeline> {
    const { name, code } = launch.kernel;
    device.pushErrorScope('validation');
    const module = device.createShaderModule({ code });
    const info = await module.getCompilationInfo();
    const errors = info.messages.filter((m) => m.type === 'error');
    if (errors.length > 0) {
      await device.popErrorScope();
      const lines = code.split('\n');
      const text = errors.map((m) => `${name}:${m.lineNum}:${m.linePos}: ${m.message}\n  ${lines[m.lineNum - 1] ?? ''}`);
      throw new Error(`WGSL compilation failed\n${text.join('\n')}`);
    }
    const pipeline = device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
    const error = await device.popErrorScope();
    if (error) throw new Error(`${name}: pipeline creation failed: ${error.message}`);
    return pipeline;
  }

  function pipelineFor(launch: Launch): Promise<GPUComputePipeline> {
    let p = pipelines.get(launch.kernel.code);
    if (!p) {
      p = compile(launch);
      pipelines.set(launch.kernel.code, p);
    }
    return p;
  }

  async function runSteps(steps: readonly Step[], buffers: Buffers, only?: readonly string[]): Promise<Buffers> {
    const compiled = await Promise.all(steps.map((s) => pipelineFor(s.launch)));
    const names = Object.keys(buffers);
    const readNames = only ?? names;
    const gpuBuffers = new Map<string, GPUBuffer>();
    const temp: GPUBuffer[] = [];
    device.pushErrorScope('validation');
    for (const name of names) {
      const data = buffers[name]!;
      // Bindings may not be empty; a 16-byte minimum also keeps every size a multiple of 4.
      const size = Math.max(16, Math.ceil(data.byteLength / 16) * 16);
      const buf = device.createBuffer({ size, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
      device.queue.writeBuffer(buf, 0, data.buffer, data.byteOffset, data.byteLength);
      gpuBuffers.set(name, buf);
      temp.push(buf);
    }
    const encoder = device.createCommandEncoder();
    steps.forEach((step, i) => {
      const { launch, bind } = step;
      if (bind.length !== launch.kernel.storage.length) {
        throw new Error(`${launch.kernel.name}: ${bind.length} buffers bound, kernel takes ${launch.kernel.storage.length}`);
      }
      const uniform = device.createBuffer({ size: launch.uniforms.byteLength, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
      device.queue.writeBuffer(uniform, 0, launch.uniforms);
      temp.push(uniform);
      const pipeline = compiled[i]!;
      const bindGroup = device.createBindGroup({
        layout: pipeline.getBindGroupLayout(0),
        entries: [
          { binding: 0, resource: { buffer: uniform } },
          ...bind.map((name, j) => {
            const buffer = gpuBuffers.get(name);
            if (!buffer) throw new Error(`${launch.kernel.name}: no buffer named ${name}`);
            return { binding: j + 1, resource: { buffer } };
          }),
        ],
      });
      const pass = encoder.beginComputePass();
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, bindGroup);
      pass.dispatchWorkgroups(...launch.workgroups);
      pass.end();
    });
    const reads = readNames.map((name) => {
      const src = gpuBuffers.get(name)!;
      const read = device.createBuffer({ size: src.size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
      encoder.copyBufferToBuffer(src, 0, read, 0, src.size);
      temp.push(read);
      return read;
    });
    device.queue.submit([encoder.finish()]);
    const error = await device.popErrorScope();
    if (error) throw new Error(`${steps.map((s) => s.launch.kernel.name).join(', ')}: ${error.message}`);
    const out: Buffers = { ...buffers };
    await Promise.all(reads.map(async (read, i) => {
      const name = readNames[i]!;
      const like = buffers[name]!;
      await read.mapAsync(GPUMapMode.READ);
      const bytes = read.getMappedRange().slice(0, like.byteLength);
      read.unmap();
      out[name] = like instanceof Float32Array ? new Float32Array(bytes) : like instanceof Int32Array ? new Int32Array(bytes) : new Uint32Array(bytes);
    }));
    for (const b of temp) b.destroy();
    return out;
  }

  return {
    device,
    async run(launch, buffers, only) {
      const named: Buffers = {};
      buffers.forEach((b, i) => (named[`b${i}`] = b));
      const out = await runSteps([{ launch, bind: buffers.map((_, i) => `b${i}`) }], named, only?.map((i) => `b${i}`));
      return buffers.map((_, i) => out[`b${i}`]!);
    },
    runSteps,
    pipelineCount: () => pipelines.size,
    destroy: () => device.destroy(),
  };
}

/** Output buffers start as NaN so an element a kernel forgot to write cannot pass as a zero. */
export function nanFilled(n: number): Float32Array {
  return new Float32Array(n).fill(Number.NaN);
}

/**
 * n values uniform in [-scale, scale) from a small seeded generator (mulberry32): fast-check picks
 * the seed, which keeps big inputs cheap to generate and every failure reproducible.
 */
export function seededFloats(n: number, seed: number, scale = 1): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = ((((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1) * scale;
  }
  return out;
}

/**
 * Indices for checking a huge output cheaply: every stride-th one, plus all of the last `tail`
 * (the workgroups past the 65535 boundary, where a wrong grid shows first).
 */
export function sampleIndices(n: number, stride = 4099, tail = 4096): number[] {
  const out: number[] = [];
  for (let i = 0; i < n - tail; i += stride) out.push(i);
  for (let i = Math.max(0, n - tail); i < n; i++) out.push(i);
  return out;
}

/** Largest |x|, at least tiny, for scaling error bounds. */
export function maxAbs(xs: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < xs.length; i++) m = Math.max(m, Math.abs(xs[i]!));
  return m;
}

/**
 * First index where |got - want| > tol(want, i) (NaN must meet NaN, infinities must be equal), or
 * -1; tests report it with both values so a failure says where and by how much.
 */
export function firstMismatch(got: ArrayLike<number>, want: ArrayLike<number>, tol: (want: number, i: number) => number): number {
  if (got.length !== want.length) return 0;
  for (let i = 0; i < want.length; i++) {
    const g = got[i]!;
    const w = want[i]!;
    if (Number.isNaN(w) || Number.isNaN(g)) {
      if (Number.isNaN(w) !== Number.isNaN(g)) return i;
      continue;
    }
    if (!Number.isFinite(w) || !Number.isFinite(g)) {
      if (g !== w) return i;
      continue;
    }
    if (!(Math.abs(g - w) <= tol(w, i))) return i;
  }
  return -1;
}

/** Throws a readable message when firstMismatch finds something. */
export function expectClose(what: string, got: ArrayLike<number>, want: ArrayLike<number>, tol: (want: number, i: number) => number): void {
  const i = firstMismatch(got, want, tol);
  if (i < 0) return;
  if (got.length !== want.length) throw new Error(`${what}: length ${got.length} != ${want.length}`);
  throw new Error(`${what}: element ${i} of ${want.length}: gpu ${got[i]} vs cpu ${want[i]} (|diff| ${Math.abs(got[i]! - want[i]!)}, tol ${tol(want[i]!, i)})`);
}
