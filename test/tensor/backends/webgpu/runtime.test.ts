// The WebGPU runtime: pooled memory stays flat over a training-like loop, dispatches are batched
// into few submits, user kernels run through runKernel, WGSL errors name the kernel and the line,
// and initBackend picks and installs a backend.

import fc from 'fast-check';
import { afterAll, expect, it } from 'vitest';
import type { Kernel } from '../../../../src/shaders/kernel.js';
import { grid1d, packUniforms } from '../../../../src/shaders/kernel.js';
import { BufferPool, bucketBytes } from '../../../../src/tensor/backends/webgpu/pool.js';
import { isSoftwareAdapter } from '../../../../src/tensor/backends/webgpu/device.js';
import { WebGPUBackend } from '../../../../src/tensor/backends/webgpu/index.js';
import { initBackend } from '../../../../src/tensor/backends/select.js';
import { cpu as cpuBackend, getBackend, gelu, layerNorm, matmul, mean, setBackend, softmax, tensor, tidy, valueAndGrad } from '../../../../src/tensor/index.js';
import { describeGpu, gpu } from '../../../helpers/webgpu.js';

const doubler: Kernel = {
  name: 'user.doubler',
  code: `struct U { n: u32, pad0: u32, pad1: u32, pad2: u32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> xs: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  if (id.x < u.n) { out[id.x] = 2.0 * xs[id.x]; }
}`,
  storage: ['read', 'read_write'],
};

it('isSoftwareAdapter recognises fallback adapters and CPU drivers by name, not hardware', () => {
  const info = (o: Partial<GPUAdapterInfo>) => ({ vendor: '', architecture: '', device: '', description: '', ...o }) as GPUAdapterInfo;
  expect(isSoftwareAdapter(info({ vendor: 'mesa', device: 'llvmpipe (LLVM 15)' }))).toBe(true);
  expect(isSoftwareAdapter(info({ description: 'SwiftShader Device (Subzero)' }))).toBe(true);
  expect(isSoftwareAdapter(info({ architecture: 'software' }))).toBe(true);
  expect(isSoftwareAdapter(info({ isFallbackAdapter: true } as Partial<GPUAdapterInfo>))).toBe(true);
  expect(isSoftwareAdapter(info({ vendor: 'nvidia', architecture: 'hopper', description: 'NVIDIA H100 80GB HBM3' }))).toBe(false);
});

