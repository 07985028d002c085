// The matmul tuner's keying, caching and control logic (no timing assertions: a fake timer decides),
// and on a real device: tuning on picks a candidate and keeps results equal to the static rule's
// within f32 tolerance, and the 'medium' matmul precision (f16 operands) stays within f16 error.

import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { MatmulParams } from '../../../../src/tensor/backend.js';
import type { MatmulVariant } from '../../../../src/shaders/matmul.js';
import { bucket, MatmulTuner, proxyParams, readCache, TUNE_CACHE_VERSION, tuneKey, tuningEnabled, type MatmulTimer } from '../../../../src/tensor/backends/webgpu/matmulTuner.js';
import { WebGPUBackend } from '../../../../src/tensor/backends/webgpu/index.js';
import { cpu, describeGpu, expectClose, gpu } from '../../../helpers/webgpu.js';

const P = (m: number, n: number, k: number, extra: Partial<MatmulParams> = {}): MatmulParams =>
  ({ batchShape: [], aBatchStrides: [], bBatchStrides: [], m, n, k, transA: false, transB: false, ...extra });

/** A timer that makes `winner` fastest and counts its calls. */
function fakeTimer(winner: MatmulVariant): MatmulTimer & { calls: number } {
  const t = Object.assign(async (vs: readonly MatmulVariant[]) => {
    t.calls++;
    return new Map(vs.map((v): [MatmulVariant, number] => [v, v === winner ? 1 : 2]));
  }, { calls: 0 });
  return t;
}

const candidates = () => ['register4x4', 'register4x8', 'subgroup8x4'] as const;
const tmp = () => join(mkdtempSync(join(tmpdir(), 'ganpo-tune-')), 'tune.json');

describe('matmul tuner keys', () => {
  it('buckets sizes to powers of two and keeps transposes, layout and type apart', () => {
    expect([0, 1, 2, 3, 500, 512, 513].map(bucket)).toEqual([1, 1, 2, 4, 512, 512, 1024]);
    expect(tuneKey(P(500, 500, 500), 'f32')).toBe(tuneKey(P(400, 300, 260), 'f32'));
    expect(tuneKey(P(512, 512, 512), 'f32')).not.toBe(tuneKey(P(512, 512, 512, { transB: true }), 'f32'));
    expect(tuneKey(P(512, 512, 512), 'f32')).not.toBe(tuneKey(P(512, 512, 512), 'f16'));
    // Same buckets, different vec4 eligibility (k % 4): different keys.
    expect(tuneKey(P(512, 512, 512), 'f32')).not.toBe(tuneKey(P(512, 512, 511), 'f32'));
    expect(tuneKey(P(4, 4, 4, { batchShape: [3], aBatchStrides: [16], bBatchStrides: [0] }), 'f32')).toContain('b4');
  });

  it('times a proxy of at most 1024 rows and columns with the same layout', () => {
    const q = proxyParams(P(2048, 4096, 128, { transB: true }));
    expect([q.m, q.n, q.k, q.transB]).toEqual([1024, 1024, 128, true]);
    const batched = proxyParams(P(8, 8, 8, { batchShape: [100], aBatchStrides: [64], bBatchStrides: [0] }));
    expect(batched.batchShape).toEqual([4]);
    expect(batched.bBatchStrides).toEqual([0]);
    // A proxy that would change the layout is not used.
    const odd = P(8, 8, 8, { batchShape: [2], aBatchStrides: [6], bBatchStrides: [64] });
    expect(proxyParams(odd)).toBe(odd);
  });

  it('tuning is off unless the option or GANPO_MATMUL_TUNE=1 turns it on', () => {
    expect(tuningEnabled(undefined, {})).toBe(false);
    expect(tuningEnabled(undefined, { GANPO_MATMUL_TUNE: '1' })).toBe(true);
    expect(tuningEnabled(undefined, { GANPO_MATMUL_TUNE: '0' })).toBe(false);
    expect(tuningEnabled('off', { GANPO_MATMUL_TUNE: '1' })).toBe(false);
    expect(tuningEnabled('on', {})).toBe(true);
  });
});

