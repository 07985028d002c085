// `ganpo train`: preference optimization (DPO, IPO, hinge, robust, SimPO; optionally with GANPO)
// of a model file on a user's TRL-style JSONL file.

import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadModel, saveModel } from '../../nn/lm.js';
import { loadCheckpoint } from '../../nn/checkpoint.js';
import { readPreferenceJsonl } from '../jsonl.js';
import { splitHeldOut, tokenizePairs } from '../data.js';
import { PreferenceTrainer } from '../trainer.js';
import { trainLoop } from '../loop.js';
import { loadOrBuildReferenceCache } from '../refcache.js';
import { applyConfigFile, helpText, parseArgs, UsageError } from './args.js';
import { BACKEND_FLAG, ensureDir, HELP_FLAG, setupBackend } from './common.js';
import { TRAIN_FLAGS, trainConfigFromFlags } from './trainFlags.js';

const FLAGS = [...TRAIN_FLAGS, BACKEND_FLAG, HELP_FLAG];

export async function trainCommand(argv: string[]): Promise<number> {
  const parsed = parseArgs(argv, FLAGS);
  if (parsed.values.help) {
    process.stdout.write(helpText('ganpo train --data <file.jsonl> [--model <model.safetensors>] [options]',
      'Train a policy with a preference loss, optionally regularized by GANPO, on TRL-style JSONL data.', FLAGS));
    return 0;
  }
  if (parsed.values.config) applyConfigFile(String(parsed.values.config), parsed, FLAGS);
  const v = parsed.values;
  if (!v.data) throw new UsageError('--data is required (a JSONL file of {"prompt", "chosen", "rejected"})');
  // Validate everything before any work: bad data fails here and nothing is written.
  const records = await readPreferenceJsonl(String(v.data));
  const backend = await setupBackend(v.backend);
  const { model: policy, tokenizer, metadata } = await loadModel(String(v.model), { backend });
  const { model: reference } = await loadModel(String(v.model), { backend });
  const ctx = policy.config.contextLength;
  const maxLength = v['max-length'] !== undefined ? Number(v['max-length']) : ctx;
  if (maxLength > ctx) throw new UsageError(`--max-length ${maxLength} exceeds the model's context length ${ctx}`);
  const tok = tokenizePairs(records, tokenizer, {
    maxLength,
    maxPromptLength: v['max-prompt-length'] !== undefined ? Number(v['max-prompt-length']) : Math.floor(maxLength / 2),
    truncationMode: v.truncation as 'keep_end' | 'keep_start',
  });
  process.stderr.write(`data: ${tok.pairs.length} pairs (${tok.promptsTruncated} prompts and ${tok.responsesTruncated} responses truncated, ${tok.dropped} dropped)\n`);
  const heldOut = Number(v['held-out']);
  const split = heldOut > 0 ? splitHeldOut(tok.pairs, heldOut, Number(v.seed)) : { train: tok.pairs, eval: [] };
  const config = trainConfigFromFlags(v, ctx, parsed.given);
  if (config.batchSize > split.train.length) throw new UsageError(`--batch ${config.batchSize} exceeds the ${split.train.length} training pairs`);
  const out = ensureDir(String(v.out));
  const ckptPath = join(out, 'checkpoint.safetensors');
  let referenceCache;
  if (v['ref-cache']) {
    const r = await loadOrBuildReferenceCache(String(v['ref-cache']), reference, split.train, tokenizer.eotId, config.ganpo !== null);
    process.stderr.write(`reference cache ${v['ref-cache']}: ${r.status}${r.status === 'rebuilt' ? ' (it was stale: another model or other data)' : ''}\n`);
    referenceCache = r.cache;
  }
  const trainer = new PreferenceTrainer(policy, reference, split.train, split.eval, config, { padId: tokenizer.eotId, backend, referenceCache });
  const meta = { model: metadata.config, tokenizerFingerprint: tokenizer.fingerprint(), data: String(v.data) };
  if (v.resume) {
    if (!existsSync(ckptPath)) throw new UsageError(`--resume: no checkpoint at ${ckptPath}`);
    const ckpt = await loadCheckpoint(ckptPath);
    const m = ckpt.metadata as { tokenizerFingerprint?: string } | null;
    if (m?.tokenizerFingerprint !== tokenizer.fingerprint()) throw new Error(`${ckptPath}: tokenizer mismatch between the checkpoint and the model ${v.model}`);
    trainer.load(ckpt);
    process.stderr.write(`resumed at step ${trainer.step} of ${config.steps}\n`);
  }
  writeFileSync(join(out, 'config.json'), JSON.stringify({ ...config, model: String(v.model), data: String(v.data) }, null, 2));
  const res = await trainLoop(trainer, {
    metricsPath: join(out, 'metrics.jsonl'), checkpointPath: ckptPath, saveEvery: Number(v['save-every']), checkpointMeta: meta,
    evalEvery: config.evalEvery, label: `${config.base.kind}${config.ganpo ? '+ganpo' : ''}`,
  });
  if (res.interrupted) {
    process.stderr.write(`interrupted at step ${trainer.step}; checkpoint written to ${ckptPath} (continue with --resume)\n`);
    return 130;
  }
  await saveModel(join(out, 'model.safetensors'), policy, tokenizer, { ...(metadata.card ?? {}), preferenceTraining: { ...config, data: String(v.data), steps: trainer.step } });
  const e = res.evals.at(-1) ?? {};
  process.stderr.write(`done: ${trainer.step} steps in ${res.seconds.toFixed(0)} s; held-out accuracy ${fmt(e['eval/rewards/accuracies'])}, margin ${fmt(e['eval/rewards/margins'])}; skipped ${trainer.skippedSteps}; model ${join(out, 'model.safetensors')}\n`);
  return 0;
}

function fmt(x: number | undefined): string {
  return x === undefined ? 'n/a' : x.toFixed(3);
}
