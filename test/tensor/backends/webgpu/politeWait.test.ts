// The polite wait: while politely() runs, each setImmediate first sleeps a little (so
// dawn.node's event poller does not spin a core) and still runs, in order; clearImmediate and
// promisify(setImmediate) keep working; outside politely() nothing sleeps. Then backend reads and
// syncs on the device, which wait politely on a software adapter, return the right values.

import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { politely, politeWaitFor, politeWaitStats, MIN_SLEEP_MS } from '../../../../src/tensor/backends/webgpu/politeWait.js';
import { describeGpu, gpu } from '../../../helpers/webgpu.js';

describe('polite wait', () => {
  it('sleeps before each immediate only while waiting; immediates still run in order; waits nest', async () => {
    const order: number[] = [];
    const before = politeWaitStats().sleeps;
    await politely(async () => {
      expect(politeWaitStats().waiting).toBe(1);
      const t0 = performance.now();
      await new Promise<void>((resolve) => {
        for (let i = 0; i < 5; i++) setImmediate(() => order.push(i));
        setImmediate(resolve);
      });
      expect(order).toEqual([0, 1, 2, 3, 4]);
      expect(performance.now() - t0).toBeGreaterThanOrEqual(6 * MIN_SLEEP_MS * 0.5);
      await politely(async () => expect(politeWaitStats().waiting).toBe(2));
    });
    expect(politeWaitStats().sleeps - before).toBe(6);
    expect(politeWaitStats().waiting).toBe(0);
    const after = politeWaitStats().sleeps;
    await new Promise<void>((r) => setImmediate(r));
    expect(politeWaitStats().sleeps).toBe(after);
  });

  it('clearImmediate cancels an immediate made during a wait; promisify(setImmediate) still works', async () => {
    let fired = false;
    await politely(async () => {
      const h = setImmediate(() => (fired = true));
      clearImmediate(h);
      await new Promise<void>((r) => setTimeout(r, 5));
      await expect(promisify(setImmediate)('x')).resolves.toBe('x');
    });
    expect(fired).toBe(false);
  });

  it('a failing wait still leaves the count at zero', async () => {
    await expect(politely(async () => { throw new Error('boom'); })).rejects.toThrow('boom');
    expect(politeWaitStats().waiting).toBe(0);
  });

  it('is on for software adapters by default; GANPO_POLITE_WAIT forces it', () => {
    expect(politeWaitFor(true, {})).toBe(true);
    expect(politeWaitFor(false, {})).toBe(false);
    expect(politeWaitFor(false, { GANPO_POLITE_WAIT: '1' })).toBe(true);
    expect(politeWaitFor(true, { GANPO_POLITE_WAIT: '0' })).toBe(false);
  });
});

describeGpu('polite wait on the device', () => {
  it('reads and syncs return the right values through polite waits', async () => {
    const x = gpu.upload('f32', Float32Array.from([1, 2, 3, 4]));
    const y = gpu.unary('exp', x);
    await gpu.sync();
    const got = await gpu.read(y);
    expect(Array.from(got as Float32Array).map((v) => Math.round(Math.log(v) * 1e5) / 1e5)).toEqual([1, 2, 3, 4]);
    expect(politeWaitStats().waiting).toBe(0);
    gpu.free(x);
    gpu.free(y);
  });
});
