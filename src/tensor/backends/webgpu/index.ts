/// <reference types="@webgpu/types" preserve="true" />
// The WebGPU backend: the Backend contract on Dawn. Ops record dispatches into a pending command
// encoder (runtime.ts); nothing runs until a read, a flush, or a full batch.
//
// The heavy methods (matmul, indexing, fused rows, random, AdamW) run the builders of src/shaders;
// each builder documents its own storage order, which this file adapts to the contract.

import { checkMatmulEpilogue, checkPackedQKV, checkReduceScale, type AdamWParams, type AdamWUpdate, type AttentionGrads, type AttentionParams, type Backend, type BinaryOp, type DropoutActivation, type DropoutFusion, type MatmulActivation, type MatmulEpilogue, type MatmulParams, type MatmulSums, type MemoryStats, type PackedAttentionParams, type ReduceOp, type Storage, type UnaryOp } from '../../backend.js';
import { arrayFor, type DType, type TypedArray } from '../../dtype.js';
import { contiguousStrides, sizeOf } from '../../shape.js';
import { cpus } from 'node:os';
import { HARDWARE_MAX_GROUPS, type Launch } from '../../../shaders/kernel.js';
import { binaryLaunch, castLaunch, fillLaunch, type GpuDType, unaryLaunch, whereLaunch } from '../../../shaders/elementwise.js';
import { ATTENTION_MAX_D, attentionBackwardLaunches, attentionLaunch, attentionVariantFor, type AttentionVariant } from '../../../shaders/attention.js';
import { gatherLogProbsBackwardLaunch, gatherLogProbsLaunch } from '../../../shaders/crossentropy.js';
import { indexAddLaunch, indexSelectLaunch } from '../../../shaders/embedding.js';
import { layerNormBackwardLaunches, layerNormLaunch } from '../../../shaders/layernorm.js';
import { rowFormFor, type RowForm } from '../../../shaders/rows.js';
import { chooseMatmulVariant, MATMUL_MAX_BATCH_RANK, matmulCandidates, matmulLaunch, packF16Launch, supportsOperandType, type MatmulOperandType, type MatmulVariant } from '../../../shaders/matmul.js';
import { concatLaunch, CONCAT_MAX_SOURCES, copyLaunch } from '../../../shaders/movement.js';
import { adamwLaunch, adamwMultiLaunch, clipScaleLaunch } from '../../../shaders/optimizer.js';
import { dropoutActivationBackwardLaunch, dropoutApplyLaunch, dropoutMaskLaunch } from '../../../shaders/dropout.js';
import { randomLaunch } from '../../../shaders/random.js';
import { softmaxBackwardLaunch, softmaxLaunch } from '../../../shaders/softmax.js';
import { powerIterationLaunch, spectralNormalizeBackwardLaunch, spectralNormalizeLaunch } from '../../../shaders/spectral.js';
import { reduceGenericLaunch, reduceRowsLaunch, sumSquaresLaunch, sumSquaresPartials, sumSquaresTreeLaunch, type SumSquaresForm } from '../../../shaders/reduce.js';
import { collapseDims } from '../../../shaders/strided.js';
import { openDevice, type DeviceOptions } from './device.js';
import { MatmulTuner, tuningEnabled } from './matmulTuner.js';
import { GpuRuntime, type Counters } from './runtime.js';

export type { Counters } from './runtime.js';

/**
 * Precision of f32 matmuls, after torch.set_float32_matmul_precision: 'highest' (default) and
 * 'high' use f32 operands (WebGPU has no TF32); 'medium' rounds both operands to f16 (a packing
 * pass each) and multiplies them with f32 accumulation and an f32 result: about 3 decimal digits
 * per operand. 'medium' needs the `shader-f16` feature.
 */
export type MatmulPrecision = 'highest' | 'high' | 'medium';

export interface WebGPUBackendOptions extends DeviceOptions {
  /** Default 'highest', or the GANPO_MATMUL_PRECISION environment variable. See MatmulPrecision. */
  matmulPrecision?: MatmulPrecision;
  /**
   * Matmul autotuning (matmulTuner.ts): 'off' (default: the static, deterministic rule) or 'on';
   * when not given, GANPO_MATMUL_TUNE=1 turns it on.
   */
  matmulTuning?: 'on' | 'off';
  /** JSON file caching tuned choices per adapter; default GANPO_MATMUL_TUNE_CACHE (none when unset). */
  matmulTuneCache?: string;
}

const PRECISIONS: readonly MatmulPrecision[] = ['highest', 'high', 'medium'];

export class GpuStorage implements Storage {
  constructor(
    readonly backend: WebGPUBackend,
    readonly dtype: DType,
    readonly size: number,
    public buffer: GPUBuffer | null,
  ) {}
}

/**
 * Grid-stride workgroups per CPU core on a software adapter: lavapipe pays a few microseconds per
 * workgroup, and 8 per core measured fastest for a 393k-element copy on 2 cores (16: 0.6 ms, 64: 1.1,
 * one per 256 elements: 4 ms).
 */
const SOFTWARE_GROUPS_PER_CORE = 8;

