/// <reference types="@webgpu/types" preserve="true" />
// Opening a WebGPU device through Dawn (the `webgpu` npm package) with the limits our kernels need,
// and turning Dawn's asynchronous error reports into Errors that name the kernel that caused them.
//
// Dawn prints two "maxDynamic*BuffersPerPipelineLayout artificially reduced" warnings when a device
// is created. They are written by C++ straight to stderr, not through console, so they cannot be
// filtered from JavaScript; they are harmless.

import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface DeviceOptions {
  /** Check every dispatch in its own error scope and submit it alone (slow; precise errors). */
  debug?: boolean;
  powerPreference?: GPUPowerPreference;
}

export interface OpenedDevice {
  device: GPUDevice;
  adapterInfo: string;
  hasF16: boolean;
  /** The device has the `subgroups` feature (WGSL `enable subgroups;`). */
  hasSubgroups: boolean;
  /** A CPU driver (lavapipe, SwiftShader): kernels are then picked for a CPU's caches, not a GPU's. */
  isSoftware: boolean;
}

// Collecting the instance while a device lives crashes Dawn, so it stays referenced for the process.
let instance: GPU | undefined;

async function gpuInstance(): Promise<GPU> {
  if (instance) return instance;
  // Mesa warns on every process without a runtime dir; a private temp dir silences it.
  process.env.XDG_RUNTIME_DIR ??= mkdtempSync(join(tmpdir(), 'ganpo-xdg-'));
  const { create, globals } = await import('webgpu');
  Object.assign(globalThis, globals);
  instance = create(dawnFlags(process.env.GANPO_DAWN_FLAGS));
  return instance;
}

/**
 * Options for dawn.node's create() from GANPO_DAWN_FLAGS, separated by spaces, e.g.
 * 'enable-dawn-features=allow_unsafe_apis,disable_robustness' or 'adapter=NAME' (see the webgpu
 * package's README). For experiments: nothing in the library needs any.
 */
export function dawnFlags(env: string | undefined): string[] {
  return (env ?? '').split(/\s+/).filter((f) => f.length > 0);
}

/** The adapter, or null when the machine has no usable WebGPU driver. */
export async function requestAdapter(powerPreference: GPUPowerPreference = 'high-performance'): Promise<GPUAdapter | null> {
  const gpu = await gpuInstance();
  return gpu.requestAdapter({ powerPreference });
}

export function describeAdapter(info: GPUAdapterInfo): string {
  const parts = [info.vendor, info.architecture, info.device, info.description].filter((s) => s && s.length > 0);
  return `webgpu (${parts.join(' / ') || 'unknown adapter'})`;
}

const SOFTWARE_ADAPTER = /llvmpipe|lavapipe|swiftshader|software/i;

/** True for a fallback adapter or one whose info names a known CPU driver. */
export function isSoftwareAdapter(info: GPUAdapterInfo): boolean {
  // isFallbackAdapter is recent in the spec; older Dawn builds lack it, so the names decide too.
  if ((info as { isFallbackAdapter?: boolean }).isFallbackAdapter === true) return true;
  return [info.vendor, info.architecture, info.device, info.description].some((s) => s !== undefined && SOFTWARE_ADAPTER.test(s));
}

/** Limits raised to the adapter's maxima, since WebGPU's defaults (128 MiB bindings, 8 storage buffers) are small for LMs. */
const RAISED_LIMITS = [
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxComputeWorkgroupStorageSize',
  'maxStorageBuffersPerShaderStage',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
] as const;

export const NO_ADAPTER_HINT =
  'no WebGPU adapter found. Install a Vulkan driver for your GPU, or Mesa lavapipe (a CPU Vulkan driver) from ' +
  "bookworm-backports: echo 'deb http://deb.debian.org/debian bookworm-backports main' > /etc/apt/sources.list.d/bpo.list && " +
  'apt-get update && apt-get install -y -t bookworm-backports mesa-vulkan-drivers libvulkan1';

