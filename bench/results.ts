// The machine-readable result of a benchmark entry (bench/results/*.json is an array of these), and
// the table printed from them.

import type { PeerName } from './peer.js';

export interface GpuCounters {
  dispatches: number;
  submits: number;
  readbacks: number;
}

export interface BenchResult {
  name: string;
  /** Our backend that ran it ('webgpu' or 'cpu'). */
  backend: string;
  /** The adapter description (WebGPUBackend.describe()), or 'cpu'. */
  device: string;
  params: Record<string, number | string | boolean>;
  median_ms: number;
  samples: number;
  gflops?: number;
  gbps?: number;
  tokens_per_s?: number;
  /** Who ran the same work for comparison: a tfjs backend, or for ganpo_step our dpo_step. */
  peer?: PeerName | 'dpo_step';
  peer_median_ms?: number;
  peer_gflops?: number;
  peer_gbps?: number;
  peer_tokens_per_s?: number;
  /** peer_median_ms / median_ms: above 1 means ours is faster. */
  ratio_vs_peer?: number;
  /** ganpo_step time / dpo_step time (ganpo_step only). */
  ganpo_overhead?: number;
  /**
   * Median over back-to-back (dpo, ganpo) step pairs, alternating which runs first, of ganpo / dpo:
   * the overhead with load drift between the two cancelled pair by pair (ganpo_step only).
   */
  ganpo_overhead_paired?: number;
  /** Pairs behind ganpo_overhead_paired. */
  pairs?: number;
  /** Our GPU work per timed call (WebGPU only). */
  counters?: GpuCounters;
  /** Highest pooled + live GPU bytes of the entry's own device (training steps only). */
  peak_bytes?: number;
  date: string;
  node: string;
  /** What the reader must know: where the peer's work differs from ours, why something was skipped. */
  note?: string;
}

function fmt(x: number | undefined, digits = 2): string {
  if (x === undefined) return '';
  if (x >= 1000) return x.toFixed(0);
  if (x >= 100) return x.toFixed(1);
  return x.toFixed(digits);
}

function paramText(p: BenchResult['params']): string {
  return Object.entries(p).map(([k, v]) => `${k}=${v}`).join(' ');
}

function rate(r: BenchResult, peer: boolean): string {
  const g = peer ? r.peer_gflops : r.gflops;
  const b = peer ? r.peer_gbps : r.gbps;
  const t = peer ? r.peer_tokens_per_s : r.tokens_per_s;
  if (g !== undefined) return `${fmt(g)} GFLOP/s`;
  if (b !== undefined) return `${fmt(b)} GB/s`;
  if (t !== undefined) return `${fmt(t, 1)} tok/s`;
  return '';
}

/** A plain-text table, one row per entry, with the peer that ran named on every row. */
export function formatTable(results: readonly BenchResult[]): string {
  const head = ['entry', 'params', 'ours ms', 'ours rate', 'peer', 'peer ms', 'peer rate', 'speedup', 'disp/sub/rb'];
  const rows = results.map((r) => [
    r.name,
    paramText(r.params),
    fmt(r.median_ms),
    rate(r, false),
    r.peer ?? '-',
    fmt(r.peer_median_ms),
    rate(r, true),
    r.ratio_vs_peer === undefined ? '' : `${fmt(r.ratio_vs_peer)}x`,
    r.counters ? `${r.counters.dispatches}/${r.counters.submits}/${r.counters.readbacks}` : '',
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd();
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

function cell(text: string): string {
  return text === '' ? '–' : text.replace(/\|/g, '\\|');
}

/**
 * The README's Performance table: one Markdown row per result, the same numbers as the JSON
 * (rounded as in the printed table). test/bench/results.test.ts checks that the README holds
 * exactly this rendering of bench/results/latest.json, so every number there is traceable.
 */
export function formatMarkdown(results: readonly BenchResult[]): string {
  const head = ['entry', 'params', 'ours ms', 'ours rate', 'peer', 'peer ms', 'peer rate', 'speedup', 'disp/sub/rb'];
  const rows = results.map((r) => [
    r.name,
    paramText(r.params),
    fmt(r.median_ms),
    rate(r, false),
    r.peer ?? '',
    fmt(r.peer_median_ms),
    rate(r, true),
    r.ganpo_overhead !== undefined ? `${fmt(r.ganpo_overhead)}× DPO time${r.ganpo_overhead_paired !== undefined ? ` (paired ${fmt(r.ganpo_overhead_paired)}×)` : ''}` : r.ratio_vs_peer === undefined ? '' : `${fmt(r.ratio_vs_peer)}×`,
    r.counters ? `${r.counters.dispatches}/${r.counters.submits}/${r.counters.readbacks}` : '',
  ]);
  const line = (cells: string[]): string => `| ${cells.map(cell).join(' | ')} |`;
  return [line(head), `|${head.map(() => '---').join('|')}|`, ...rows.map(line)].join('\n');
}