/** Row length at or above which a last-axes reduction uses a workgroup per row. */
const ROW_REDUCE_MIN_COLS = 128;

/** Parameters per multi-tensor AdamW dispatch at most (each binds four storage buffers). */
const ADAMW_MAX_SLOTS = 8;
/** Tensors per sumSquares / clipByNorm dispatch at most (one storage buffer each, plus one). */
const MULTI_MAX_SLOTS = 15;
/** Workgroups per tensor of sumSquares: a few per core on a software adapter, more on hardware. */
const SOFTWARE_SUMSQ_GROUPS_PER_CORE = 2;
const HARDWARE_SUMSQ_GROUPS = 32;

export class WebGPUBackend implements Backend {
  readonly name = 'webgpu';
  readonly dtypes = ['f32', 'i32'] as const;

  /** Workgroup cap of the grid-stride (elementwise, copy) kernels. */
  private readonly groups: number;


  private operandType: MatmulOperandType = 'f32';
  private tuner: MatmulTuner | null = null;
  private readonly tuneCache: string | undefined;
  private tuning: Promise<void> | null = null;

  /** Storage buffers one dispatch may bind (the device's limit; WebGPU guarantees 8). */
  private readonly maxStorage: number;

  /**
   * The fused attention kernels' shape (invocations per workgroup × rows each): chosen for the
   * adapter (src/shaders/attention.ts); settable, so tests can run the other adapter kind's form.
   */
  attentionVariant: AttentionVariant;

  private constructor(private readonly rt: GpuRuntime, opts: WebGPUBackendOptions) {
    this.groups = rt.isSoftware ? SOFTWARE_GROUPS_PER_CORE * Math.max(1, cpus().length) : HARDWARE_MAX_GROUPS;
    this.maxStorage = rt.device.limits.maxStorageBuffersPerShaderStage;
    this.attentionVariant = attentionVariantFor(rt.isSoftware);
    this.tuneCache = opts.matmulTuneCache ?? (process.env.GANPO_MATMUL_TUNE_CACHE || undefined);
    const precision = opts.matmulPrecision ?? (process.env.GANPO_MATMUL_PRECISION as MatmulPrecision | undefined);
    if (precision !== undefined) this.setMatmulPrecision(precision);
    this.setMatmulTuning(tuningEnabled(opts.matmulTuning));
  }

  /**
   * Opens the device. The Dawn instance keeps the process alive: call destroy() when done (tests do
   * in afterAll); the CLI and benchmarks call process.exit.
   */
  static async create(opts: WebGPUBackendOptions = {}): Promise<WebGPUBackend> {
    const debug = opts.debug ?? process.env.GANPO_WEBGPU_DEBUG === '1';
    return new WebGPUBackend(new GpuRuntime(await openDevice(opts), debug), opts);
  }

  /** Sets the f32 matmul precision (see MatmulPrecision); 'medium' throws without `shader-f16`. */
  setMatmulPrecision(precision: MatmulPrecision): void {
    if (!PRECISIONS.includes(precision)) throw new Error(`matmul precision must be one of ${PRECISIONS.join(', ')}, got '${precision}'`);
    if (precision === 'medium' && !this.rt.hasF16) {
      throw new Error(`matmul precision 'medium' (f16 operands) needs the WebGPU 'shader-f16' feature, which this adapter (${this.rt.adapterInfo}) lacks`);
    }
    this.operandType = precision === 'medium' ? 'f16' : 'f32';
  }

  get matmulPrecision(): MatmulPrecision {
    return this.operandType === 'f16' ? 'medium' : 'highest';
  }

  /** Turns matmul autotuning on or off (choices made so far are kept while on). See matmulTuner.ts. */
  setMatmulTuning(on: boolean): void {
    if (!on) {
      this.tuner = null;
      return;
    }
    this.tuner ??= new MatmulTuner(this.rt.adapterInfo, {
      candidates: (type) => matmulCandidates(this.rt.isSoftware, this.featureSet(), this.device.limits.maxComputeWorkgroupStorageSize).filter((v) => supportsOperandType(v, type)),
      cachePath: this.tuneCache,
    });
  }

  /** The tuner while tuning is on (its choices and timings), else null. */
  get matmulTuner(): MatmulTuner | null {
    return this.tuner;
  }

  private featureSet(): Set<string> {
    const f = new Set<string>();
    if (this.rt.hasF16) f.add('shader-f16');
    if (this.rt.hasSubgroups) f.add('subgroups');
    return f;
  }

  /** The static rule for this device. */
  private staticVariant(p: MatmulParams, type: MatmulOperandType): MatmulVariant {
    const v = chooseMatmulVariant(p, this.rt.isSoftware, this.rt.hasSubgroups);
    return supportsOperandType(v, type) ? v : 'register4x4';
  }

  /**
   * Tunes the queued matmul keys now, plus p's when given (tuning must be on). Waits for the
   * submitted work first, so the device is idle while timing.
   */
  async tuneMatmul(p?: MatmulParams): Promise<void> {
    const tuner = this.tuner;
    if (!tuner) throw new Error('matmul tuning is off: enable it with setMatmulTuning(true), the matmulTuning option or GANPO_MATMUL_TUNE=1');
    if (p) tuner.request(this.mergeBatch(p), this.operandType);
    await this.runTuning();
  }

