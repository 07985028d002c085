// Initial values for parameters, drawn from seeded counter-based generators so a model built
// from the same seed is the same model on every backend.

import { tidy } from '../tensor/scope.js';
import type { Shape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { full, rand, randn } from '../tensor/ops/creation.js';
import { affine } from '../tensor/ops/elementwise.js';
import type { ModuleOptions } from './module.js';

/** How a weight matrix is initialized. */
export type WeightInit =
  | { kind: 'normal'; std: number }
  | { kind: 'xavierUniform'; gain?: number }
  /** PyTorch's nn.Linear default: U(−1/√fan_in, 1/√fan_in). */
  | { kind: 'fanInUniform' };

function createOpts(opts: ModuleOptions) {
  return { dtype: opts.dtype, backend: opts.backend, generator: opts.generator };
}

/** N(mean, std²). */
export function normal(shape: Shape, std: number, opts: ModuleOptions = {}, mean = 0): Tensor {
  return tidy(() => affine(randn(shape, createOpts(opts)), std, mean));
}

/** U(lo, hi). */
export function uniform(shape: Shape, lo: number, hi: number, opts: ModuleOptions = {}): Tensor {
  return tidy(() => affine(rand(shape, createOpts(opts)), hi - lo, lo));
}

/**
 * Fans as PyTorch computes them: dim 1 is fan_in and dim 0 fan_out (times the receptive field of
 * any further dims). For a [in, out] Conv1D-layout weight they swap, which Xavier does not notice.
 */
export function fans(shape: Shape): { fanIn: number; fanOut: number } {
  if (shape.length < 2) throw new Error(`init: fans need a weight of rank >= 2, got [${shape.join(', ')}]`);
  const field = shape.slice(2).reduce((a, b) => a * b, 1);
  return { fanIn: shape[1] * field, fanOut: shape[0] * field };
}

/** Glorot/Xavier uniform: U(−a, a), a = gain·√(6 / (fan_in + fan_out)). */
export function xavierUniform(shape: Shape, opts: ModuleOptions = {}, gain = 1): Tensor {
  const { fanIn, fanOut } = fans(shape);
  const a = gain * Math.sqrt(6 / (fanIn + fanOut));
  return uniform(shape, -a, a, opts);
}

export function zeros(shape: Shape, opts: ModuleOptions = {}): Tensor {
  return full(shape, 0, { dtype: opts.dtype, backend: opts.backend });
}

export function ones(shape: Shape, opts: ModuleOptions = {}): Tensor {
  return full(shape, 1, { dtype: opts.dtype, backend: opts.backend });
}

/** A weight of the given shape; fanIn is passed explicitly because the layout decides it. */
export function weight(shape: Shape, init: WeightInit, fanIn: number, opts: ModuleOptions = {}): Tensor {
  switch (init.kind) {
    case 'normal':
      return normal(shape, init.std, opts);
    case 'xavierUniform':
      return xavierUniform(shape, opts, init.gain ?? 1);
    case 'fanInUniform': {
      const a = 1 / Math.sqrt(fanIn);
      return uniform(shape, -a, a, opts);
    }
  }
}
