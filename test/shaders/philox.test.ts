// The WGSL Philox helpers on a real WebGPU device agree with the TypeScript reference: raw blocks,
// uniforms, Bernoulli masks and dropout blocks bit for bit, normals within a small absolute tolerance.
// Without an adapter it skips with a printed reason, or fails under GANPO_REQUIRE_WEBGPU=1.

import { afterAll, describe, expect, it } from 'vitest';
import { philoxWGSL } from '../../src/shaders/philox.js';
import {
  bernoulliThreshold,
  normalAt,
  dropoutUniformAt,
  philox4x32,
  seedToKey,
  splitOffset,
  uniformAt,
  type PhiloxKey,
} from '../../src/tensor/random/philox.js';
import { adapterOrSkip } from '../helpers/webgpuEnv.js';

const adapter = await adapterOrSkip('philox WGSL tests');
const device = adapter ? await adapter.requestDevice() : undefined;

afterAll(() => device?.destroy());

const WORKGROUP = 64;

// Dispatch geometry: x covers elements in workgroups of 64, y is the case (one key + offset each).
/** u32 words written per element. */
const STRIDE = 15;
const kernel = /* wgsl */ `
${philoxWGSL}
const STRIDE = ${STRIDE}u;

struct Case { key: vec2<u32>, offsetLo: u32, offsetHi: u32, threshold: u32, pad0: u32, pad1: u32, pad2: u32 }

@group(0) @binding(0) var<storage, read> cases: array<Case>;
@group(0) @binding(1) var<storage, read_write> out: array<u32>;
@group(0) @binding(2) var<uniform> n: vec4<u32>;

// Per element: 4 raw Philox words of counter offset + i, uniform, normal (as bits), mask, then the
// 4 words of dropout block floor(offset / 4) + i and the uniform of each (as bits).
@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x;
  if (i >= n.x) { return; }
  let c = cases[gid.y];
  let base = (gid.y * n.x + i) * STRIDE;
  let d = philoxDropoutBlock(c.key, c.offsetLo, c.offsetHi, i);
  for (var lane = 0u; lane < 4u; lane = lane + 1u) {
    out[base + 7u + lane] = d[lane];
    out[base + 11u + lane] = bitcast<u32>(philoxUnit(d[lane]));
  }
  let w = philox4x32(philoxCounter(c.offsetLo, c.offsetHi, i), c.key);
  out[base + 0u] = w.x;
  out[base + 1u] = w.y;
  out[base + 2u] = w.z;
  out[base + 3u] = w.w;
  out[base + 4u] = bitcast<u32>(philoxUniform(c.key, c.offsetLo, c.offsetHi, i));
  out[base + 5u] = bitcast<u32>(philoxNormal(c.key, c.offsetLo, c.offsetHi, i));
  out[base + 6u] = select(0u, 1u, philoxBernoulli(c.key, c.offsetLo, c.offsetHi, i, c.threshold));
}
`;

interface Case {
  key: PhiloxKey;
  offset: number;
  p: number;
}

