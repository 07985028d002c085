/// <reference types="@webgpu/types" preserve="true" />
// The WebGPU runtime under the backend: a pipeline cache keyed by kernel source, batched command
// encoding (many dispatches per submit, their uniforms in one arena written once per submit),
// readbacks, counters, and error reporting that names the kernel.

import type { Launch } from '../../../shaders/kernel.js';
import { ErrorSink, formatCompileError, type OpenedDevice } from './device.js';
import { BufferPool } from './pool.js';
import { politely, politeWaitFor } from './politeWait.js';

export interface Counters {
  dispatches: number;
  submits: number;
  readbacks: number;
  /** Compute pipelines compiled so far (not reset). */
  pipelines: number;
}

interface CachedPipeline {
  /** Small integer naming this pipeline in bind-group cache keys. */
  id: number;
  pipeline: GPUComputePipeline;
  layout: GPUBindGroupLayout;
  /** Set once the compiler reported an error: every later use throws it at once. */
  error?: Error;
}

/** A bound storage buffer; whole-buffer bindings (pool buckets are at least 16 bytes). */
export interface Binding {
  buffer: GPUBuffer;
}

/** Work recorded before a submit is forced: keeps encoders short and the uniform arena small. */
export const MAX_DISPATCHES_PER_SUBMIT = 256;
const ARENA_BYTES = 128 * 1024;
/** Bind groups kept (a GANPO step uses about a thousand distinct ones); past this the cache restarts. */
const BIND_GROUP_CACHE_MAX = 16384;

export class GpuRuntime {
  readonly device: GPUDevice;
  readonly adapterInfo: string;
  readonly isSoftware: boolean;
  /** Optional device features some kernels use (requested by openDevice when the adapter has them). */
  readonly hasF16: boolean;
  readonly hasSubgroups: boolean;
  readonly pool: BufferPool;
  readonly errors: ErrorSink;
  readonly debug: boolean;
  /** Waits poll dawn.node on a 1 ms timer instead of spinning (politeWait.ts). */
  readonly politeWait: boolean;
  private pipelines = new Map<string, Map<string, CachedPipeline>>();
  /**
   * Bind groups by (pipeline, uniform size, storage buffers). The uniform binding has a dynamic
   * offset, so a bind group does not depend on where in the arena a dispatch's uniforms sit, and a
   * training step, whose buffers the pool hands out the same way every step, reuses its bind
   * groups instead of creating one per dispatch (dawn.node's createBindGroup was most of the host
   * cost of a dispatch; about halved with the cache). Keys name buffers by identity, so a group
   * never outlives its buffers' use: a destroyed buffer never comes back from the pool. The cache
   * is dropped when the pool destroys buffers (to let their groups go) and when it grows past a cap.
   */
  private bindGroups = new Map<string, GPUBindGroup>();
  private bufferIds = new WeakMap<GPUBuffer, number>();
  private nextBufferId = 0;
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private recorded = 0;
  private lastKernel = '(none)';
  private counts: Counters = { dispatches: 0, submits: 0, readbacks: 0, pipelines: 0 };
  // Uniforms of the pending dispatches: filled on the CPU, written with one writeBuffer per submit.
  // Queue order makes reusing the one GPU buffer safe: the write lands after earlier submits ran.
  private readonly arena = new Uint8Array(ARENA_BYTES);
  private arenaUsed = 0;
  private readonly arenaBuffer: GPUBuffer;
  private readonly uniformAlign: number;
  private destroyed = false;