  private async runTuning(): Promise<void> {
    const tuner = this.tuner;
    if (!tuner || tuner.pending.length === 0) return;
    if (this.tuning) return this.tuning;
    this.tuning = (async () => {
      try {
        await this.rt.sync();
        await tuner.tunePending((vs, q, type) => this.timeMatmul(vs, q, type), (q, type) => this.staticVariant(q, type));
      } finally {
        this.tuning = null;
      }
    })();
    return this.tuning;
  }

  /** Best-of-3 interleaved wall-clock milliseconds per dispatch of each variant on scratch operands shaped like p. */
  private async timeMatmul(variants: readonly MatmulVariant[], p: MatmulParams, type: MatmulOperandType): Promise<Map<MatmulVariant, number>> {
    const batch = sizeOf(p.batchShape);
    const aSize = (p.aBatchStrides.some((s) => s !== 0) ? batch : 1) * p.m * p.k;
    const bSize = (p.bBatchStrides.some((s) => s !== 0) ? batch : 1) * p.k * p.n;
    const words = (n: number) => (type === 'f16' ? Math.ceil(n / 2) : n);
    const a = this.alloc('f32', Math.max(1, words(aSize)));
    const b = this.alloc('f32', Math.max(1, words(bSize)));
    const out = this.alloc('f32', Math.max(1, batch * p.m * p.n));
    this.fill(a, 0);
    this.fill(b, 0);
    const flops = 2 * batch * p.m * p.n * p.k;
    const reps = Math.max(1, Math.min(20, Math.ceil(2e7 / Math.max(1, flops))));
    const best = new Map<MatmulVariant, number>();
    const live: MatmulVariant[] = [];
    try {
      // Compile and warm up each candidate; one that fails (compile or validation) is left out.
      for (const v of variants) {
        try {
          this.run(matmulLaunch(p, v, type), [a, b, out], 1);
          await this.rt.sync();
          live.push(v);
          best.set(v, Infinity);
        } catch {
          best.set(v, Infinity);
        }
      }
      for (let round = 0; round < 3; round++) {
        for (const v of live) {
          const t0 = performance.now();
          for (let r = 0; r < reps; r++) this.run(matmulLaunch(p, v, type), [a, b, out], 1);
          this.rt.flush();
          await this.rt.wait(() => this.rt.device.queue.onSubmittedWorkDone());
          best.set(v, Math.min(best.get(v)!, (performance.now() - t0) / reps));
        }
      }
    } finally {
      this.free(a);
      this.free(b);
      this.free(out);
    }
    return best;
  }

  describe(): string {
    return this.rt.adapterInfo;
  }

  /** Waits on the device sleep between polls instead of spinning (politeWait.ts; GANPO_POLITE_WAIT). */
  get politeWait(): boolean {
    return this.rt.politeWait;
  }

  /** The adapter is a CPU driver (lavapipe, SwiftShader): kernel variants are chosen for it. */
  get isSoftwareAdapter(): boolean {
    return this.rt.isSoftware;
  }

  get device(): GPUDevice {
    return this.rt.device;
  }

  get debug(): boolean {
    return this.rt.debug;
  }

  counters(): Counters {
    return this.rt.counters();
  }

  resetCounters(): void {
    this.rt.resetCounters();
  }

  /** Destroys the pooled buffers (live ones stay). */
  releasePool(): void {
    this.rt.flush();
    // Cached bind groups of the buffers about to be destroyed can never be used again: drop them.
    this.rt.clearBindGroups();
    this.rt.pool.releasePool();
  }

  /** Waits until the submitted work has run; throws any error Dawn reported. */
  async sync(): Promise<void> {
    await this.rt.sync();
    if (this.tuner && this.tuner.pending.length > 0) await this.runTuning();
  }

  destroy(): void {
    this.rt.destroy();
  }

  // ---- memory ----

  private gpu(dtype: DType): GpuDType {
    if (dtype !== 'f32' && dtype !== 'i32') throw new Error(`the webgpu backend does not support dtype ${dtype} (it has f32, i32)`);
    return dtype;
  }

  private buf(s: Storage): GPUBuffer {
    const g = s as GpuStorage;
    if (g.backend !== this) throw new Error(`webgpu: storage belongs to the ${s.backend.name} backend`);
    if (!g.buffer) throw new Error('webgpu: storage used after free');
    return g.buffer;
  }

  alloc(dtype: DType, size: number): Storage {
    this.gpu(dtype);
    return new GpuStorage(this, dtype, size, this.rt.pool.acquire(size * 4));
  }

  upload(dtype: DType, data: ArrayLike<number>): Storage {
    const s = this.alloc(dtype, data.length);
    if (data.length > 0) {
      const arr = arrayFor(dtype, data.length);
      arr.set(data);
      this.rt.device.queue.writeBuffer(this.buf(s), 0, arr);
    }
    return s;
  }

