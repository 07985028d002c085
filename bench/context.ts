// What every benchmark entry is given: our backend and its device, the tfjs peer, the run's size
// (--quick), and helpers to wait for our GPU work and count it.

import { getBackend, setBackend, type Backend, WebGPUBackend } from '../src/tensor/index.js';
import type { Plan } from './harness.js';
import type { Peer } from './peer.js';
import { politely } from '../src/tensor/backends/webgpu/politeWait.js';
import type { BenchResult, GpuCounters } from './results.js';

export interface BenchContext {
  backend: Backend;
  /** Our backend when it is WebGPU (counters, memory, a fresh device per training entry). */
  gpu: WebGPUBackend | null;
  device: string;
  peer: Peer;
  quick: boolean;
  /** The fields every result carries: our backend, device, date and Node version. */
  stamp: Pick<BenchResult, 'backend' | 'device' | 'date' | 'node'>;
  /**
   * Our backend waits on the device politely (politeWait.ts: on a software adapter dawn.node's
   * busy poller would take a core from the driver); the peer's timed calls then run under the
   * same policy, so both sides wait alike and the ratio compares the work, not the waiting.
   */
  politeWait: boolean;
}

/** The peer's task under the run's wait policy (see BenchContext.politeWait). */
export function peerTask(ctx: BenchContext, task: () => Promise<void>): () => Promise<void> {
  return ctx.politeWait ? () => politely(task) : task;
}

/** Waits until our backend has run everything recorded (a no-op on the CPU, which runs eagerly). */
export function syncOurs(backend: Backend): Promise<void> {
  return backend instanceof WebGPUBackend ? backend.sync() : Promise.resolve();
}

/** The plan of an entry: `full` normally, one short round with --quick. */
export function plan(ctx: BenchContext, full: Plan): Plan {
  return ctx.quick ? { rounds: 1, iterations: 1, warmup: 1 } : full;
}

/** Our dispatches, submits and readbacks during one call of fn (undefined off WebGPU). */
export async function countOnce(backend: Backend, fn: () => Promise<unknown>): Promise<GpuCounters | undefined> {
  if (!(backend instanceof WebGPUBackend)) return undefined;
  await backend.sync();
  backend.resetCounters();
  await fn();
  const { dispatches, submits, readbacks } = backend.counters();
  return { dispatches, submits, readbacks };
}

/** Runs fn with `b` as the engine's default backend (for entries that use a device of their own). */
export async function withBackend<T>(b: Backend, fn: () => Promise<T>): Promise<T> {
  const prev = getBackend();
  setBackend(b);
  try {
    return await fn();
  } finally {
    setBackend(prev);
  }
}

/**
 * A backend of the same kind as ours with its own device, so its buffer pool's peak belongs to one
 * entry (the API has no way to reset the peak). On the CPU it is ours.
 */
export async function freshBackend(ctx: BenchContext): Promise<{ backend: Backend; close(): void }> {
  if (!ctx.gpu) return { backend: ctx.backend, close: () => {} };
  const b = await WebGPUBackend.create();
  return { backend: b, close: () => b.destroy() };
}

export function peakBytes(backend: Backend): number | undefined {
  return backend instanceof WebGPUBackend ? backend.memory().peakBytes : undefined;
}

export interface Entry {
  name: string;
  run(ctx: BenchContext): Promise<BenchResult[]>;
}