  constructor(opened: OpenedDevice, debug: boolean) {
    this.device = opened.device;
    this.adapterInfo = opened.adapterInfo;
    this.isSoftware = opened.isSoftware;
    this.hasF16 = opened.hasF16;
    this.hasSubgroups = opened.hasSubgroups;
    this.debug = debug;
    this.politeWait = politeWaitFor(opened.isSoftware);
    this.errors = new ErrorSink(this.device, () => this.lastKernel);
    this.pool = new BufferPool(this.device, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST);
    this.arenaBuffer = this.device.createBuffer({ size: ARENA_BYTES, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
    this.uniformAlign = this.device.limits.minUniformBufferOffsetAlignment;
  }

  /** Throws an error Dawn reported since the last call (compile, validation, device lost). */
  check(): void {
    if (this.destroyed) throw new Error('WebGPU backend: the device was destroyed');
    try {
      this.errors.throwIfAny();
    } catch (e) {
      this.discardPending();
      throw e;
    }
  }

  /**
   * Drops the recorded, unsubmitted work after an error: it may contain the failing dispatch, and an
   * invalid command buffer would silently take the next readback down with it.
   */
  private discardPending(): void {
    this.endPass();
    this.encoder = null;
    this.arenaUsed = 0;
    this.recorded = 0;
    this.pool.afterSubmit();
  }

  counters(): Counters {
    return { ...this.counts };
  }

  resetCounters(): void {
    this.counts = { dispatches: 0, submits: 0, readbacks: 0, pipelines: this.counts.pipelines };
  }

  private pipelineFor(launch: Launch): CachedPipeline {
    const { kernel } = launch;
    // Keyed by the source, then the storage modes: builders reuse their source strings, whose hash
    // V8 caches, so a hit costs no string building or hashing of a multi-kilobyte key per dispatch.
    let byStorage = this.pipelines.get(kernel.code);
    if (!byStorage) {
      byStorage = new Map();
      this.pipelines.set(kernel.code, byStorage);
    }
    const storageKey = kernel.storage.length === 0 ? '' : kernel.storage.join(',');
    const hit = byStorage.get(storageKey);
    if (hit) return hit;
    const entries: GPUBindGroupLayoutEntry[] = [
      { binding: 0, visibility: GPUShaderStage.COMPUTE, buffer: { type: 'uniform', hasDynamicOffset: true } },
      ...kernel.storage.map((access, i): GPUBindGroupLayoutEntry => ({
        binding: i + 1,
        visibility: GPUShaderStage.COMPUTE,
        buffer: { type: access === 'read' ? 'read-only-storage' : 'storage' },
      })),
    ];
    const layout = this.device.createBindGroupLayout({ label: kernel.name, entries });
    const module = this.device.createShaderModule({ label: kernel.name, code: kernel.code });
    // The compiler's messages arrive asynchronously; they are the root cause of any later
    // "invalid pipeline" error, so they take precedence when reported.
    const pipeline = this.device.createComputePipeline({
      label: kernel.name,
      layout: this.device.createPipelineLayout({ bindGroupLayouts: [layout] }),
      compute: { module, entryPoint: 'main' },
    });
    const cached: CachedPipeline = { id: this.counts.pipelines, pipeline, layout };
    this.errors.track(module.getCompilationInfo().then((info) => {
      const msg = formatCompileError(kernel.name, kernel.code, info.messages);
      if (!msg) return;
      cached.error = new Error(msg);
      this.errors.brokenKernels.add(kernel.name);
      this.errors.add(cached.error, true);
    }));
    byStorage.set(storageKey, cached);
    this.counts.pipelines++;
    return cached;
  }

  private ensureEncoder(): GPUCommandEncoder {
    this.encoder ??= this.device.createCommandEncoder();
    return this.encoder;
  }

  private endPass(): void {
    this.pass?.end();
    this.pass = null;
  }

  private bufferId(b: GPUBuffer): number {
    let id = this.bufferIds.get(b);
    if (id === undefined) this.bufferIds.set(b, (id = this.nextBufferId++));
    return id;
  }

  private bindGroupFor(cached: CachedPipeline, uniformBytes: number, buffers: readonly GPUBuffer[]): GPUBindGroup {
    let key = `${cached.id}:${uniformBytes}`;
    for (const b of buffers) key += `,${this.bufferId(b)}`;
    let group = this.bindGroups.get(key);
    if (!group) {
      if (this.bindGroups.size >= BIND_GROUP_CACHE_MAX) this.bindGroups.clear();
      group = this.device.createBindGroup({
        layout: cached.layout,
        entries: [
          { binding: 0, resource: { buffer: this.arenaBuffer, offset: 0, size: uniformBytes } },
          ...buffers.map((buffer, i) => ({ binding: i + 1, resource: { buffer } })),
        ],
      });
      this.bindGroups.set(key, group);
    }
    return group;
  }

  /** Forgets every cached bind group (call before destroying buffers they may reference). */
  clearBindGroups(): void {
    this.bindGroups.clear();
  }

  /** Records one dispatch; buffers bind at 1.. in the order of launch.kernel.storage. */
  dispatch(launch: Launch, buffers: readonly GPUBuffer[]): void {
    this.check();
    const { kernel } = launch;
    if (buffers.length !== kernel.storage.length) {
      throw new Error(`kernel '${kernel.name}' takes ${kernel.storage.length} storage buffers, got ${buffers.length}`);
    }
    // A buffer bound writable and also bound again is a usage conflict WebGPU rejects at submit.
    buffers.forEach((b, i) => {
      if (kernel.storage[i] === 'read_write' && buffers.some((o, j) => j !== i && o === b)) {
        throw new Error(`kernel '${kernel.name}': storage binding ${i + 1} is written and also bound at another binding`);
      }
    });
    const uniformBytes = Math.max(16, launch.uniforms.byteLength);
    const size = Math.ceil(uniformBytes / this.uniformAlign) * this.uniformAlign;
    if (this.arenaUsed + size > ARENA_BYTES) this.flush();
    if (this.debug) this.device.pushErrorScope('validation');
    const cached = this.pipelineFor(launch);
    if (cached.error) {
      if (this.debug) void this.device.popErrorScope();
      throw cached.error;
    }
    const offset = this.arenaUsed;
    this.arena.set(new Uint8Array(launch.uniforms.buffer, launch.uniforms.byteOffset, launch.uniforms.byteLength), offset);
    this.arenaUsed += size;
    const bindGroup = this.bindGroupFor(cached, uniformBytes, buffers);
    // One compute pass holds consecutive dispatches; WebGPU orders their storage accesses.
    this.pass ??= this.ensureEncoder().beginComputePass();
    this.pass.setPipeline(cached.pipeline);
    this.pass.setBindGroup(0, bindGroup, [offset]);
    const [x, y, z] = launch.workgroups;
    this.pass.dispatchWorkgroups(x, y, z);
    this.lastKernel = kernel.name;
    this.counts.dispatches++;
    this.recorded++;
    if (this.debug) {
      this.flush();
      const name = kernel.name;
      this.errors.track(this.device.popErrorScope().then((e) => {
        if (e) throw new Error(`WebGPU validation error in kernel '${name}': ${e.message}`);
      }));
    } else if (this.recorded >= MAX_DISPATCHES_PER_SUBMIT) {
      this.flush();
    }
  }

  /** Zero-fills a buffer range (a transfer command, cheaper than a kernel). */
  clear(buffer: GPUBuffer, offset: number, size: number): void {
    this.check();
    if (size === 0) return;
    this.endPass();
    this.ensureEncoder().clearBuffer(buffer, offset, size);
    this.recorded++;
  }

  /** Submits the recorded work, then lets the pool reuse buffers freed while it was pending. */
  flush(): void {
    if (this.destroyed) return;
    this.endPass();
    if (this.encoder) {
      if (this.arenaUsed > 0) this.device.queue.writeBuffer(this.arenaBuffer, 0, this.arena, 0, this.arenaUsed);
      this.device.queue.submit([this.encoder.finish()]);
      this.counts.submits++;
    }
    this.encoder = null;
    this.arenaUsed = 0;
    this.recorded = 0;
    this.pool.afterSubmit();
  }

  /** Awaits a dawn.node promise, politely when so configured. */
  wait<T>(p: () => Promise<T>): Promise<T> {
    return this.politeWait ? politely(p) : p();
  }

  /** Copies `bytes` from the start of buffer back to the CPU, submitting pending work first. */
  async read(buffer: GPUBuffer, bytes: number): Promise<ArrayBuffer> {
    // Let pending compile reports land first: they explain any error already stored.
    await this.errors.settle();
    this.check();
    const size = Math.max(4, Math.ceil(bytes / 4) * 4);
    const staging = this.device.createBuffer({ size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    this.endPass();
    this.ensureEncoder().copyBufferToBuffer(buffer, 0, staging, 0, size);
    this.flush();
    this.counts.readbacks++;
    try {
      await this.wait(() => staging.mapAsync(GPUMapMode.READ));
      return staging.getMappedRange(0, size).slice(0, bytes);
    } catch (e) {
      await this.errors.settle();
      this.errors.throwIfAny();
      throw e;
    } finally {
      await this.errors.settle();
      staging.destroy();
      this.errors.throwIfAny();
    }
  }

  /** Waits for submitted work and any pending error reports, then throws the first error. */
  async sync(): Promise<void> {
    this.flush();
    await this.wait(() => this.device.queue.onSubmittedWorkDone());
    await this.errors.settle();
    this.check();
  }

  destroy(): void {
    if (this.destroyed) return;
    this.pass = null;
    this.encoder = null;
    this.bindGroups.clear();
    this.pool.releasePool();
    this.device.destroy();
    this.destroyed = true;
  }
}
