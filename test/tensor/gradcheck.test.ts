// gradcheck itself: it must pass correct gradients and catch wrong ones, naming the input and element.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import * as T from '../../src/tensor/index.js';
import { tensorArb } from '../helpers/arbitraries.js';

const cube = T.defineOp({
  name: 'cube',
  forward: (x) => T.mul(T.square(x), x),
  backward: (g, { inputs: [x] }) => [T.mul(g, T.mul(T.square(x), 3))],
});

// Deliberately wrong: d(x³)/dx written as 2x² instead of 3x².
const badCube = T.defineOp({
  name: 'badCube',
  forward: (x) => T.mul(T.square(x), x),
  backward: (g, { inputs: [x] }) => [T.mul(g, T.mul(T.square(x), 2))],
});

// Wrong only for the second input: d(a·b)/db returned as a + 1.
const badMul = T.defineOp({
  name: 'badMul',
  forward: (a, b) => T.mul(a, b),
  backward: (g, { inputs: [a, b] }) => [T.mul(g, b), T.mul(g, T.add(a, 1))],
});

describe('gradcheck', () => {
  it('passes a correct hand-written backward on random inputs', () => {
    fc.assert(
      fc.property(tensorArb({ minRank: 1 }), ({ shape, data }) => {
        const r = T.tidy(() => T.gradcheck(cube, [T.tensor(data, shape, { dtype: 'f64' })]));
        expect(r.ok, r.report).toBe(true);
      }),
      { numRuns: 20 },
    );
  });

  it('catches a wrong backward: ok is false and the report names the input and flat index', () => {
    const r = T.tidy(() => T.gradcheck(badCube, [T.tensor([0.5, -1, 2], [3], { dtype: 'f64' })]));
    expect(r.ok).toBe(false);
    expect(r.worst).not.toBeNull();
    expect(r.worst!.input).toBe(0);
    expect(r.worst!.index).toBe(2); // the error 12·x²·|r| grows with |x|: largest at x = 2 unless r is tiny there
    expect(r.report).toMatch(/FAILED/);
    expect(r.report).toMatch(/input 0 \[3\] at flat index 2/);
  });

  it('blames the right input when only the second input\'s gradient is wrong', () => {
    const r = T.tidy(() => T.gradcheck(badMul, [T.tensor([1, 2], [2], { dtype: 'f64' }), T.tensor([3, 4], [2], { dtype: 'f64' })]));
    expect(r.ok).toBe(false);
    expect(r.worst!.input).toBe(1);
    expect(r.report).toMatch(/input 1 \[2\]/);
  });

  it('skips integer inputs and the inputs listed in skip', () => {
    const r = T.tidy(() =>
      T.gradcheck((x, t, y) => T.add(T.mul(x, T.cast(t, 'f64')), T.mul(badCube(y), 0)), [
        T.tensor([1, 2], [2], { dtype: 'f64' }),
        T.tensor([3, 4], [2], { dtype: 'i32' }),
        T.tensor([1, 1], [2], { dtype: 'f64' }),
      ], { skip: [2] }),
    );
    expect(r.ok, r.report).toBe(true);
  });

  it('leaves no tensor alive after it returns', () => {
    const before = T.liveTensorCount();
    T.gradcheck(cube, [T.tensor([0.5, 1.5], [2], { dtype: 'f64' })].map(T.keep));
    // the input itself is the only new tensor
    expect(T.liveTensorCount()).toBe(before + 1);
  });
});
