// Regression: a gradient tensor handed to two inputs at once (add's backward passes g through to
// both) must survive until both have consumed it, as in any residual connection.

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { add, backward, exp, mul, sum, tensor, tidy } from '../../src/tensor/index.js';

describe('backward', () => {
  it('differentiates x ↦ Σ (x² + exp(x)), whose add shares one gradient between two non-leaf inputs', () => {
    fc.assert(
      fc.property(fc.array(fc.double({ min: -1, max: 1, noNaN: true }), { minLength: 1, maxLength: 5 }), (xs) =>
        tidy(() => {
          const x = tensor(xs, undefined, { dtype: 'f64', requiresGrad: true });
          backward(sum(add(mul(x, x), exp(x))));
          Array.from(x.grad!.dataSync()).forEach((g, i) => expect(g).toBeCloseTo(2 * xs[i] + Math.exp(xs[i]), 12));
          x.grad!.dispose();
        }),
      ),
      { numRuns: 20 },
    );
  });
});