  async read(s: Storage): Promise<TypedArray> {
    if (s.size === 0) return arrayFor(s.dtype, 0);
    const bytes = await this.rt.read(this.buf(s), s.size * 4);
    // The device is idle after a readback: the time to tune matmul shapes seen since the last one.
    if (this.tuner && this.tuner.pending.length > 0) await this.runTuning();
    return s.dtype === 'i32' ? new Int32Array(bytes) : new Float32Array(bytes);
  }

  free(s: Storage): void {
    const g = s as GpuStorage;
    if (!g.buffer) return;
    this.rt.pool.release(g.buffer);
    g.buffer = null;
  }

  memory(): MemoryStats {
    return this.rt.pool.stats();
  }

  flush(): void {
    this.rt.flush();
  }

  /** Runs a user kernel: storage bindings are inputs then outputs, in the order of launch.kernel.storage. */
  runKernel(launch: Launch, inputs: readonly Storage[], outputs: readonly Storage[]): void {
    this.rt.dispatch(launch, [...inputs, ...outputs].map((s) => this.buf(s)));
  }

  private run(launch: Launch | readonly Launch[], buffers: readonly Storage[], work: number): void {
    if (work === 0) return;
    const bufs = buffers.map((s) => this.buf(s));
    for (const l of Array.isArray(launch) ? launch : [launch as Launch]) this.rt.dispatch(l, bufs);
  }

  // ---- movement ----

  fill(out: Storage, value: number): void {
    if (out.size === 0) return;
    if (value === 0 && !Object.is(value, -0)) {
      this.rt.clear(this.buf(out), 0, out.size * 4);
      return;
    }
    const bits = out.dtype === 'i32' ? new Uint32Array(new Int32Array([value]).buffer)[0] : new Uint32Array(new Float32Array([value]).buffer)[0];
    this.run(fillLaunch(out.size, bits, this.groups), [out], out.size);
  }

  copy(src: Storage, dst: Storage, shape: readonly number[], srcStrides: readonly number[], srcOffset: number,
    dstStrides: readonly number[], dstOffset: number): void {
    const c = collapseDims(shape, [srcStrides, dstStrides]);
    this.run(copyLaunch(c.shape, c.strides[0], srcOffset, c.strides[1], dstOffset, this.groups), [src, dst], sizeOf(shape));
  }

  /** One dispatch per CONCAT_MAX_SOURCES non-empty sources (fewer where the adapter binds fewer buffers). */
  concatInto(srcs: readonly Storage[], dst: Storage, outer: number, widths: readonly number[], shared?: readonly boolean[]): void {
    const row = widths.reduce((a, w) => a + w, 0);
    const per = Math.max(1, Math.min(CONCAT_MAX_SOURCES, this.maxStorage - 1));
    let col = 0;
    let group: { src: Storage; width: number; shared: boolean }[] = [];
    let groupBase = 0;
    const emit = () => {
      if (group.length === 0) return;
      const widthsOf = group.map((g) => g.width);
      this.run(concatLaunch(outer, widthsOf, row, groupBase, this.groups, group.map((g) => g.shared)), [...group.map((g) => g.src), dst], outer * widthsOf.reduce((a, w) => a + w, 0));
      group = [];
    };
    srcs.forEach((src, s) => {
      if (widths[s] > 0) {
        if (group.length === 0) groupBase = col;
        group.push({ src, width: widths[s], shared: shared?.[s] ?? false });
        if (group.length === per) emit();
      }
      col += widths[s];
    });
    emit();
  }

  cast(x: Storage, to: DType): Storage {
    const from = this.gpu(x.dtype);
    const out = this.alloc(to, x.size);
    if (from === to) this.run(copyLaunch([x.size], [1], 0, [1], 0, this.groups), [x, out], x.size);
    else this.run(castLaunch(from, this.gpu(to), x.size, this.groups), [x, out], x.size);
    return out;
  }

  // ---- elementwise ----

  unary(op: UnaryOp, x: Storage, params: readonly [number, number?] = [0, 0]): Storage {
    const out = this.alloc(x.dtype, x.size);
    this.run(unaryLaunch(op, this.gpu(x.dtype), x.size, params[0], params[1] ?? 0, this.groups), [x, out], x.size);
    return out;
  }

  binary(op: BinaryOp, a: Storage, b: Storage, outShape: readonly number[], aStrides: readonly number[], bStrides: readonly number[]): Storage {
    const n = sizeOf(outShape);
    const out = this.alloc(a.dtype, n);
    const c = collapseDims(outShape, [aStrides, bStrides, contiguousStrides(outShape)]);
    this.run(binaryLaunch(op, this.gpu(a.dtype), c.shape, c.strides[0], c.strides[1], this.groups), [a, b, out], n);
    return out;
  }

  where(cond: Storage, a: Storage, b: Storage, outShape: readonly number[], condStrides: readonly number[],
    aStrides: readonly number[], bStrides: readonly number[]): Storage {
    const n = sizeOf(outShape);
    const out = this.alloc(a.dtype, n);
    const c = collapseDims(outShape, [condStrides, aStrides, bStrides, contiguousStrides(outShape)]);
    this.run(whereLaunch(this.gpu(cond.dtype), c.shape, c.strides[0], c.strides[1], c.strides[2], this.groups), [cond, a, b, out], n);
    return out;
  }

