// `npm run bench`: runs the benchmark entries on our backend and the tfjs peer, prints a table and
// writes the results as JSON (bench/results/latest.json by default). See bench/README.md.
//
//   node dist/bench/run.js [--quick] [--only NAME] [--json PATH] [--backend webgpu|cpu|auto]

import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { initBackend, WebGPUBackend, type BackendChoice } from '../src/tensor/index.js';
import type { BenchContext, Entry } from './context.js';
import { opEntries } from './entries/ops.js';
import { trainingEntries } from './entries/training.js';
import { openPeer } from './peer.js';
import { formatTable, type BenchResult } from './results.js';

const ENTRIES: Entry[] = [...opEntries, ...trainingEntries];
/** Result names that come from an entry of another name (ganpo_step times dpo_step alongside). */
const ALIASES: Record<string, string> = { dpo_step: 'ganpo_step' };

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

function usage(): string {
  return `usage: npm run bench -- [--quick] [--only NAME] [--json PATH] [--backend webgpu|cpu|auto]\nentries: ${[...ENTRIES.map((e) => e.name), ...Object.keys(ALIASES)].join(', ')}`;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      only: { type: 'string' },
      json: { type: 'string', default: resolve(repoRoot, 'bench/results/latest.json') },
      backend: { type: 'string', default: 'webgpu' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(usage());
    return 0;
  }
  const choice = values.backend as BackendChoice;
  if (!['webgpu', 'cpu', 'auto'].includes(choice)) throw new Error(`--backend must be webgpu, cpu or auto\n${usage()}`);
  const only = values.only === undefined ? undefined : (ALIASES[values.only] ?? values.only);
  const entries = only === undefined ? ENTRIES : ENTRIES.filter((e) => e.name === only);
  if (entries.length === 0) throw new Error(`no entry named '${values.only}'\n${usage()}`);

  const backend = await initBackend(choice);
  const gpu = backend instanceof WebGPUBackend ? backend : null;
  const device = gpu ? gpu.describe() : 'cpu';
  const peer = await openPeer();
  const ctx: BenchContext = {
    backend, gpu, device, peer, quick: values.quick,
    stamp: { backend: backend.name, device, date: new Date().toISOString(), node: process.version },
    politeWait: gpu?.politeWait ?? false,
  };
  console.log(`ours: ${backend.name} on ${device}${gpu?.isSoftwareAdapter ? ' (software adapter)' : ''}`);
  console.log(`peer: ${peer.name}${peer.fallbackReason ? ` — tfjs-backend-webgpu did not start: ${peer.fallbackReason}` : ' (same Dawn adapter, same process)'}`);
  console.log(`waits: ${ctx.politeWait ? 'polite on both sides (the device is the CPU: no busy polling while waiting)' : "dawn.node's default polling on both sides"}`);
  console.log(`${values.quick ? 'quick run (one short round each; not for comparison)' : 'full run'}; times are medians\n`);

  const results: BenchResult[] = [];
  for (const entry of entries) {
    const start = performance.now();
    process.stderr.write(`bench: ${entry.name} ...`);
    const out = await entry.run(ctx);
    process.stderr.write(` ${((performance.now() - start) / 1000).toFixed(1)} s\n`);
    const keep = values.only === undefined ? out : out.filter((r) => r.name === values.only);
    results.push(...keep);
  }
  if (values.quick) for (const r of results) r.params.quick = true;

  console.log(formatTable(results));
  const g = results.find((r) => r.ganpo_overhead !== undefined);
  if (g) console.log(`\nganpo_overhead (ganpo_step / dpo_step): ${g.ganpo_overhead!.toFixed(2)}x; paired steps: ${g.ganpo_overhead_paired?.toFixed(2) ?? '-'}x`);
  for (const r of results) if (r.note) console.log(`note ${r.name}: ${r.note}`);
  if (peer.name !== 'tfjs-webgpu') console.log(`\nNOTE: the peer ran on tfjs's CPU backend, not on WebGPU: ratios compare against a CPU implementation.`);

  const path = resolve(values.json);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, `${JSON.stringify(results, null, 2)}\n`);
  console.log(`\nwrote ${path}`);
  return 0;
}

// Dawn keeps the event loop alive, so the process exits explicitly, also on failure.
main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(e instanceof Error ? (e.stack ?? e.message) : e);
    process.exit(1);
  },
);
