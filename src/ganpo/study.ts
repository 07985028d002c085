// The main job: GANPO against the plain losses on the embedded sentiment task, every method from
// the same base model, data, seed and step budget, evaluated on held-out prompts.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadModel, type LoadedModel } from '../nn/lm.js';
import { loadCorpus } from '../nn/corpus.js';
import type { GPT } from '../nn/gpt.js';
import type { Backend } from '../tensor/index.js';
import { splitHeldOut } from './data.js';
import { continuationText, klFromReference, latentDrift, rewards, sampleContinuations, textStats, winRate, type TextStats } from './evaluate.js';
import { defaultBaseLoss, type BaseLossKind } from './losses.js';
import { trainLoop } from './loop.js';
import { Progress } from './progress.js';
import { defaultGanpo } from './regularizer.js';
import { flipLabels, makePreferencePairs, sentencePrompts, toRecords, toTokenizedPairs, type LabeledPair, type Prompt } from './task.js';
import { defaultTrainConfig, PreferenceTrainer, type StepMetrics, type TrainConfig } from './trainer.js';

export interface Method {
  name: string;
  loss: BaseLossKind;
  ganpo: boolean;
}

export const DEFAULT_METHODS: Method[] = [
  { name: 'DPO', loss: 'dpo', ganpo: false },
  { name: 'DPO+GANPO', loss: 'dpo', ganpo: true },
];

export const FULL_METHODS: Method[] = [
  ...DEFAULT_METHODS,
  { name: 'SimPO', loss: 'simpo', ganpo: false },
  { name: 'SimPO+GANPO', loss: 'simpo', ganpo: true },
];

export interface StudyConfig {
  modelPath: string;
  out: string;
  methods: Method[];
  seeds: number[];
  /** Label-noise fractions (0 always included); the sweep runs the DPO pair of methods. */
  noise: number[];
  trainPrompts: number;
  evalPrompts: number;
  promptWords: number;
  samplesPerPrompt: number;
  maxNewTokens: number;
  temperatures: number[];
  steps: number;
  batchSize: number;
  lr: number;
  beta: number;
  simpoBeta: number;
  simpoGamma: number;
  lambda: number;
  criticLrRatio: number;
  criticWidth: number;
  driftWindows: number;
}

export function defaultStudy(): StudyConfig {
  return {
    modelPath: 'models/base/model.safetensors', out: 'report', methods: DEFAULT_METHODS, seeds: [0], noise: [0],
    trainPrompts: 320, evalPrompts: 96, promptWords: 8, samplesPerPrompt: 4, maxNewTokens: 16,
    temperatures: [0.7, 1.0, 1.3, 1.6], steps: 60, batchSize: 8, lr: 5e-4, beta: 0.1, simpoBeta: 2, simpoGamma: 1,
    lambda: 1, criticLrRatio: 8, criticWidth: 64, driftWindows: 16,
  };
}

export interface TempEval {
  temperature: number;
  reward: number;
  winRate: number;
  stats: TextStats;
  samples: string[];
}

export interface MethodResult {
  method: string;
  seed: number;
  noise: number;
  temps: TempEval[];
  kl: number;
  drift: number;
  heldOutAccuracy: number | null;
  history: StepMetrics[];
  trainSeconds: number;
}

export interface StudyResult {
  config: StudyConfig;
  device: string;
  model: LoadedModel['metadata'];
  pairs: { count: number; ties: number; meanChosen: number; meanRejected: number };
  base: MethodResult;
  runs: MethodResult[];
  seconds: number;
  prompts: string[];
}

function trainConfig(s: StudyConfig, m: Method, seed: number, contextLength: number): TrainConfig {
  const base = m.loss === 'simpo' ? { ...defaultBaseLoss('simpo'), beta: s.simpoBeta, simpoGamma: s.simpoGamma } : { ...defaultBaseLoss(m.loss), beta: s.beta };
  const c = defaultTrainConfig(base);
  Object.assign(c, { lr: s.lr, steps: s.steps, batchSize: s.batchSize, schedule: 'cosine', warmupSteps: Math.round(s.steps * 0.1), seed });
  if (m.ganpo) c.ganpo = { ...defaultGanpo(s.lr, contextLength), lambda: s.lambda, criticLr: s.lr * s.criticLrRatio, criticWidth: s.criticWidth };
  return c;
}

/** Evaluates one model on the held-out prompts at every temperature (plus KL and drift). */
async function evaluateModel(name: string, model: GPT, ref: GPT, loaded: LoadedModel, s: StudyConfig, prompts: Prompt[], baseRewards: Map<number, number[]> | null, drift: { ids: Int32Array; rows: number; T: number }): Promise<Omit<MethodResult, 'method' | 'seed' | 'noise' | 'heldOutAccuracy' | 'history' | 'trainSeconds'> & { rewardsByT: Map<number, number[]> }> {
  const tok = loaded.tokenizer;
  const ids = prompts.map((p) => p.ids);
  const bar = new Progress(`eval ${name}`, s.temperatures.length + 2);
  const temps: TempEval[] = [];
  const rewardsByT = new Map<number, number[]>();
  let klSamples: number[][] | null = null;
  for (const T of s.temperatures) {
    // The same sampling seed for every model: differences come from the models, not the dice.
    const samples = await sampleContinuations(model, tok, ids, { temperature: T, maxNewTokens: s.maxNewTokens, seed: 4242 + Math.round(T * 100) });
    if (T === 1) klSamples = samples;
    const r = rewards(tok, samples);
    rewardsByT.set(T, r);
    const texts = samples.map((c) => continuationText(tok, c));
    temps.push({
      temperature: T,
      reward: r.reduce((a, b) => a + b, 0) / r.length,
      winRate: baseRewards ? winRate(r, baseRewards.get(T)!) : 0.5,
      stats: textStats(texts, samples.map((c) => c.length)),
      samples: texts.slice(0, 4),
    });
    bar.tick();
  }
  klSamples ??= await sampleContinuations(model, tok, ids, { temperature: 1, maxNewTokens: s.maxNewTokens, seed: 4342 });
  const kl = model === ref ? 0 : await klFromReference(model, ref, ids, klSamples, tok.eotId);
  bar.tick();
  const dr = model === ref ? 0 : await latentDrift(model, ref, drift.ids, drift.rows, drift.T);
  bar.tick();
  bar.finish();
  return { temps, kl, drift: dr, rewardsByT };
}

