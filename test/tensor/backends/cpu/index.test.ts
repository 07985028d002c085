// A second CpuBackend instance, run in f32 through the shared property helpers exactly as a
// WebGPU suite would run them: gradients agree with the float64 reference within f32 tolerance.

import { describe, expect, it } from 'vitest';
import * as T from '../../../../src/tensor/index.js';
import { tensorArb } from '../../../helpers/arbitraries.js';
import { checkGradient, gradProperty, input, ints } from '../../../helpers/gradients.js';

const other = new T.CpuBackend();

/** A backend whose softmax backward is slightly off, standing in for a buggy kernel. */
class SkewedBackend extends T.CpuBackend {
  override softmaxBackward(y: T.Storage, dy: T.Storage, rows: number, cols: number, log: boolean): T.Storage {
    const out = super.softmaxBackward(y, dy, rows, cols, log);
    (out as unknown as { data: Float32Array }).data[0] += 0.05;
    return out;
  }
}

describe('CPU backend as "another backend" through the shared helpers', () => {
  it('f32 gradients of a composite (softmax, layerNorm, matmul, crossEntropy) agree with the f64 reference', async () => {
    await gradProperty(tensorArb({ minRank: 2, maxRank: 2, maxSize: 20 }), ({ shape, data }) => {
      const [n, c] = shape;
      return {
        fn: (x, t) => {
          const ln = T.layerNorm(x, T.ones([c], { backend: x.backend, dtype: x.dtype }), T.zeros([c], { backend: x.backend, dtype: x.dtype }));
          return T.crossEntropy(T.matmul(T.softmax(ln), T.transpose(ln)), t);
        },
        inputs: [input(data, shape), ints(Array.from({ length: n }, (_, i) => i % n), [n])],
      };
    }, { backend: other, numRuns: 20 });
  });

  it('the non-CPU path first gradchecks the float64 reference, so a wrong backward fails there', async () => {
    const wrong = T.defineOp({ name: 'wrong', forward: (x) => T.square(x), backward: (g, { inputs: [x] }) => [T.mul(g, x)] });
    await expect(checkGradient({ fn: wrong, inputs: [input([1, 2], [2])] }, other)).rejects.toThrowError(/gradcheck FAILED: worst element input 0/);
  });

  it('a backend whose analytic gradient disagrees with the float64 reference is reported', async () => {
    await expect(checkGradient({ fn: (x) => T.softmax(x), inputs: [input([0.1, 0.5, -0.3], [3])] }, new SkewedBackend())).rejects.toThrowError(
      /gradient of input 0 on cpu: element 0/,
    );
  });
});
