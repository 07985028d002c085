// The fluent API: x.add(y).relu().sum() etc. Each method forwards to the function of the same
// name in the op files, so an op has one implementation.

import { backward, type BackwardOptions } from '../autograd.js';
import type { DType } from '../dtype.js';
import type { Shape } from '../shape.js';
import { Tensor } from '../tensor.js';
import * as C from './convert.js';
import * as E from './elementwise.js';
import * as M from './movement.js';
import * as N from './nn.js';
import * as R from './reduce.js';
import { matmul } from './matmul.js';
import type { Backend } from '../backend.js';

type T = E.TensorLike;

declare module '../tensor.js' {
  interface Tensor {
    add(b: T): Tensor; sub(b: T): Tensor; mul(b: T): Tensor; div(b: T): Tensor;
    maximum(b: T): Tensor; minimum(b: T): Tensor;
    eq(b: T): Tensor; ne(b: T): Tensor; lt(b: T): Tensor; le(b: T): Tensor; gt(b: T): Tensor; ge(b: T): Tensor;
    neg(): Tensor; exp(): Tensor; log(): Tensor; sqrt(): Tensor; rsqrt(): Tensor; abs(): Tensor; tanh(): Tensor;
    sigmoid(): Tensor; relu(): Tensor; softplus(): Tensor; logSigmoid(): Tensor; square(): Tensor;
    gelu(approximate?: 'none' | 'tanh'): Tensor; pow(p: number): Tensor; clamp(lo?: number, hi?: number): Tensor;
    sum(axes?: R.Axes, keepdim?: boolean): Tensor; mean(axes?: R.Axes, keepdim?: boolean): Tensor;
    max(axes?: R.Axes, keepdim?: boolean): Tensor; min(axes?: R.Axes, keepdim?: boolean): Tensor;
    logsumexp(axes?: R.Axes, keepdim?: boolean): Tensor; var(axes?: R.Axes, opts?: R.VarOptions): Tensor;
    reshape(shape: Shape): Tensor; flatten(): Tensor; permute(axes: readonly number[]): Tensor; transpose(a?: number, b?: number): Tensor;
    slice(axis: number, start: number, end?: number): Tensor; broadcastTo(shape: Shape): Tensor;
    unsqueeze(axis: number): Tensor; squeeze(axis?: number): Tensor; clone(): Tensor;
    matmul(b: Tensor): Tensor; softmax(axis?: number): Tensor; logSoftmax(axis?: number): Tensor;
    cast(dtype: DType): Tensor; detach(): Tensor; to(backend: Backend, dtype?: DType): Promise<Tensor>;
    /** Backpropagates from this tensor (a scalar, or with an output gradient). */
    backward(grad?: Tensor, options?: BackwardOptions): void;
  }
}

const P = Tensor.prototype;
P.add = function (b) { return E.add(this, b); };
P.sub = function (b) { return E.sub(this, b); };
P.mul = function (b) { return E.mul(this, b); };
P.div = function (b) { return E.div(this, b); };
P.maximum = function (b) { return E.maximum(this, b); };
P.minimum = function (b) { return E.minimum(this, b); };
P.eq = function (b) { return E.eq(this, b); };
P.ne = function (b) { return E.ne(this, b); };
P.lt = function (b) { return E.lt(this, b); };
P.le = function (b) { return E.le(this, b); };
P.gt = function (b) { return E.gt(this, b); };
P.ge = function (b) { return E.ge(this, b); };
P.neg = function () { return E.neg(this); };
P.exp = function () { return E.exp(this); };
P.log = function () { return E.log(this); };
P.sqrt = function () { return E.sqrt(this); };
P.rsqrt = function () { return E.rsqrt(this); };
P.abs = function () { return E.abs(this); };
P.tanh = function () { return E.tanh(this); };
P.sigmoid = function () { return E.sigmoid(this); };
P.relu = function () { return E.relu(this); };
P.softplus = function () { return E.softplus(this); };
P.logSigmoid = function () { return E.logSigmoid(this); };
P.square = function () { return E.square(this); };
P.gelu = function (approximate) { return E.gelu(this, approximate); };
P.pow = function (p) { return E.pow(this, p); };
P.clamp = function (lo, hi) { return E.clamp(this, lo, hi); };
P.sum = function (axes, keepdim) { return R.sum(this, axes, keepdim); };
P.mean = function (axes, keepdim) { return R.mean(this, axes, keepdim); };
P.max = function (axes, keepdim) { return R.max(this, axes, keepdim); };
P.min = function (axes, keepdim) { return R.min(this, axes, keepdim); };
P.logsumexp = function (axes, keepdim) { return R.logsumexp(this, axes, keepdim); };
P.var = function (axes, opts) { return R.variance(this, axes, opts); };
P.reshape = function (shape) { return M.reshape(this, shape); };
P.flatten = function () { return M.flatten(this); };
P.permute = function (axes) { return M.permute(this, axes); };
P.transpose = function (a, b) { return M.transpose(this, a, b); };
P.slice = function (axis, start, end) { return M.slice(this, axis, start, end); };
P.broadcastTo = function (shape) { return M.broadcastTo(this, shape); };
P.unsqueeze = function (axis) { return M.unsqueeze(this, axis); };
P.squeeze = function (axis) { return M.squeeze(this, axis); };
P.clone = function () { return M.clone(this); };
P.matmul = function (b) { return matmul(this, b); };
P.softmax = function (axis) { return N.softmax(this, axis); };
P.logSoftmax = function (axis) { return N.logSoftmax(this, axis); };
P.cast = function (dtype) { return C.cast(this, dtype); };
P.detach = function () { return C.detach(this); };
P.to = function (backend, dtype) { return C.toBackend(this, backend, dtype); };
P.backward = function (grad, options) { backward(this, grad, options); };
