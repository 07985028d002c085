// The matmul autotuner: for each (adapter, shape bucket, transposes, layout, operand type) key it
// times the candidate variants once on the device and remembers the fastest, in memory and
// optionally in a JSON file shared across processes.
//
// Control (off by default: the static rule in src/shaders/matmul.ts is deterministic, needs no
// device time and is what tests and CI run):
//   - WebGPUBackendOptions.matmulTuning: 'off' | 'on', or backend.setMatmulTuning(on) at runtime;
//     the environment variable GANPO_MATMUL_TUNE=1 turns it on where the option is not given
//     (GANPO_MATMUL_TUNE=0 forces it off).
//   - WebGPUBackendOptions.matmulTuneCache, else GANPO_MATMUL_TUNE_CACHE: a JSON file of choices,
//     read when the backend opens and rewritten atomically (temp file + rename) after each tuning.
//     Its entries are grouped by the adapter's description, so another adapter never reuses them.
//
// When tuning is on, a matmul whose key has no choice yet runs the static choice and queues the
// key; the queue is tuned at the backend's next readback or sync(), when the device is idle (so
// the timings are clean), or explicitly with `await backend.tuneMatmul()`. Each key costs one
// compile per candidate plus a few interleaved timed runs (wall clock around
// queue.onSubmittedWorkDone) on a proxy of the shape at most 1024 rows and columns (a 512 cap
// picked subgroup8x4 for 1024³, where subgroup8x8 is faster at the full size).

import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { MatmulParams } from '../../backend.js';
import { layoutName, matmulLayout, type MatmulOperandType, type MatmulVariant, MATMUL_VARIANTS } from '../../../shaders/matmul.js';

/** Version of the cache file format; files of another version are ignored. */
export const TUNE_CACHE_VERSION = 1;

interface CacheFile {
  version: number;
  /** adapter description → tuning key → chosen variant */
  adapters: Record<string, Record<string, string>>;
}

/** Smallest power of two ≥ x (1 for x ≤ 1): shapes in one bucket share a choice. */
export function bucket(x: number): number {
  let b = 1;
  while (b < x) b *= 2;
  return b;
}

/**
 * The tuning key of a (batch-merged) matmul: bucketed m, n, k and batch count, the transposes,
 * the vec4 eligibility of each operand (the layout a register variant would use) and the operand
 * type. Two shapes with one key are assumed to prefer the same variant.
 */
export function tuneKey(p: MatmulParams, type: MatmulOperandType): string {
  const batch = p.batchShape.reduce((s, d) => s * d, 1);
  const layout = layoutName(matmulLayout(p, 'register4x4'));
  return `${bucket(p.m)}x${bucket(p.n)}x${bucket(p.k)} b${bucket(batch)} ${p.transA ? 'tA' : 'nA'}${p.transB ? 'tB' : 'nB'} ${layout} ${type}`;
}

/** Contiguous stand-in for p, at most `cap` rows and columns, with p's layout (or p itself). */
export function proxyParams(p: MatmulParams, cap = 1024): MatmulParams {
  const m = Math.min(p.m, cap);
  const n = Math.min(p.n, cap);
  const batch = Math.min(p.batchShape.reduce((s, d) => s * d, 1), 4);
  const broadcastA = p.aBatchStrides.every((s) => s === 0);
  const broadcastB = p.bBatchStrides.every((s) => s === 0);
  const q: MatmulParams = {
    ...p, m, n,
    batchShape: p.batchShape.length > 0 ? [batch] : [],
    aBatchStrides: p.batchShape.length > 0 ? [broadcastA ? 0 : m * p.k] : [],
    bBatchStrides: p.batchShape.length > 0 ? [broadcastB ? 0 : p.k * n] : [],
  };
  const same = MATMUL_VARIANTS.every((v) => layoutName(matmulLayout(q, v)) === layoutName(matmulLayout(p, v)));
  return same ? q : p;
}

export interface PendingTune {
  key: string;
  params: MatmulParams;
  type: MatmulOperandType;
}

/** Times candidates: milliseconds per variant (Infinity or missing for one that failed). */
export type MatmulTimer = (variants: readonly MatmulVariant[], p: MatmulParams, type: MatmulOperandType) => Promise<Map<MatmulVariant, number>>;