describeGpu('webgpu runtime', () => {
  it('the backend exposes whether its adapter is a software driver, consistent with describe()', () => {
    expect(gpu.isSoftwareAdapter).toBe(/llvmpipe|lavapipe|swiftshader|software/i.test(gpu.describe()));
  });

  it('pool buckets round up to powers of two (min 16 bytes), then to 1/16 steps above 1 MiB', () => {
    expect([bucketBytes(0), bucketBytes(17), bucketBytes(1024), bucketBytes((1 << 20) + 1)]).toEqual([16, 32, 1024, (1 << 20) + (1 << 17)]);
  });

  it('liveBytes and pooledBytes stay flat over 200 forward/backward steps inside tidy()', async () => {
    const w = tensor(Array.from({ length: 48 }, (_, i) => Math.sin(i)), [8, 6], { backend: gpu });
    const g = tensor(new Array(6).fill(1), [6], { backend: gpu });
    const b = tensor(new Array(6).fill(0), [6], { backend: gpu });
    const x = tensor(Array.from({ length: 32 }, (_, i) => Math.cos(i)), [4, 8], { backend: gpu });
    const samples: number[] = [];
    for (let step = 0; step < 200; step++) {
      tidy(() => {
        const { grads } = valueAndGrad((w2) => mean(softmax(gelu(layerNorm(matmul(x, w2), g, b)))))(w);
        return grads;
      }).forEach((t) => t.dispose());
      if (step % 20 === 19) {
        await gpu.sync();
        const m = gpu.memory();
        samples.push(m.liveBytes + m.pooledBytes);
      }
    }
    expect(new Set(samples.slice(1)).size, `memory samples ${samples}`).toBe(1);
    const { liveBuffers } = gpu.memory();
    expect(liveBuffers).toBe(4); // w, g, b, x
    for (const t of [w, g, b, x]) t.dispose();
  });

  it('dispatches are batched: 100 ops then one read make one submit', async () => {
    const x = gpu.upload('f32', [1, 2, 3]);
    gpu.flush();
    gpu.resetCounters();
    let y = x;
    for (let i = 0; i < 100; i++) {
      const next = gpu.unary('affine', y, [1, 1]);
      if (y !== x) gpu.free(y);
      y = next;
    }
    expect([...(await gpu.read(y))]).toEqual([101, 102, 103]);
    expect(gpu.counters()).toMatchObject({ dispatches: 100, submits: 1, readbacks: 1 });
    gpu.free(x);
    gpu.free(y);
  });

  it('the pool hands out its lowest free buffer of a size, whatever order they were freed in', () => {
    const pool = new BufferPool(gpu.device, GPUBufferUsage.STORAGE);
    const [a, b, c] = [pool.acquire(64), pool.acquire(64), pool.acquire(64)];
    for (const order of [[c, a, b], [b, c, a], [a, b, c]]) {
      order.forEach((x) => pool.release(x));
      pool.afterSubmit();
      // Identity, not deep equality (GPUBuffer objects have no own properties to compare).
      const got = [pool.acquire(64), pool.acquire(64), pool.acquire(64)];
      got.forEach((x, i) => expect(x === [a, b, c][i], `buffer ${i} after freeing in another order`).toBe(true));
    }
    // Until a submit, freed buffers are not handed out again.
    pool.release(a);
    expect(pool.acquire(64)).not.toBe(a);
    pool.releasePool();
  });

  it('the pool hands out its lowest free buffer of a size for any number freed, in any order, over several submits', () => {
    const pool = new BufferPool(gpu.device, GPUBufferUsage.STORAGE);
    const bufs = Array.from({ length: 40 }, () => pool.acquire(64));
    fc.assert(fc.property(fc.shuffledSubarray(bufs.map((_, i) => i), { minLength: 1 }), fc.integer({ min: 1, max: 4 }), (freed, submits) => {
      // Free them in the drawn order, spread over several submits.
      freed.forEach((i, k) => {
        pool.release(bufs[i]!);
        if ((k + 1) % Math.ceil(freed.length / submits) === 0) pool.afterSubmit();
      });
      pool.afterSubmit();
      const got = freed.map(() => pool.acquire(64));
      const want = [...freed].sort((x, y) => x - y).map((i) => bufs[i]!);
      got.forEach((x, k) => expect(x === want[k], `acquire ${k} of ${freed.length}`).toBe(true));
    }), { numRuns: 50 });
    pool.releasePool();
  });

  it('cached bind groups are keyed by their buffers: ops on reused pooled buffers, and on fresh ones after releasePool, compute the right values', async () => {
    const prev = getBackend();
    setBackend(gpu);
    try {
      for (let round = 0; round < 3; round++) {
        for (let i = 0; i < 4; i++) {
          // The same sizes every time: the pool hands back the same buffers, the cache the same groups.
          const a = tensor([i, i + 1, i + 2, round], [4]);
          const b = tensor([1, 2, 3, 4], [4]);
          const y = tidy(() => gelu(softmax(a).add(b)));
          const want = tidy(() => {
            const c = cpuBackend;
            return gelu(softmax(tensor([i, i + 1, i + 2, round], [4], { backend: c })).add(tensor([1, 2, 3, 4], [4], { backend: c })));
          });
          const [got, exp] = [await y.data(), await want.data()];
          got.forEach((v, j) => expect(v).toBeCloseTo(exp[j]!, 5));
          for (const t of [a, b, y, want]) t.dispose();
        }
        // Destroys the pooled buffers: groups that bound them must not be used again.
        gpu.releasePool();
      }
    } finally {
      setBackend(prev);
    }
  });

  it('runKernel runs a user WGSL kernel on backend storages', async () => {
    const x = gpu.upload('f32', [1, 2, 3, 4, 5]);
    const out = gpu.alloc('f32', 5);
    gpu.runKernel({ kernel: doubler, uniforms: packUniforms([['u32', 5]]), workgroups: grid1d(5, 64) }, [x], [out]);
    expect([...(await gpu.read(out))]).toEqual([2, 4, 6, 8, 10]);
    expect(() => gpu.runKernel({ kernel: doubler, uniforms: packUniforms([['u32', 5]]), workgroups: [1, 1, 1] }, [x], [x])).toThrow(/written and also bound/);
    gpu.free(x);
    gpu.free(out);
  });

  it('a WGSL error throws an Error naming the kernel, the line, the message and the source line', async () => {
    const broken: Kernel = { ...doubler, name: 'user.broken', code: doubler.code.replace('2.0 * xs[id.x]', '2.0 * xs[id.x] + undefinedThing') };
    const x = gpu.upload('f32', [1]);
    const out = gpu.alloc('f32', 1);
    const launch = { kernel: broken, uniforms: packUniforms([['u32', 1]]), workgroups: [1, 1, 1] as const };
    gpu.runKernel(launch, [x], [out]);
    const err = await gpu.read(out).then(() => null, (e: unknown) => e as Error);
    expect(err?.message).toMatch(/user\.broken/);
    expect(err?.message).toMatch(/line 7:\d+: .*undefinedThing/);
    expect(err?.message).toMatch(/out\[id\.x\] = 2\.0 \* xs\[id\.x\] \+ undefinedThing/);
    // Later uses fail at once with the same message, and the backend keeps working for others.
    expect(() => gpu.runKernel(launch, [x], [out])).toThrow(/user\.broken[\s\S]*line 7/);
    expect([...(await gpu.read(gpu.unary('neg', x)))]).toEqual([-1]);
    gpu.free(x);
    gpu.free(out);
  });

  it('debug mode reports a dispatch validation error naming the kernel', async () => {
    const dbg = await WebGPUBackend.create({ debug: true });
    try {
      const x = dbg.upload('f32', [1, 2]);
      const out = dbg.alloc('f32', 2);
      // Too many workgroups for the device: a dispatch-time validation error, not a compile error.
      dbg.runKernel({ kernel: doubler, uniforms: packUniforms([['u32', 2]]), workgroups: [70000, 1, 1] }, [x], [out]);
      await expect(dbg.sync()).rejects.toThrow(/user\.doubler/);
    } finally {
      dbg.destroy();
    }
  });
});

describeGpu('initBackend', () => {
  const before = getBackend();
  afterAll(() => setBackend(before));

  it("'cpu' installs the CPU backend; 'auto' and 'webgpu' install WebGPU when an adapter exists", async () => {
    expect(await initBackend('cpu')).toBe(cpuBackend);
    expect(getBackend()).toBe(cpuBackend);
    for (const choice of ['auto', 'webgpu'] as const) {
      const b = await initBackend(choice);
      expect(b.name).toBe('webgpu');
      expect(getBackend()).toBe(b);
      expect(b.describe()).toMatch(/^webgpu \(/);
      (b as WebGPUBackend).destroy();
    }
  });
});