describe('matmul tuner cache', () => {
  it('queues a key once, tunes it once, and answers every shape of its bucket', async () => {
    const t = new MatmulTuner('adapter A', { candidates });
    const timer = fakeTimer('register4x8');
    t.request(P(300, 300, 300), 'f32');
    t.request(P(301, 296, 300), 'f32');
    expect(t.pending.length).toBe(1);
    expect(t.choice(P(300, 300, 300), 'f32')).toBeUndefined();
    await t.tunePending(timer, () => 'register4x4');
    expect(timer.calls).toBe(1);
    expect(t.pending.length).toBe(0);
    expect(t.choice(P(260, 500, 400), 'f32')).toBe('register4x8');
    t.request(P(300, 300, 300), 'f32');
    expect(t.pending.length).toBe(0);
  });

  it('falls back to the static rule when every candidate fails', async () => {
    const t = new MatmulTuner('adapter A', { candidates });
    t.request(P(8, 8, 8), 'f32');
    await t.tunePending(async (vs) => new Map(vs.map((v) => [v, Infinity])), () => 'register4x4');
    expect(t.choice(P(8, 8, 8), 'f32')).toBe('register4x4');
  });

  it('persists choices per adapter: the same adapter reuses them, another does not', async () => {
    const path = tmp();
    const a = new MatmulTuner('adapter A', { candidates, cachePath: path });
    a.request(P(64, 64, 64), 'f32');
    await a.tunePending(fakeTimer('subgroup8x4'), () => 'register4x4');
    const file = readCache(path)!;
    expect(file.version).toBe(TUNE_CACHE_VERSION);
    expect(Object.keys(file.adapters)).toEqual(['adapter A']);

    const again = new MatmulTuner('adapter A', { candidates, cachePath: path });
    expect(again.choice(P(64, 64, 64), 'f32')).toBe('subgroup8x4');
    const other = new MatmulTuner('adapter B', { candidates, cachePath: path });
    expect(other.choice(P(64, 64, 64), 'f32')).toBeUndefined();

    // B's tuning merges into the file without dropping A's entries.
    other.request(P(64, 64, 64), 'f32');
    await other.tunePending(fakeTimer('register4x4'), () => 'register4x4');
    const merged = readCache(path)!;
    expect(Object.keys(merged.adapters).sort()).toEqual(['adapter A', 'adapter B']);
    expect(JSON.parse(readFileSync(path, 'utf8')).adapters['adapter A']).toEqual(a.entries());
  });

  it('ignores a corrupt or other-version file and unknown variant names', () => {
    const path = tmp();
    writeFileSync(path, '{ not json');
    expect(new MatmulTuner('A', { candidates, cachePath: path }).entries()).toEqual({});
    writeFileSync(path, JSON.stringify({ version: TUNE_CACHE_VERSION + 1, adapters: { A: { k: 'register4x4' } } }));
    expect(new MatmulTuner('A', { candidates, cachePath: path }).entries()).toEqual({});
    writeFileSync(path, JSON.stringify({ version: TUNE_CACHE_VERSION, adapters: { A: { k1: 'register4x4', k2: 'gone9x9' } } }));
    expect(new MatmulTuner('A', { candidates, cachePath: path }).entries()).toEqual({ k1: 'register4x4' });
  });
});

async function matmulOn(backend: WebGPUBackend, p: MatmulParams, a: Float32Array, b: Float32Array): Promise<Float32Array> {
  const sa = backend.upload('f32', a);
  const sb = backend.upload('f32', b);
  const out = backend.matmul(sa, sb, p);
  const data = (await backend.read(out)) as Float32Array;
  for (const s of [sa, sb, out]) backend.free(s);
  return data;
}

const vals = (n: number, seed: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 12.9898 + seed) * 0.5);

describeGpu('matmul tuning and precision on the device', () => {
  const p = P(36, 20, 12, { transB: true });
  const a = vals(36 * 12, 1);
  const b = vals(20 * 12, 2);
  const want = cpu.readSync(cpu.matmul(cpu.upload('f32', a), cpu.upload('f32', b), p));

  it('tunes a new shape at the next readback and keeps results within f32 tolerance', async () => {
    const path = tmp();
    const backend = await WebGPUBackend.create({ matmulTuning: 'on', matmulTuneCache: path });
    try {
      expectClose(await matmulOn(backend, p, a, b), want, 1e-5, 1e-5, 'first (static rule)');
      const chosen = backend.matmulTuner!.choice(p, 'f32');
      expect(chosen).toBeDefined();
      expectClose(await matmulOn(backend, p, a, b), want, 1e-5, 1e-5, `tuned (${chosen})`);
      expect(Object.values(readCache(path)!.adapters[backend.describe()]!)).toContain(chosen);
      backend.setMatmulTuning(false);
      expect(backend.matmulTuner).toBeNull();
    } finally {
      backend.destroy();
    }
  });

  it("'medium' precision multiplies f16-rounded operands (f16 error), 'highest' is f32", async () => {
    if (!gpu.device.features.has('shader-f16')) {
      expect(() => gpu.setMatmulPrecision('medium')).toThrow(/shader-f16/);
      return;
    }
    try {
      gpu.setMatmulPrecision('medium');
      expect(gpu.matmulPrecision).toBe('medium');
      const got = await matmulOn(gpu, p, a, b);
      // Each operand rounds with relative error ≤ 2^-11; k = 12 products of |x| ≤ 0.5.
      expectClose(got, want, 12 * 0.25 * 2 * 2 ** -11, 0, 'f16 operands');
      expect(Array.from(got)).not.toEqual(Array.from(want));
    } finally {
      gpu.setMatmulPrecision('highest');
    }
    expectClose(await matmulOn(gpu, p, a, b), want, 1e-5, 1e-5, 'highest');
    expect(() => gpu.setMatmulPrecision('low' as never)).toThrow(/highest, high, medium/);
  });
});
