/// <reference types="@webgpu/types" preserve="true" />
// The tensor engine's public API.

import './ops/methods.js';

export { Tensor, liveTensorCount, type NestedArray, type GradNode } from './tensor.js';
export type { DType, TypedArray } from './dtype.js';
export type { Backend, Storage, MemoryStats, UnaryOp, BinaryOp, ReduceOp, MatmulParams, MatmulSums, AdamWParams, AdamWUpdate } from './backend.js';
export { ShapeError, broadcastShapes, sizeOf, type Shape } from './shape.js';
export { cpu, getBackend, setBackend, manualSeed, defaultGenerator, setDefaultGenerator } from './engine.js';
export { CpuBackend } from './backends/cpu/index.js';
export { WebGPUBackend, type WebGPUBackendOptions } from './backends/webgpu/index.js';
export { initBackend, type BackendChoice } from './backends/select.js';
export { tidy, keep, scopeDepth, openScope, closeScope, type ScopeHandle } from './scope.js';
export { backward, noGrad, isGradEnabled, valueAndGrad, defineOp, record, type OpDefinition, type OpContext, type BackwardOptions } from './autograd.js';
export { gradcheck, type GradcheckOptions, type GradcheckResult } from './gradcheck.js';
export { defineKernel, defineKernelOp, type KernelSpec, type KernelOpSpec, type BackwardKernelSpec, type KernelInputSpec, type KernelOutputSpec } from './customKernel.js';
export { packUniforms, grid1d, flatIndexWGSL, type UniformField, type Kernel, type Launch } from '../shaders/kernel.js';
export * from './ops/creation.js';
export * from './ops/elementwise.js';
export * from './ops/reduce.js';
export * from './ops/movement.js';
export * from './ops/matmul.js';
export * from './ops/indexing.js';
export * from './ops/nn.js';
export * from './ops/packedAttention.js';
export * from './ops/spectral.js';
export * from './ops/convert.js';
export { Generator } from './random/philox.js';