  reduce(op: ReduceOp, x: Storage, shape: readonly number[], axes: readonly number[], scale?: number): Storage {
    checkReduceScale('webgpu', op, x.dtype, scale);
    const dtype = this.gpu(x.dtype);
    const strides = contiguousStrides(shape);
    const pick = (reduced: boolean): { shape: number[]; strides: number[] } => {
      const idx = shape.map((_, i) => i).filter((i) => axes.includes(i) === reduced);
      const c = collapseDims(idx.map((i) => shape[i]), [idx.map((i) => strides[i])]);
      return { shape: c.shape, strides: c.strides[0] };
    };
    const kept = pick(false);
    const red = pick(true);
    const nOut = sizeOf(kept.shape);
    const nRed = sizeOf(red.shape);
    const out = this.alloc(x.dtype, nOut);
    // Reducing the trailing axes of a contiguous tensor: x is [nOut, nRed] row-major.
    const trailing = red.shape.length === 1 && red.strides[0] === 1 && (kept.shape.length === 0 || (kept.shape.length === 1 && kept.strides[0] === nRed));
    const launch = trailing && nRed >= ROW_REDUCE_MIN_COLS ? reduceRowsLaunch(op, dtype, nOut, nRed, scale) : reduceGenericLaunch(op, dtype, kept, red, scale);
    this.run(launch, [x, out], nOut);
    return out;
  }

  // ---- heavy kernels (src/shaders builders) ----

  /**
   * Merging batch dims that are contiguous in both operands keeps most shapes within the shader's
   * four batch dims (and saves divisions per workgroup).
   */
  private mergeBatch(p: MatmulParams): MatmulParams {
    const batch = collapseDims(p.batchShape, [p.aBatchStrides, p.bBatchStrides]);
    if (batch.shape.length > MATMUL_MAX_BATCH_RANK) {
      throw new RangeError(`webgpu matmul: batch shape [${p.batchShape.join(', ')}] has ${batch.shape.length} dims after merging; at most ${MATMUL_MAX_BATCH_RANK} are supported`);
    }
    return { ...p, batchShape: batch.shape, aBatchStrides: batch.strides[0], bBatchStrides: batch.strides[1] };
  }

  matmul(a: Storage, b: Storage, p: MatmulParams, bias?: Storage | null): Storage {
    return this.runMatmul(a, b, p, bias ?? null, null).out;
  }

  matmulEpilogue(a: Storage, b: Storage, p: MatmulParams, e: MatmulEpilogue): { out: Storage; pre: Storage | null } {
    checkMatmulEpilogue('webgpu', e, p, a.dtype);
    const { out, pre } = this.runMatmul(a, b, p, e.bias ?? null, null, { activation: e.activation ?? null, keepPre: !!e.keepPre, residual: e.residual ?? null });
    return { out, pre };
  }

  matmulWithSums(a: Storage, b: Storage, p: MatmulParams, sums: MatmulSums, bias?: Storage | null): { out: Storage; sums: Storage } {
    const r = this.runMatmul(a, b, p, bias ?? null, sums);
    return { out: r.out, sums: r.sums! };
  }

  /**
   * The product, plus the operand sums when asked. Every matmul variant has the sums epilogue, so
   * they come from the matmul kernel itself, except with f16 operands (the kernel has no f16 form:
   * it would add the f16-rounded values; the sums stay those of the f32 operand, as the unfused
   * reduce gave) and for an empty product (no kernel runs), where one strided reduce of the operand
   * computes them. The store epilogue (activation or residual) runs in every variant and operand
   * type; its bindings follow the bias.
   */
  private runMatmul(a: Storage, b: Storage, p: MatmulParams, bias: Storage | null, sums: MatmulSums | null,
    store: { activation: MatmulActivation | null; keepPre: boolean; residual: Storage | null } = { activation: null, keepPre: false, residual: null }):
    { out: Storage; sums: Storage | null; pre: Storage | null } {
    const batch = sizeOf(p.batchShape);
    const out = this.alloc(a.dtype, batch * p.m * p.n);
    const sumsOut = sums ? this.alloc(a.dtype, batch * (sums === 'colsOfB' ? p.n : p.m)) : null;
    const pre = store.keepPre ? this.alloc(a.dtype, out.size) : null;
    const type: MatmulOperandType = a.dtype === 'f32' ? this.operandType : 'f32';
    const fused = sums !== null && out.size > 0 && type === 'f32';
    if (sums && !fused) this.operandSums(sums === 'colsOfB' ? b : a, p, sums, sumsOut!);
    if (out.size === 0) return { out, sums: sumsOut, pre };
    const q = this.mergeBatch(p);
    let variant = this.tuner?.choice(q, type);
    if (variant === undefined) {
      this.tuner?.request(q, type);
      variant = this.staticVariant(q, type);
    }
    const epilogue = [...(bias ? [bias] : []), ...(store.residual ? [store.residual] : []), ...(pre ? [pre] : []), ...(fused ? [sumsOut!] : [])];
    const flags = { activation: store.activation, keepPre: store.keepPre, residual: store.residual !== null };
    if (type === 'f16') {
      // Round both operands to f16 (packed pairs), multiply with f32 accumulation.
      const a16 = this.packF16(a);
      const b16 = this.packF16(b);
      this.run(matmulLaunch(q, variant, 'f16', !!bias, null, flags), [a16, b16, out, ...epilogue], out.size);
      this.free(a16);
      this.free(b16);
    } else {
      this.run(matmulLaunch(q, variant, 'f32', !!bias, fused ? sums : null, flags), [a, b, out, ...epilogue], out.size);
    }
    return { out, sums: sumsOut, pre };
  }

