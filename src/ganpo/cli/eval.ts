// `ganpo eval`: held-out preference metrics of a model on a JSONL file (against a reference), and
// optionally oracle-scored samples on the embedded task's held-out prompts.

import { loadModel } from '../../nn/lm.js';
import { readPreferenceJsonl } from '../jsonl.js';
import { tokenizePairs } from '../data.js';
import { defaultBaseLoss, BASE_LOSSES, type BaseLossKind } from '../losses.js';
import { defaultTrainConfig, PreferenceTrainer } from '../trainer.js';
import { sentencePrompts } from '../task.js';
import { klFromReference, rewards, sampleContinuations, textStats, continuationText } from '../evaluate.js';
import { helpText, parseArgs, UsageError, type FlagSpec } from './args.js';
import { BACKEND_FLAG, HELP_FLAG, setupBackend } from './common.js';

const FLAGS: FlagSpec[] = [
  { name: 'model', type: 'string', help: 'model to evaluate' },
  { name: 'reference', type: 'string', help: 'reference model', default: 'models/base/model.safetensors' },
  { name: 'data', type: 'string', help: 'preference JSONL: report loss, reward accuracy and margins' },
  { name: 'loss', type: 'enum', values: BASE_LOSSES, help: 'loss whose metrics to report', default: 'dpo' },
  { name: 'beta', type: 'number', help: 'β', min: 0 },
  { name: 'sentiment', type: 'boolean', help: "score samples on the embedded task's held-out prompts with the AFINN oracle", default: false },
  { name: 'prompts', type: 'int', help: 'held-out prompts for --sentiment', default: 96, min: 1 },
  { name: 'temperature', type: 'number', help: 'sampling temperature for --sentiment', default: 1, min: 0 },
  { name: 'new-tokens', type: 'int', help: 'tokens per sample for --sentiment', default: 16, min: 1 },
  { name: 'batch', type: 'int', help: 'pairs per batch', default: 8, min: 1 },
  BACKEND_FLAG,
  HELP_FLAG,
];

export async function evalCommand(argv: string[]): Promise<number> {
  const { values: v } = parseArgs(argv, FLAGS);
  if (v.help) {
    process.stdout.write(helpText('ganpo eval --model <file> [--data <file.jsonl>] [--sentiment] [options]', 'Evaluate a model against a reference.', FLAGS));
    return 0;
  }
  if (!v.model) throw new UsageError('--model is required');
  if (!v.data && !v.sentiment) throw new UsageError('nothing to evaluate: give --data <file.jsonl> and/or --sentiment');
  const records = v.data ? await readPreferenceJsonl(String(v.data)) : [];
  const backend = await setupBackend(v.backend, true);
  const policy = await loadModel(String(v.model), { backend });
  const ref = await loadModel(String(v.reference), { backend });
  if (policy.tokenizer.fingerprint() !== ref.tokenizer.fingerprint()) throw new Error(`tokenizer mismatch between ${v.model} and ${v.reference}`);
  const out: Record<string, number | string> = { model: String(v.model) };
  if (v.data) {
    const pairs = tokenizePairs(records, policy.tokenizer, { maxLength: policy.model.config.contextLength }).pairs;
    const base = defaultBaseLoss(v.loss as BaseLossKind);
    if (v.beta !== undefined) base.beta = Number(v.beta);
    const cfg = { ...defaultTrainConfig(base), batchSize: Math.min(Number(v.batch), pairs.length) };
    const trainer = new PreferenceTrainer(policy.model, ref.model, pairs, pairs, cfg, { padId: policy.tokenizer.eotId, backend });
    Object.assign(out, await trainer.evaluate());
  }
  if (v.sentiment) {
    const tok = policy.tokenizer;
    const prompts = sentencePrompts(tok, 320 + Number(v.prompts), 8, 7).slice(320).map((p) => p.ids);
    const samples = await sampleContinuations(policy.model, tok, prompts, { temperature: Number(v.temperature), maxNewTokens: Number(v['new-tokens']), seed: 4242 });
    const r = rewards(tok, samples);
    const stats = textStats(samples.map((s) => continuationText(tok, s)), samples.map((s) => s.length));
    Object.assign(out, {
      'sentiment/reward': r.reduce((a, b) => a + b, 0) / r.length,
      'sentiment/kl': await klFromReference(policy.model, ref.model, prompts, samples, tok.eotId),
      'text/length': stats.length, 'text/distinct1': stats.distinct1, 'text/distinct2': stats.distinct2, 'text/repetition': stats.repetition,
    });
  }
  process.stdout.write(JSON.stringify(out, null, 2) + '\n');
  return 0;
}
