// The neural-network layer of the library: modules, models, optimizers, checkpoints, tokenizer.

export * from './module.js';
export * from './layers.js';
export * from './attention.js';
export * from './gpt.js';
export * from './encoder.js';
export * from './spectralNorm.js';
export * from './critic.js';
export * from './optim.js';
export * as schedules from './schedules.js';
export type { Schedule } from './schedules.js';
export * as init from './init.js';
export * from './generate.js';
export * from './tokenizer.js';
export * from './safetensors.js';
export * from './checkpoint.js';
export * from './atomicWrite.js';
export * from './lm.js';
export * from './pretrain.js';
export { loadCorpus, splitSentences } from './corpus.js';
