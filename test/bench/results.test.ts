// Checks the committed benchmark result file's schema (bench/results/latest.json): every required
// entry is present, its numbers are finite and positive, its device and peer are named. It times nothing.

import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { formatMarkdown, type BenchResult } from '../../bench/results.js';

interface Row {
  name: string;
  backend: string;
  device: string;
  params: Record<string, unknown>;
  median_ms: number;
  peer?: string;
  peer_median_ms?: number;
  ratio_vs_peer?: number;
  [k: string]: unknown;
}

const rows = JSON.parse(readFileSync(new URL('../../bench/results/latest.json', import.meta.url), 'utf8')) as Row[];

const REQUIRED: [string, Record<string, unknown>][] = [
  ['matmul', { n: 256 }], ['matmul', { n: 512 }], ['matmul', { n: 1024 }],
  ['attention_fwd_bwd', { B: 8, H: 4, T: 128, D: 32, causal: true }],
  ['softmax', { rows: 4096, cols: 1024 }],
  ['layernorm', { rows: 4096, cols: 1024 }],
  ['gpt_train_step', { layers: 4, d: 128, heads: 4, T: 64, batch: 16, vocab: 4096 }],
  ['dpo_step', { pairs: 8 }],
  ['ganpo_step', { pairs: 8, critic_width: 64 }],
];

const OPTIONAL_NUMBERS = ['gflops', 'gbps', 'tokens_per_s', 'peer_median_ms', 'ratio_vs_peer', 'peer_gflops', 'peer_gbps', 'peer_tokens_per_s', 'ganpo_overhead', 'peak_bytes'];

function positive(x: unknown): boolean {
  return typeof x === 'number' && Number.isFinite(x) && x > 0;
}

describe('bench/results/latest.json', () => {
  test('is an array of full-run results with a named device, backend, date and Node version', () => {
    expect(Array.isArray(rows)).toBe(true);
    for (const r of rows) {
      expect(typeof r.name).toBe('string');
      expect(r.backend === 'webgpu' || r.backend === 'cpu', r.name).toBe(true);
      expect(r.device.length, `${r.name} device`).toBeGreaterThan(0);
      expect(Number.isNaN(Date.parse(r.date as string)), `${r.name} date`).toBe(false);
      expect(r.node, `${r.name} node`).toMatch(/^v\d+\./);
      expect(r.params.quick, `${r.name} comes from a --quick run`).toBeUndefined();
    }
  });

  test('has every required entry', () => {
    for (const [name, params] of REQUIRED) {
      const hit = rows.find((r) => r.name === name && Object.entries(params).every(([k, v]) => r.params[k] === v));
      expect(hit, `${name} ${JSON.stringify(params)}`).toBeDefined();
    }
  });

  test('every number is finite and positive, and the ratio is peer / ours', () => {
    for (const r of rows) {
      expect(positive(r.median_ms), `${r.name} median_ms`).toBe(true);
      for (const k of OPTIONAL_NUMBERS) if (k in r) expect(positive(r[k]), `${r.name} ${k}`).toBe(true);
      if (r.peer_median_ms !== undefined) expect(r.ratio_vs_peer).toBeCloseTo(r.peer_median_ms / r.median_ms, 6);
    }
  });

  test('compared entries name their peer; training steps record counters and peak pool bytes on WebGPU', () => {
    for (const r of rows) {
      if (['matmul', 'attention_fwd_bwd', 'softmax', 'layernorm', 'gpt_train_step'].includes(r.name)) {
        expect(['tfjs-webgpu', 'tfjs-cpu'], `${r.name} peer`).toContain(r.peer);
      }
      if (r.name === 'ganpo_step') {
        expect(r.peer).toBe('dpo_step');
        expect(positive(r.ganpo_overhead)).toBe(true);
      }
      if (r.backend === 'webgpu' && ['gpt_train_step', 'dpo_step', 'ganpo_step'].includes(r.name)) {
        expect(positive(r.peak_bytes), `${r.name} peak_bytes`).toBe(true);
        expect(r.counters, `${r.name} counters`).toBeDefined();
      }
    }
  });

  test('the README Performance section shows exactly this file and the GPU run: their tables and devices', () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    const section = readme.slice(readme.indexOf('## Performance'), readme.indexOf('\n## ', readme.indexOf('## Performance') + 1));
    for (const [file, results] of [['latest.json', rows], [GPU_RUN, gpuRows]] as const) {
      expect(section, `regenerate with node dist/bench/markdown.js bench/results/${file}`).toContain(formatMarkdown(results as unknown as BenchResult[]));
      for (const device of new Set(results.map((r) => r.device))) expect(section).toContain(device);
    }
  });
});

/** The committed run on a real GPU that the README also shows. */
const GPU_RUN = '2026-11-28-h100.json';
const gpuRows = JSON.parse(readFileSync(new URL(`../../bench/results/${GPU_RUN}`, import.meta.url), 'utf8')) as Row[];

describe(`bench/results/${GPU_RUN}`, () => {
  test('is a full run on a hardware adapter with every required entry and the n = 4096 matmul', () => {
    for (const r of gpuRows) {
      expect(r.device, r.name).not.toMatch(/llvmpipe|lavapipe|swiftshader/i);
      expect(r.params.quick, `${r.name} comes from a --quick run`).toBeUndefined();
      expect(positive(r.median_ms), `${r.name} median_ms`).toBe(true);
    }
    for (const [name, params] of [...REQUIRED, ['matmul', { n: 4096 }] as [string, Record<string, unknown>]]) {
      expect(gpuRows.find((r) => r.name === name && Object.entries(params).every(([k, v]) => r.params[k] === v)), `${name} ${JSON.stringify(params)}`).toBeDefined();
    }
  });
});