export async function openDevice(opts: DeviceOptions = {}): Promise<OpenedDevice> {
  const adapter = await requestAdapter(opts.powerPreference);
  if (!adapter) throw new Error(`WebGPU: ${NO_ADAPTER_HINT}`);
  const requiredLimits: Record<string, number> = {};
  for (const name of RAISED_LIMITS) requiredLimits[name] = adapter.limits[name];
  // Optional features some kernel variants use: f16 matmul operands, subgroup operations.
  const hasF16 = adapter.features.has('shader-f16');
  // The subgroup matmul shuffles within groups of 8 consecutive lanes: it needs subgroups of 8 or more.
  const minSize = (adapter.info as { subgroupMinSize?: number }).subgroupMinSize;
  const hasSubgroups = adapter.features.has('subgroups') && (minSize === undefined || minSize >= 8);
  const requiredFeatures: GPUFeatureName[] = [];
  if (hasF16) requiredFeatures.push('shader-f16');
  if (adapter.features.has('subgroups')) requiredFeatures.push('subgroups');
  const device = await adapter.requestDevice({ requiredLimits, requiredFeatures });
  return { device, adapterInfo: describeAdapter(adapter.info), hasF16, hasSubgroups, isSoftware: isSoftwareAdapter(adapter.info) };
}

/** A WGSL compile error as one readable message: kernel, line, Dawn's message and the source line. */
export function formatCompileError(kernelName: string, code: string, messages: readonly GPUCompilationMessage[]): string | null {
  const errors = messages.filter((m) => m.type === 'error');
  if (errors.length === 0) return null;
  const lines = code.split('\n');
  const parts = errors.map((m) => {
    const src = lines[m.lineNum - 1] ?? '';
    return `  line ${m.lineNum}:${m.linePos}: ${m.message}\n    ${src.trim()}`;
  });
  return `WGSL compile error in kernel '${kernelName}':\n${parts.join('\n')}`;
}

/**
 * Collects errors that Dawn reports asynchronously (uncaptured errors, device loss, compilation
 * info, debug error scopes) so the next backend call can throw them synchronously.
 */
export class ErrorSink {
  private errors: Error[] = [];
  private pending = new Set<Promise<void>>();
  lost: Error | null = null;

  constructor(device: GPUDevice, lastKernel: () => string) {
    device.addEventListener('uncapturederror', (ev) => {
      ev.preventDefault(); // we report it; keep Dawn from also printing it
      const err = (ev as GPUUncapturedErrorEvent).error;
      const msg = err.message;
      if (this.isConsequence(msg)) return;
      if (err.constructor?.name === 'GPUOutOfMemoryError' || /out of memory/i.test(msg)) {
        this.add(new Error(`WebGPU out of memory after kernel '${lastKernel()}': ${msg}. Try a smaller batch (--batch), shorter sequences or a smaller model.`));
        return;
      }
      this.add(new Error(`WebGPU error after kernel '${lastKernel()}': ${msg}`));
    });
    void device.lost.then((info) => {
      if (info.reason === 'destroyed') return;
      this.lost = new Error(`WebGPU device lost (last kernel '${lastKernel()}'): ${info.message}`);
    });
  }

  /** Kernels whose WGSL failed to compile (their error was reported with name and line). */
  readonly brokenKernels = new Set<string>();

  /**
   * Errors that only repeat one already reported: WGSL parse errors (getCompilationInfo reports them
   * with the kernel name and source line), uses of a pipeline that failed to compile, and the
   * command buffer invalidated by an error Dawn reported while encoding.
   */
  private isConsequence(msg: string): boolean {
    if (msg.startsWith('Error while parsing WGSL') || msg.startsWith('[Invalid CommandBuffer]')) return true;
    const m = /Invalid (?:ComputePipeline|ShaderModule) "([^"]*)"/.exec(msg);
    return m !== null && this.brokenKernels.has(m[1]);
  }

  /** Compile errors are the root cause of later "invalid pipeline" errors, so they go first. */
  add(e: Error, rootCause = false): void {
    if (rootCause) this.errors.unshift(e);
    else this.errors.push(e);
  }

  /** Tracks an asynchronous check whose result must be seen before the next readback returns. */
  track(p: Promise<void>): void {
    const q = p.catch((e: unknown) => this.add(e instanceof Error ? e : new Error(String(e)))).finally(() => this.pending.delete(q));
    this.pending.add(q);
  }

  async settle(): Promise<void> {
    while (this.pending.size > 0) await Promise.all([...this.pending]);
  }

  /** Throws the first stored error (and forgets the rest, which are usually its consequences). */
  throwIfAny(): void {
    if (this.lost) throw this.lost;
    if (this.errors.length === 0) return;
    const first = this.errors[0];
    this.errors = [];
    throw first;
  }
}
