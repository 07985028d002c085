// ganpo: preference optimization with the GANPO latent adversarial regularizer, on a tensor and
// autodiff engine whose GPU kernels are WGSL compute shaders (WebGPU through Dawn).

export * from './tensor/index.js';
export * from './nn/index.js';
export * from './ganpo/index.js';
