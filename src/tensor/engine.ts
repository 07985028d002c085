// Global engine state: the default backend for new tensors and the default random generator.

import type { Backend } from './backend.js';
import { CpuBackend } from './backends/cpu/index.js';
import { Generator } from './random/philox.js';

/** The CPU reference backend (f32, f64, i32). */
export const cpu: Backend = new CpuBackend();

let current: Backend = cpu;
let generator = new Generator(0);

export function getBackend(): Backend {
  return current;
}

/** Sets the backend new tensors are created on (see initBackend for choosing WebGPU). */
export function setBackend(b: Backend): void {
  current = b;
}

/** The default generator used by random ops that are not given one. */
export function defaultGenerator(): Generator {
  return generator;
}

/** Replaces the default generator (e.g. with one restored from a checkpoint). */
export function setDefaultGenerator(g: Generator): void {
  generator = g;
}

/** Reseeds the default generator (like torch.manual_seed). */
export function manualSeed(seed: number | bigint): void {
  generator = new Generator(seed);
}