export interface MatmulTunerOptions {
  /** Variants to time for f32 operands and for f16 operands. */
  candidates: (type: MatmulOperandType) => readonly MatmulVariant[];
  /** JSON cache file (read at construction, written after each tuning); none when undefined. */
  cachePath?: string;
}

export class MatmulTuner {
  private readonly choices = new Map<string, MatmulVariant>();
  private readonly queue = new Map<string, PendingTune>();
  /** Timings of the tunings this process ran, for reports: key → variant → ms. */
  readonly timings = new Map<string, Map<MatmulVariant, number>>();

  constructor(readonly adapter: string, private readonly opts: MatmulTunerOptions) {
    if (opts.cachePath) this.load(opts.cachePath);
  }

  /** The tuned variant for p, or undefined (not tuned yet: the caller uses its static rule). */
  choice(p: MatmulParams, type: MatmulOperandType): MatmulVariant | undefined {
    return this.choices.get(tuneKey(p, type));
  }

  /** Queues p for tuning unless its key has a choice or is queued already. */
  request(p: MatmulParams, type: MatmulOperandType): void {
    const key = tuneKey(p, type);
    if (this.choices.has(key) || this.queue.has(key)) return;
    this.queue.set(key, { key, params: proxyParams(p), type });
  }

  get pending(): readonly PendingTune[] {
    return [...this.queue.values()];
  }

  /** Stores a choice (and the timings behind it) and rewrites the cache file. */
  record(key: string, variant: MatmulVariant, timings?: Map<MatmulVariant, number>): void {
    this.choices.set(key, variant);
    this.queue.delete(key);
    if (timings) this.timings.set(key, timings);
    if (this.opts.cachePath) this.save(this.opts.cachePath);
  }

  /** Tunes every queued key with timer; a key whose candidates all failed keeps the static rule (and is not retried). */
  async tunePending(timer: MatmulTimer, fallback: (p: MatmulParams, type: MatmulOperandType) => MatmulVariant): Promise<void> {
    for (const job of [...this.queue.values()]) {
      const t = await timer(this.opts.candidates(job.type), job.params, job.type);
      let best: MatmulVariant | undefined;
      for (const [v, ms] of t) if (Number.isFinite(ms) && (best === undefined || ms < t.get(best)!)) best = v;
      this.record(job.key, best ?? fallback(job.params, job.type), t);
    }
  }

  /** All choices for this adapter (key → variant). */
  entries(): Record<string, MatmulVariant> {
    return Object.fromEntries(this.choices);
  }

  private load(path: string): void {
    const file = readCache(path);
    const mine = file?.adapters[this.adapter];
    if (!mine) return;
    for (const [key, v] of Object.entries(mine)) {
      // A variant this version does not know (renamed or removed) is dropped: that key retunes.
      if ((MATMUL_VARIANTS as readonly string[]).includes(v)) this.choices.set(key, v as MatmulVariant);
    }
  }

  private save(path: string): void {
    // Merge with what other processes (or adapters) wrote since, then replace the file atomically.
    const file = readCache(path) ?? { version: TUNE_CACHE_VERSION, adapters: {} };
    file.adapters[this.adapter] = { ...file.adapters[this.adapter], ...this.entries() };
    const tmp = `${path}.${process.pid}.tmp`;
    writeFileSync(tmp, `${JSON.stringify(file, null, 1)}\n`);
    renameSync(tmp, path);
  }
}

/** The cache file's contents, or null when it is missing, unreadable or of another version. */
export function readCache(path: string): CacheFile | null {
  if (!existsSync(path)) return null;
  try {
    const data = JSON.parse(readFileSync(path, 'utf8')) as CacheFile;
    if (data.version !== TUNE_CACHE_VERSION || typeof data.adapters !== 'object' || data.adapters === null) return null;
    return data;
  } catch {
    return null;
  }
}

/** Tuning on or off from the option, else from GANPO_MATMUL_TUNE ('1' on; anything else off). */
export function tuningEnabled(option: 'on' | 'off' | undefined, env: Readonly<Record<string, string | undefined>> = process.env): boolean {
  if (option !== undefined) return option === 'on';
  return env.GANPO_MATMUL_TUNE === '1';
}