async function runCases(dev: GPUDevice, cases: Case[], n: number): Promise<Uint32Array> {
  const caseData = new Uint32Array(cases.length * 8);
  cases.forEach((c, k) => {
    caseData.set([c.key[0], c.key[1], ...splitOffset(c.offset), bernoulliThreshold(c.p)], k * 8);
  });
  const outBytes = cases.length * n * STRIDE * 4;
  const caseBuf = dev.createBuffer({ size: caseData.byteLength, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
  const outBuf = dev.createBuffer({ size: outBytes, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
  const sizeBuf = dev.createBuffer({ size: 16, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
  const readBuf = dev.createBuffer({ size: outBytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  dev.queue.writeBuffer(caseBuf, 0, caseData);
  dev.queue.writeBuffer(sizeBuf, 0, Uint32Array.of(n, 0, 0, 0));

  dev.pushErrorScope('validation');
  const module = dev.createShaderModule({ code: kernel });
  const pipeline = dev.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
  const bindGroup = dev.createBindGroup({
    layout: pipeline.getBindGroupLayout(0),
    entries: [
      { binding: 0, resource: { buffer: caseBuf } },
      { binding: 1, resource: { buffer: outBuf } },
      { binding: 2, resource: { buffer: sizeBuf } },
    ],
  });
  const encoder = dev.createCommandEncoder();
  const pass = encoder.beginComputePass();
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, bindGroup);
  pass.dispatchWorkgroups(Math.ceil(n / WORKGROUP), cases.length);
  pass.end();
  encoder.copyBufferToBuffer(outBuf, 0, readBuf, 0, outBytes);
  dev.queue.submit([encoder.finish()]);
  const error = await dev.popErrorScope();
  if (error) throw new Error(`philox test kernel: ${error.message}`);

  await readBuf.mapAsync(GPUMapMode.READ);
  const result = new Uint32Array(readBuf.getMappedRange().slice(0));
  readBuf.unmap();
  for (const b of [caseBuf, outBuf, sizeBuf, readBuf]) b.destroy();
  return result;
}

describe.skipIf(!device)('philox WGSL', () => {
  it('blocks, uniforms, masks and dropout blocks are bit-identical to the CPU, normals within 1e-6 * (1 + |z|)', async () => {
    const dev = device!;
    const n = 4096;
    const cases: Case[] = [
      { key: [0, 0], offset: 0, p: 0.5 },
      { key: [0xffffffff, 0xffffffff], offset: 2 ** 32 - 1000, p: 0.1 }, // carry into the high word
      { key: seedToKey(0x243f6a8885a308d3n), offset: 2 ** 33 - 7, p: 0.9 },
      { key: seedToKey(42), offset: 2 ** 53 - n, p: 1 / 3 },
      { key: seedToKey(123456789), offset: 987654321, p: 0 },
      { key: seedToKey(7), offset: 5 * 2 ** 32 - 2048, p: 1 },
      { key: seedToKey(8), offset: 2 ** 34 - 4 * 1000 - 3, p: 0.5 }, // dropout block index carries at 2^32
    ];
    const out = await runCases(dev, cases, n);
    const asFloat = new Float32Array(out.buffer);

    let worstNormal = 0;
    cases.forEach((c, k) => {
      const threshold = bernoulliThreshold(c.p);
      for (let i = 0; i < n; i++) {
        const base = (k * n + i) * STRIDE;
        const counter = c.offset + i;
        const expected = philox4x32([counter >>> 0, Math.floor(counter / 2 ** 32), 0, 0], c.key);
        const got = Array.from(out.subarray(base, base + 4));
        if (got.some((w, j) => w !== expected[j])) {
          expect.fail(`case ${k} element ${i}: GPU block ${got.join(',')} != CPU ${expected.join(',')}`);
        }
        const u = uniformAt(c.key, c.offset, i);
        if (asFloat[base + 4] !== u) expect.fail(`case ${k} element ${i}: uniform ${asFloat[base + 4]} != ${u}`);
        const keep = (expected[0] >>> 8) < threshold ? 1 : 0;
        if (out[base + 6] !== keep || keep !== (u < c.p ? 1 : 0)) {
          expect.fail(`case ${k} element ${i}: mask ${out[base + 6]} != ${keep}`);
        }
        const b = Math.floor(c.offset / 4) + i;
        const block = philox4x32([b >>> 0, Math.floor(b / 2 ** 32), 1, 0], c.key);
        for (let lane = 0; lane < 4; lane++) {
          if (out[base + 7 + lane] !== block[lane]) expect.fail(`case ${k} dropout block ${b} lane ${lane}: ${out[base + 7 + lane]} != ${block[lane]}`);
          if (4 * b + lane >= 2 ** 53) continue; // past the stream (the last case's blocks run on)
          const du = dropoutUniformAt(c.key, 4 * b + lane);
          if (asFloat[base + 11 + lane] !== du) expect.fail(`case ${k} dropout position ${4 * b + lane}: ${asFloat[base + 11 + lane]} != ${du}`);
        }
        const z = normalAt(c.key, c.offset, i);
        worstNormal = Math.max(worstNormal, Math.abs(asFloat[base + 5]! - z) / (1 + Math.abs(z)));
      }
    });
    // f32 log/sqrt/cos against the CPU's f64: on lavapipe the worst |gpu - cpu| / (1 + |z|) is
    // about 3e-7. Absolute plus relative, because near z = 0 relative error means nothing.
    expect(worstNormal).toBeLessThan(1e-6);
  });
});
