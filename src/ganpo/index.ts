// Preference optimization with the GANPO regularizer: data, losses, critics, trainer, evaluation.

export * from './jsonl.js';
export * from './data.js';
export * from './logprobs.js';
export * from './losses.js';
export * from './adversarial.js';
export * from './regularizer.js';
export * from './trainer.js';
export * from './loop.js';
export * from './refcache.js';
export * from './evaluate.js';
export * from './oracle.js';
export * from './task.js';
export { runStudy, defaultStudy, DEFAULT_METHODS, FULL_METHODS, type StudyConfig, type StudyResult, type MethodResult } from './study.js';