  /**
   * out = the sums of matmulWithSums by one strided reduce of the operand x (b for 'colsOfB', a
   * for 'rowsOfA'): kept dims the batch and the summed operand's n (m), reduced dim k.
   */
  private operandSums(x: Storage, p: MatmulParams, sums: MatmulSums, out: Storage): void {
    const cols = sums === 'colsOfB';
    const len = cols ? p.n : p.m;
    // Stored [len, k] (b transposed, a not) or [k, len].
    const lenMajor = cols ? p.transB : !p.transA;
    const kept = collapseDims([...p.batchShape, len], [[...(cols ? p.bBatchStrides : p.aBatchStrides), lenMajor ? p.k : 1]]);
    const red = { shape: [p.k], strides: [lenMajor ? 1 : len] };
    this.run(reduceGenericLaunch('sum', this.gpu(x.dtype), { shape: kept.shape, strides: kept.strides[0] }, red), [x, out], out.size);
  }

  /** x's f32 values as packed f16 pairs (a temporary of ceil(size / 2) words). */
  private packF16(x: Storage): Storage {
    const out = this.alloc('f32', Math.max(1, Math.ceil(x.size / 2)));
    if (x.size > 0) this.run(packF16Launch(x.size, this.groups), [x, out], x.size);
    return out;
  }

  indexSelect(x: Storage, idx: Storage, outer: number, dim: number, inner: number): Storage {
    const out = this.alloc(x.dtype, outer * idx.size * inner);
    this.run(indexSelectLaunch(outer, dim, inner, idx.size), [x, idx, out], out.size);
    return out;
  }

  indexAdd(src: Storage, idx: Storage, outer: number, dim: number, inner: number): Storage {
    const out = this.alloc(src.dtype, outer * dim * inner);
    this.run(indexAddLaunch(outer, dim, inner, idx.size), [src, idx, out], out.size);
    return out;
  }

  /** How the row kernels (softmax, layerNorm, gatherLogProbs) map rows onto invocations. */
  private rowForm(rows: number): RowForm {
    return rowFormFor(this.rt.isSoftware, rows);
  }

  softmax(x: Storage, rows: number, cols: number, log: boolean): Storage {
    const out = this.alloc(x.dtype, rows * cols);
    this.run(softmaxLaunch(rows, cols, log, this.rowForm(rows)), [x, out], rows * cols);
    return out;
  }

  softmaxBackward(y: Storage, dy: Storage, rows: number, cols: number, log: boolean): Storage {
    const dx = this.alloc(y.dtype, rows * cols);
    this.run(softmaxBackwardLaunch(rows, cols, log, this.rowForm(rows)), [y, dy, dx], rows * cols);
    return dx;
  }

  layerNorm(x: Storage, gamma: Storage, beta: Storage, rows: number, cols: number, eps: number, groups = 1) {
    const y = this.alloc(x.dtype, rows * cols);
    const mean = this.alloc(x.dtype, rows);
    const rstd = this.alloc(x.dtype, rows);
    this.run(layerNormLaunch(rows, cols, eps, this.rowForm(rows), groups), [x, gamma, beta, y, mean, rstd], rows * cols);
    return { y, mean, rstd };
  }

  layerNormBackward(dy: Storage, x: Storage, gamma: Storage, mean: Storage, rstd: Storage, rows: number, cols: number, groups = 1, paramGrads = true, dxAdd: Storage | null = null) {
    if (dxAdd && (dxAdd.size !== rows * cols || dxAdd.dtype !== x.dtype)) {
      throw new Error(`webgpu layerNormBackward: dxAdd has ${dxAdd.size} ${dxAdd.dtype} elements, expected ${rows * cols} ${x.dtype}`);
    }
    const dx = this.alloc(x.dtype, rows * cols);
    const dgamma = paramGrads ? this.alloc(x.dtype, groups * cols) : null;
    const dbeta = paramGrads ? this.alloc(x.dtype, groups * cols) : null;
    if (rows === 0) {
      // Nothing to sum: the parameter gradients are zeros (and there is no dx to compute).
      if (dgamma && dbeta) {
        this.fill(dgamma, 0);
        this.fill(dbeta, 0);
      }
      return { dx, dgamma, dbeta };
    }
    const l = layerNormBackwardLaunches(rows, cols, this.rowForm(rows), groups, !!dxAdd);
    this.run(l.dx, dxAdd ? [dy, x, gamma, mean, rstd, dxAdd, dx] : [dy, x, gamma, mean, rstd, dx], rows * cols);
    if (dgamma && dbeta) this.run(l.params, [dy, x, mean, rstd, dgamma, dbeta], rows * cols);
    return { dx, dgamma, dbeta };
  }

