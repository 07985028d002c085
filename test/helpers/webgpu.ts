// One WebGPU backend per test file, shared by its describeGpu blocks. Without an adapter the file
// skips them with a printed reason, or fails under GANPO_REQUIRE_WEBGPU=1 (see webgpuEnv.ts).

import { afterAll, describe } from 'vitest';
import { WebGPUBackend } from '../../src/tensor/backends/webgpu/index.js';
import type { Storage } from '../../src/tensor/backend.js';
import type { TypedArray } from '../../src/tensor/dtype.js';
import { CpuBackend } from '../../src/tensor/backends/cpu/index.js';
import { adapterOrSkip } from './webgpuEnv.js';

async function open(): Promise<WebGPUBackend | undefined> {
  const adapter = await adapterOrSkip('WebGPU backend tests');
  return adapter ? WebGPUBackend.create() : undefined;
}

const opened = await open();
afterAll(() => opened?.destroy());

/** The file's backend; only call inside describeGpu. */
export const gpu = opened as WebGPUBackend;
export const cpu = new CpuBackend();

/** describe() that skips when there is no adapter (and GANPO_REQUIRE_WEBGPU is not set). */
export function describeGpu(name: string, fn: () => void): void {
  describe.skipIf(opened === undefined)(name, fn);
}

/** Uploads the same data to both backends. */
export function both(dtype: 'f32' | 'i32', data: ArrayLike<number>): [Storage, Storage] {
  return [gpu.upload(dtype, data), cpu.upload(dtype, data)];
}

export async function readBoth(g: Storage, c: Storage): Promise<[TypedArray, TypedArray]> {
  const out: [TypedArray, TypedArray] = [await gpu.read(g), cpu.readSync(c)];
  gpu.free(g);
  cpu.free(c);
  return out;
}

/**
 * Index of the first element where |g − c| > abs + rel·|c| (NaN must match NaN, ±∞ must match
 * exactly), or −1. Returning the index makes failures print the offending values.
 */
export function firstMismatch(g: ArrayLike<number>, c: ArrayLike<number>, abs: number, rel: number): number {
  if (g.length !== c.length) return -2;
  for (let i = 0; i < c.length; i++) {
    const a = g[i];
    const b = c[i];
    if (Number.isNaN(b) || !Number.isFinite(b)) {
      if (!Object.is(a, b) && !(Number.isNaN(a) && Number.isNaN(b)) && a !== b) return i;
      continue;
    }
    if (!(Math.abs(a - b) <= abs + rel * Math.abs(b))) return i;
  }
  return -1;
}

export function expectClose(g: ArrayLike<number>, c: ArrayLike<number>, abs: number, rel: number, what = ''): void {
  const i = firstMismatch(g, c, abs, rel);
  if (i !== -1) {
    const detail = i === -2 ? `lengths ${g.length} vs ${c.length}` : `at ${i}: gpu ${g[i]} vs cpu ${c[i]} (abs ${abs}, rel ${rel})`;
    throw new Error(`${what} mismatch ${detail}`);
  }
}