/** Fixed windows of validation text for the latent-drift measurement. */
function driftWindows(loaded: LoadedModel, rows: number): { ids: Int32Array; rows: number; T: number } {
  const T = loaded.model.config.contextLength;
  const stream = loadCorpus().validation.slice(0, 400).flatMap((p) => loaded.tokenizer.encode(p, { appendEot: true }));
  const ids = new Int32Array(rows * T);
  const stride = Math.floor((stream.length - T) / rows);
  for (let r = 0; r < rows; r++) ids.set(stream.slice(r * stride, r * stride + T), r * T);
  return { ids, rows, T };
}

export async function runStudy(s: StudyConfig, backend: Backend): Promise<StudyResult> {
  const start = performance.now();
  mkdirSync(join(s.out, 'data'), { recursive: true });
  const ref = await loadModel(s.modelPath, { backend });
  const tok = ref.tokenizer;
  ref.model.eval().freeze();
  const all = sentencePrompts(tok, s.trainPrompts + s.evalPrompts, s.promptWords, 7);
  const trainPrompts = all.slice(0, s.trainPrompts);
  const evalPrompts = all.slice(s.trainPrompts);
  if (Math.max(...all.map((p) => p.ids.length)) + s.maxNewTokens > ref.model.config.contextLength) {
    throw new Error(`prompts of ${s.promptWords} words plus ${s.maxNewTokens} new tokens exceed the model's context ${ref.model.config.contextLength}`);
  }

  const genBar = new Progress('pairs', trainPrompts.length, { unit: 'prompt' });
  let last = 0;
  const { pairs, ties } = await makePreferencePairs(ref.model, tok, trainPrompts, {
    samplesPerPrompt: s.samplesPerPrompt, maxNewTokens: s.maxNewTokens, temperature: 1, seed: 11,
    onProgress: (d) => {
      genBar.tick(d - last, d - last);
      last = d;
    },
  });
  genBar.finish();
  writeFileSync(join(s.out, 'data', 'pairs.jsonl'), toRecords(tok, pairs).map((r) => JSON.stringify(r)).join('\n') + '\n');
  const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  process.stderr.write(`pairs: ${pairs.length} (${ties} prompts skipped as ties); mean oracle score chosen ${mean(pairs.map((p) => p.chosenScore)).toFixed(3)}, rejected ${mean(pairs.map((p) => p.rejectedScore)).toFixed(3)}\n`);

  const drift = driftWindows(ref, s.driftWindows);
  const baseEval = await evaluateModel('base', ref.model, ref.model, ref, s, evalPrompts, null, drift);
  const base: MethodResult = { method: 'base', seed: 0, noise: 0, temps: baseEval.temps, kl: 0, drift: 0, heldOutAccuracy: null, history: [], trainSeconds: 0 };

  const runs: MethodResult[] = [];
  const jobs: { m: Method; seed: number; noise: number }[] = [];
  for (const seed of s.seeds) for (const m of s.methods) jobs.push({ m, seed, noise: 0 });
  for (const noise of s.noise.filter((n) => n > 0)) for (const m of s.methods.filter((x) => x.loss === 'dpo')) jobs.push({ m, seed: s.seeds[0], noise });
  for (const job of jobs) {
    const labeled: LabeledPair[] = job.noise > 0 ? flipLabels(pairs, job.noise, 1000 + job.seed) : pairs;
    const split = splitHeldOut(toTokenizedPairs(labeled), 0.1, job.seed);
    const policy = await loadModel(s.modelPath, { backend });
    const cfg = trainConfig(s, job.m, job.seed, policy.model.config.contextLength);
    const trainer = new PreferenceTrainer(policy.model, ref.model, split.train, split.eval, cfg, { padId: tok.eotId, backend });
    const tag = `${job.m.name}${s.seeds.length > 1 ? ` seed ${job.seed}` : ''}${job.noise > 0 ? ` noise ${job.noise}` : ''}`;
    const res = await trainLoop(trainer, { label: `train ${tag}`, evalPairs: 64, metricsPath: undefined });
    if (res.interrupted) throw new Error('interrupted');
    const ev = await evaluateModel(tag, policy.model, ref.model, ref, s, evalPrompts, baseEval.rewardsByT, drift);
    runs.push({
      method: job.m.name, seed: job.seed, noise: job.noise, temps: ev.temps, kl: ev.kl, drift: ev.drift,
      heldOutAccuracy: res.evals.at(-1)?.['eval/rewards/accuracies'] ?? null, history: res.history, trainSeconds: res.seconds,
    });
    trainer.dispose();
    policy.model.dispose();
  }
  return {
    config: s, device: backend.describe(), model: ref.metadata,
    pairs: { count: pairs.length, ties, meanChosen: mean(pairs.map((p) => p.chosenScore)), meanRejected: mean(pairs.map((p) => p.rejectedScore)) },
    base, runs, seconds: (performance.now() - start) / 1000, prompts: evalPrompts.map((p) => p.text),
  };
}
