// A language model on disk: the GPT's weights (Hugging Face GPT-2 names) with its config, its
// tokenizer and a free-form card in one safetensors file, so a model and its vocabulary never part.

import { GPT, type GPTConfig } from './gpt.js';
import { Tokenizer, type TokenizerDefinition } from './tokenizer.js';
import { arrayToTensor, loadCheckpoint, saveCheckpoint } from './checkpoint.js';
import type { Backend } from '../tensor/backend.js';
import { getBackend } from '../tensor/engine.js';

export interface ModelFileMetadata {
  format: 'ganpo-lm';
  version: 1;
  config: GPTConfig;
  tokenizer: TokenizerDefinition;
  /** Anything worth recording: corpus, steps, losses, time taken. */
  card?: Record<string, unknown>;
}

export interface LoadedModel {
  model: GPT;
  tokenizer: Tokenizer;
  metadata: ModelFileMetadata;
}

/** Writes model + tokenizer (+ card) atomically to one .safetensors file. */
export async function saveModel(path: string, model: GPT, tokenizer: Tokenizer, card: Record<string, unknown> = {}): Promise<void> {
  if (tokenizer.vocabSize !== model.config.vocabSize) {
    throw new Error(`saveModel: tokenizer has ${tokenizer.vocabSize} tokens but the model's vocabulary is ${model.config.vocabSize}`);
  }
  const meta: ModelFileMetadata = { format: 'ganpo-lm', version: 1, config: model.config, tokenizer: tokenizer.toJSON(), card };
  await saveCheckpoint(path, model.stateDict(), meta);
}

function checkConfig(c: unknown, file: string): GPTConfig {
  const o = c as Record<string, unknown> | null;
  for (const k of ['vocabSize', 'contextLength', 'dModel', 'nLayers', 'nHeads'] as const) {
    if (!o || !Number.isInteger(o[k]) || (o[k] as number) < 1) throw new Error(`${file}: model config field ${k} is missing or not a positive integer`);
  }
  if (typeof o!.dropout !== 'number') throw new Error(`${file}: model config field dropout is missing`);
  return o as unknown as GPTConfig;
}

/**
 * Loads a model file. A weight missing, unexpected, or of the wrong shape for the stored config
 * (a checkpoint from a different architecture) is an error naming the file and the tensor.
 */
export async function loadModel(path: string, opts: { backend?: Backend } = {}): Promise<LoadedModel> {
  const ckpt = await loadCheckpoint(path);
  const meta = ckpt.metadata as ModelFileMetadata | null;
  if (!meta || meta.format !== 'ganpo-lm') throw new Error(`${path}: not a ganpo language-model file (no ganpo-lm metadata)`);
  const config = checkConfig(meta.config, path);
  let tokenizer: Tokenizer;
  try {
    tokenizer = Tokenizer.fromJSON(meta.tokenizer);
  } catch (e) {
    throw new Error(`${path}: ${(e as Error).message}`);
  }
  if (tokenizer.vocabSize !== config.vocabSize) throw new Error(`${path}: tokenizer has ${tokenizer.vocabSize} tokens but the model config says ${config.vocabSize}`);
  const backend = opts.backend ?? getBackend();
  const model = new GPT(config, { backend });
  const state = new Map<string, ReturnType<typeof arrayToTensor>>();
  try {
    for (const [name, a] of ckpt.arrays) state.set(name, arrayToTensor(a, name, path, { backend, dtype: 'f32' }));
    model.loadStateDict(state, { strict: true });
  } catch (e) {
    model.dispose();
    throw new Error(`${path}: ${(e as Error).message}`);
  } finally {
    for (const t of state.values()) t.dispose();
  }
  return { model, tokenizer, metadata: { ...meta, config } };
}
