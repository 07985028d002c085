/// <reference types="@webgpu/types" preserve="true" />
// Choosing the engine's backend at startup: WebGPU when a driver is present, else the CPU
// reference, or exactly what the caller (or GANPO_BACKEND) asks for.

import type { Backend } from '../backend.js';
import { cpu, setBackend } from '../engine.js';
import { NO_ADAPTER_HINT, requestAdapter } from './webgpu/device.js';
import { WebGPUBackend, type WebGPUBackendOptions } from './webgpu/index.js';

export type BackendChoice = 'auto' | 'webgpu' | 'cpu';

function envChoice(): BackendChoice {
  const v = process.env.GANPO_BACKEND;
  if (v === undefined || v === '') return 'auto';
  if (v === 'auto' || v === 'webgpu' || v === 'cpu') return v;
  throw new Error(`GANPO_BACKEND must be auto, webgpu or cpu, got '${v}'`);
}

/**
 * Creates the backend, makes it the default for new tensors, and returns it. 'auto' falls back to
 * the CPU (saying so on stderr) when no WebGPU adapter exists; 'webgpu' throws with a fix-it hint.
 */
export async function initBackend(choice: BackendChoice = envChoice(), opts: WebGPUBackendOptions = {}): Promise<Backend> {
  let backend: Backend = cpu;
  if (choice !== 'cpu') {
    const adapter = await requestAdapter(opts.powerPreference);
    if (adapter) backend = await WebGPUBackend.create(opts);
    else if (choice === 'webgpu') throw new Error(`backend 'webgpu' requested but ${NO_ADAPTER_HINT}`);
    else process.stderr.write(`ganpo: ${NO_ADAPTER_HINT.replace(/^no/, 'No')}; using the CPU backend.\n`);
  }
  setBackend(backend);
  return backend;
}
