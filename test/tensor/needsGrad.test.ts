import { expect, test } from 'vitest';
import { tensor } from '../../src/index.js';

test('gradient routing is fixed when the op runs: unfreezing a parameter after the forward does not give it a gradient', () => {
  const w = tensor([1, 2], [2], { requiresGrad: true });
  const x = tensor([3, 4], [2], { requiresGrad: true });
  w.requiresGrad = false; // frozen during the forward, as a critic is during the generator loss
  const y = w.mul(x).sum();
  w.requiresGrad = true; // unfrozen before backward
  y.backward();
  expect(w.grad).toBeNull();
  expect([...x.grad!.dataSync()]).toEqual([1, 2]);
});
