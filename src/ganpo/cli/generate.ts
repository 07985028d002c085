// `ganpo generate`: sample continuations of prompts from a model file.

import { readFileSync } from 'node:fs';
import { loadModel } from '../../nn/lm.js';
import { generate } from '../../nn/generate.js';
import { Generator } from '../../tensor/random/philox.js';
import { helpText, parseArgs, UsageError, type FlagSpec } from './args.js';
import { BACKEND_FLAG, HELP_FLAG, setupBackend } from './common.js';

const FLAGS: FlagSpec[] = [
  { name: 'model', type: 'string', help: 'model file', default: 'models/base/model.safetensors' },
  { name: 'prompt', type: 'string', help: 'prompt text (or give prompts as positional arguments)' },
  { name: 'prompts-file', type: 'string', help: 'a file with one prompt per line' },
  { name: 'max-new-tokens', type: 'int', help: 'tokens to sample', default: 32, min: 1 },
  { name: 'temperature', type: 'number', help: 'sampling temperature (0 = greedy)', default: 1, min: 0 },
  { name: 'top-k', type: 'int', help: 'keep the k most likely tokens (0 = all)', default: 0, min: 0 },
  { name: 'top-p', type: 'number', help: 'nucleus probability mass (1 = all)', default: 1, min: 0 },
  { name: 'samples', type: 'int', help: 'samples per prompt', default: 1, min: 1 },
  { name: 'seed', type: 'int', help: 'sampling seed', default: 0, min: 0 },
  { name: 'json', type: 'boolean', help: 'print JSON lines {prompt, completion}', default: false },
  BACKEND_FLAG,
  HELP_FLAG,
];

export async function generateCommand(argv: string[]): Promise<number> {
  const { values: v, positional } = parseArgs(argv, FLAGS);
  if (v.help) {
    process.stdout.write(helpText('ganpo generate [--model <file>] [--prompt <text> | <prompt>...] [options]', 'Sample continuations from a model.', FLAGS));
    return 0;
  }
  const prompts = [...(v.prompt ? [String(v.prompt)] : []), ...positional];
  if (v['prompts-file']) prompts.push(...readFileSync(String(v['prompts-file']), 'utf8').split('\n').filter((l) => l.trim()));
  if (prompts.length === 0) throw new UsageError('give a prompt: --prompt <text>, positional prompts, or --prompts-file');
  const backend = await setupBackend(v.backend, Boolean(v.json));
  const { model, tokenizer } = await loadModel(String(v.model), { backend });
  const ctx = model.config.contextLength;
  const maxNew = Number(v['max-new-tokens']);
  if (maxNew >= ctx) throw new UsageError(`--max-new-tokens ${maxNew} must be below the context length ${ctx}`);
  const rows = prompts.flatMap((p) => Array.from({ length: Number(v.samples) }, () => p));
  // A prompt longer than the context window keeps its last tokens (documented truncation).
  const ids = rows.map((p) => {
    const t = tokenizer.encode(p);
    return t.length === 0 ? [tokenizer.eotId] : t.slice(Math.max(0, t.length - (ctx - maxNew)));
  });
  const out = await generate(model, ids, {
    maxNewTokens: maxNew, temperature: Number(v.temperature), topK: Number(v['top-k']), topP: Number(v['top-p']),
    eosTokenId: tokenizer.eotId, generator: new Generator(Number(v.seed)),
  });
  rows.forEach((p, i) => {
    const completion = tokenizer.decode(out[i]);
    process.stdout.write(v.json ? JSON.stringify({ prompt: p, completion }) + '\n' : `${p}\x1b[1m${completion}\x1b[0m\n\n`);
  });
  return 0;
}