  gatherLogProbs(logits: Storage, targets: Storage, rows: number, cols: number) {
    const logp = this.alloc(logits.dtype, rows);
    const lse = this.alloc(logits.dtype, rows);
    this.run(gatherLogProbsLaunch(rows, cols, this.rowForm(rows)), [logits, targets, logp, lse], rows);
    return { logp, lse };
  }

  gatherLogProbsBackward(dlogp: Storage, logits: Storage, lse: Storage, targets: Storage, rows: number, cols: number): Storage {
    const out = this.alloc(logits.dtype, rows * cols);
    this.run(gatherLogProbsBackwardLaunch(rows, cols, this.groups), [dlogp, logits, lse, targets, out], rows * cols);
    return out;
  }

  attention(q: Storage, k: Storage, v: Storage, keyMask: Storage | null, p: AttentionParams) {
    checkPackedQKV('webgpu attention', q, k, v, p);
    if (q.dtype !== 'f32' || p.d > ATTENTION_MAX_D || p.d === 0) return undefined;
    const out = this.alloc('f32', p.batch * p.heads * p.tq * p.d);
    const lse = this.alloc('f32', p.batch * p.heads * p.tq);
    this.run(attentionLaunch(p, keyMask !== null, this.attentionVariant), [q, k, v, keyMask ?? q, out, lse], lse.size);
    return { out, lse };
  }

  attentionBackward(q: Storage, k: Storage, v: Storage, keyMask: Storage | null, out: Storage, lse: Storage, dout: Storage, p: PackedAttentionParams): { dqkv: Storage };
  attentionBackward(q: Storage, k: Storage, v: Storage, keyMask: Storage | null, out: Storage, lse: Storage, dout: Storage, p: AttentionParams & { packedQKV?: false }): AttentionGrads;
  attentionBackward(q: Storage, k: Storage, v: Storage, keyMask: Storage | null, out: Storage, lse: Storage, dout: Storage, p: AttentionParams): AttentionGrads | { dqkv: Storage } {
    checkPackedQKV('webgpu attentionBackward', q, k, v, p);
    const stats = this.alloc('f32', 2 * lse.size);
    const l = attentionBackwardLaunches(p, keyMask !== null, this.attentionVariant);
    const mask = keyMask ?? q;
    this.run(l.stats, [out, dout, lse, stats], lse.size);
    if (p.packedQKV) {
      // One gradient laid out like q|k|v: dq writes part 0, dk/dv parts 1 and 2, every element.
      const dqkv = this.alloc('f32', 3 * p.batch * p.heads * p.tq * p.d);
      this.run(l.dq, [q, k, v, mask, stats, dout, dqkv], lse.size);
      this.run(l.dkv, [q, k, v, mask, stats, dout, dqkv], lse.size);
      this.free(stats);
      return { dqkv };
    }
    const dq = this.alloc('f32', p.batch * p.heads * p.tq * p.d);
    const dk = this.alloc('f32', p.batch * p.heads * p.tk * p.d);
    const dv = this.alloc('f32', p.batch * p.heads * p.tk * p.d);
    this.run(l.dq, [q, k, v, mask, stats, dout, dq], lse.size);
    this.run(l.dkv, [q, k, v, mask, stats, dout, dk, dv], k.size);
    this.free(stats);
    return { dq, dk, dv };
  }

  random(kind: 'uniform' | 'normal', dtype: DType, size: number, key: readonly [number, number], offset: number): Storage {
    if (dtype !== 'f32') throw new Error(`webgpu random: dtype ${dtype} is not supported (f32 only)`);
    const out = this.alloc(dtype, size);
    this.run(randomLaunch(kind, size, [key[0], key[1]], offset), [out], size);
    return out;
  }

  dropoutMask(dtype: DType, size: number, key: readonly [number, number], offset: number | readonly number[], p: number): Storage {
    if (dtype !== 'f32') throw new Error(`webgpu dropoutMask: dtype ${dtype} is not supported (f32 only)`);
    const out = this.alloc(dtype, size);
    this.run(dropoutMaskLaunch(size, [key[0], key[1]], offset, Math.fround(1 - p), Math.fround(1 / (1 - p)), this.groups), [out], size);
    return out;
  }

  dropoutApply(x: Storage, key: readonly [number, number], offset: number | readonly number[], p: number, fuse: DropoutFusion = {}) {
    if (x.dtype !== 'f32') throw new Error(`webgpu dropoutApply: dtype ${x.dtype} is not supported (f32 only)`);
    const r = fuse.residual;
    if (r && (r.dtype !== x.dtype || r.size !== x.size)) throw new Error(`webgpu dropoutApply: residual ${r.dtype}[${r.size}] does not match x ${x.dtype}[${x.size}]`);
    const y = this.alloc(x.dtype, x.size);
    const mask = this.alloc(x.dtype, x.size);
    const launch = dropoutApplyLaunch(x.size, [key[0], key[1]], offset, Math.fround(1 - p), Math.fround(1 / (1 - p)), this.groups, { activation: fuse.activation, residual: r !== undefined });
    this.run(launch, r ? [x, r, y, mask] : [x, y, mask], x.size);
    return { y, mask };
  }

