import { expect, test } from 'vitest';
import fc from 'fast-check';
import { matmulInto } from '../../../../src/tensor/backends/cpu/matmul.js';

test('the blocked CPU matmul equals the naive triple loop for every shape and transpose flag', () => {
  fc.assert(fc.property(fc.integer({ min: 1, max: 9 }), fc.integer({ min: 1, max: 9 }), fc.integer({ min: 0, max: 9 }), fc.boolean(), fc.boolean(), (m, n, k, ta, tb) => {
    const A = Float64Array.from({ length: m * k + 3 }, (_, i) => Math.sin(i * 1.7));
    const B = Float64Array.from({ length: k * n + 5 }, (_, i) => Math.cos(i * 0.3));
    const out = new Float64Array(m * n + 2);
    matmulInto(A, 3, B, 5, out, 2, m, n, k, ta, tb, new Float64Array(4 * n));
    for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) {
      let s = 0;
      for (let kk = 0; kk < k; kk++) s += A[3 + (ta ? kk * m + i : i * k + kk)] * B[5 + (tb ? j * k + kk : kk * n + j)];
      expect(out[2 + i * n + j]).toBeCloseTo(s, 12);
    }
  }), { numRuns: 200 });
});
