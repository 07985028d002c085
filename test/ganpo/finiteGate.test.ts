// The device-side finiteness check that gates a critic update (trainer.ts finiteGate): 1 when the
// sum of squares of every tensor is finite, 0 for a NaN, an infinity, or squares past f32's range,
// on both backends (on WebGPU through the compare kernel, no readback inside the check).

import fc from 'fast-check';
import { expect, it } from 'vitest';
import { finiteGate } from '../../src/ganpo/trainer.js';
import { tensor, type Backend } from '../../src/tensor/index.js';
import { cpu, describeGpu, gpu } from '../helpers/webgpu.js';

async function gate(backend: Backend, parts: number[][]): Promise<number> {
  const xs = parts.map((p) => tensor(p, [p.length], { backend }));
  const g = finiteGate(xs);
  const v = (await g.data())[0];
  g.dispose();
  xs.forEach((x) => x.dispose());
  return v;
}

const finite = fc.array(fc.array(fc.double({ min: -1e15, max: 1e15, noNaN: true }), { minLength: 1, maxLength: 40 }), { minLength: 1, maxLength: 5 });
const bad = fc.constantFrom(NaN, Infinity, -Infinity, 1e30, -3e25);

for (const [name, backend] of [['cpu', () => cpu], ['webgpu', () => gpu]] as const) {
  describeGpu(`finiteGate on ${name}`, () => {
    it('1 for finite tensors whose squares stay in range, 0 once any element is NaN, infinite, or squares past f32', async () => {
      await fc.assert(fc.asyncProperty(finite, bad, fc.nat(), fc.nat(), async (parts, v, i, j) => {
        expect(await gate(backend(), parts)).toBe(1);
        const spoiled = parts.map((p) => [...p]);
        const k = i % spoiled.length;
        spoiled[k][j % spoiled[k].length] = v;
        expect(await gate(backend(), spoiled)).toBe(0);
      }), { numRuns: 25 });
    });
  });
}