  dropoutActivationBackward(g: Storage, x: Storage, mask: Storage, activation: DropoutActivation): Storage {
    if (x.dtype !== 'f32') throw new Error(`webgpu dropoutActivationBackward: dtype ${x.dtype} is not supported (f32 only)`);
    const out = this.alloc(x.dtype, x.size);
    this.run(dropoutActivationBackwardLaunch(activation, x.size, this.groups), [x, g, mask, out], x.size);
    return out;
  }

  powerIteration(w: Storage, u: Storage, v: Storage, rows: number, cols: number, eps: number, batch = 1): void {
    if (w.dtype !== 'f32') throw new Error(`webgpu powerIteration: dtype ${w.dtype} is not supported (f32 only)`);
    this.run(powerIterationLaunch(rows, cols, eps, batch), [w, u, v], batch * rows * cols);
  }

  spectralNormalize(w: Storage, u: Storage, v: Storage, rows: number, cols: number, eps: number, batch: number, iterate: boolean) {
    if (w.dtype !== 'f32') throw new Error(`webgpu spectralNormalize: dtype ${w.dtype} is not supported (f32 only)`);
    const wn = this.alloc('f32', batch * rows * cols);
    const sigma = this.alloc('f32', batch);
    const uv = this.alloc('f32', batch * (rows + cols));
    this.run(spectralNormalizeLaunch(rows, cols, eps, batch, iterate), [w, u, v, wn, sigma, uv], batch * rows * cols);
    return { wn, sigma, uv };
  }

  spectralNormalizeBackward(g: Storage, w: Storage, uv: Storage, sigma: Storage, rows: number, cols: number, batch: number): Storage {
    const dw = this.alloc('f32', batch * rows * cols);
    this.run(spectralNormalizeBackwardLaunch(rows, cols, batch), [g, w, uv, sigma, dw], batch * rows * cols);
    return dw;
  }

  adamw(param: Storage, grad: Storage, m: Storage, v: Storage, p: AdamWParams): void {
    this.run(adamwLaunch(param.size, p), [param, grad, m, v], param.size);
  }

  // ---- multi-tensor kernels: many tensors per dispatch, up to the storage-binding limit ----

  adamwMany(updates: readonly AdamWUpdate[], gate?: Storage | null): void {
    const live = updates.filter((u) => u.param.size > 0);
    // A gate takes one storage binding of its own.
    const slots = Math.max(1, Math.min(ADAMW_MAX_SLOTS, Math.floor((this.maxStorage - (gate ? 1 : 0)) / 4)));
    for (let i = 0; i < live.length; i += slots) {
      const chunk = live.slice(i, i + slots);
      const launch = adamwMultiLaunch(chunk.map((u) => ({ size: u.param.size, p: u.p })), this.groups, !!gate);
      const bufs = chunk.flatMap((u) => [u.param, u.grad, u.m, u.v]);
      this.run(launch, gate ? [...bufs, gate] : bufs, 1);
    }
  }

  sumSquares(xs: readonly Storage[]): Storage {
    const live = xs.filter((x) => x.size > 0);
    for (const x of live) if (x.dtype !== 'f32') throw new Error(`webgpu sumSquares: dtype ${x.dtype} is not supported (f32 only)`);
    if (live.length === 0) {
      const zero = this.alloc('f32', 1);
      this.fill(zero, 0);
      return zero;
    }
    const groups = this.rt.isSoftware ? SOFTWARE_SUMSQ_GROUPS_PER_CORE * Math.max(1, cpus().length) : HARDWARE_SUMSQ_GROUPS;
    // No barriers on lavapipe (see SumSquaresForm); the same sum bit for bit.
    const form: SumSquaresForm = this.rt.isSoftware ? 'lanes' : 'tree';
    const slots = Math.max(1, Math.min(MULTI_MAX_SLOTS, this.maxStorage - 1));
    const count = live.length * groups;
    const written = this.alloc('f32', count * sumSquaresPartials(form));
    for (let i = 0; i < live.length; i += slots) {
      const chunk = live.slice(i, i + slots);
      this.run(sumSquaresLaunch(chunk.map((x) => x.size), i, groups, form), [...chunk, written], 1);
    }
    let partials = written;
    if (form === 'lanes') {
      partials = this.alloc('f32', count);
      this.run(sumSquaresTreeLaunch(count), [written, partials], count);
      this.free(written);
    }
    const out = this.reduce('sum', partials, [partials.size], [0]);
    this.free(partials);
    return out;
  }

  clipByNorm(xs: readonly Storage[], norm: Storage, maxNorm: number): void {
    const live = xs.filter((x) => x.size > 0);
    for (const x of live) if (x.dtype !== 'f32') throw new Error(`webgpu clipByNorm: dtype ${x.dtype} is not supported (f32 only)`);
    const slots = Math.max(1, Math.min(MULTI_MAX_SLOTS, this.maxStorage - 1));
    for (let i = 0; i < live.length; i += slots) {
      const chunk = live.slice(i, i + slots);
      this.run(clipScaleLaunch(chunk.map((x) => x.size), maxNorm, this.groups), [norm, ...chunk], 1);
    }
  }
}
