// What a test file does when the machine has no WebGPU adapter (the project's rule, in one place):
// skip its WebGPU tests with one printed line saying why and how to get a driver, or fail when
// GANPO_REQUIRE_WEBGPU=1 (CI sets it, so a broken driver install cannot pass as a skip).

import { NO_ADAPTER_HINT, requestAdapter } from '../../src/tensor/backends/webgpu/device.js';

export const requireWebGPU = process.env.GANPO_REQUIRE_WEBGPU === '1';

/**
 * The adapter, or undefined after printing why the suite is skipped; throws instead when
 * GANPO_REQUIRE_WEBGPU=1. Call once per test file, at module level.
 */
export async function adapterOrSkip(suite: string): Promise<GPUAdapter | undefined> {
  const adapter = await requestAdapter();
  if (adapter) return adapter;
  if (requireWebGPU) throw new Error(`${suite}: ${NO_ADAPTER_HINT} (failing because GANPO_REQUIRE_WEBGPU=1)`);
  console.warn(`${suite} SKIPPED: ${NO_ADAPTER_HINT} (set GANPO_REQUIRE_WEBGPU=1 to fail instead of skipping)`);
  return undefined;
}
