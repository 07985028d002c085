// Flags and helpers shared by the CLI commands: backend choice, output, seeds.

import { mkdirSync } from 'node:fs';
import { initBackend, type Backend, type BackendChoice } from '../../tensor/index.js';
import type { FlagSpec } from './args.js';

export const BACKEND_FLAG: FlagSpec = {
  name: 'backend', type: 'enum', values: ['auto', 'webgpu', 'cpu'],
  help: 'compute backend (also GANPO_BACKEND); auto = WebGPU when an adapter exists, else CPU',
};

export const HELP_FLAG: FlagSpec = { name: 'help', type: 'boolean', help: 'show this help' };

/** Initializes the backend from --backend or GANPO_BACKEND, printing which device runs. */
export async function setupBackend(choice: unknown, quiet = false): Promise<Backend> {
  const b = await initBackend((choice as BackendChoice | undefined) ?? undefined);
  if (!quiet) process.stderr.write(`ganpo: backend ${b.name}: ${b.describe()}\n`);
  return b;
}

export function ensureDir(dir: string): string {
  mkdirSync(dir, { recursive: true });
  return dir;
}
