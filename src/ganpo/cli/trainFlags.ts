// The flags of `ganpo train` and their translation into a TrainConfig (shared with the main job).

import { BASE_LOSSES, defaultBaseLoss, type BaseLossKind } from '../losses.js';
import { defaultGanpo, referenceGanpo, type GanpoConfig, type PoolMode, type ScheduleKind } from '../regularizer.js';
import { defaultTrainConfig, type TrainConfig } from '../trainer.js';
import { UsageError, type FlagSpec, type FlagValues } from './args.js';

export const TRAIN_FLAGS: FlagSpec[] = [
  { name: 'data', type: 'string', help: 'preference data, TRL-style JSONL ({"prompt","chosen","rejected"})' },
  { name: 'model', type: 'string', help: 'starting model file (.safetensors written by ganpo pretrain/train)', default: 'models/base/model.safetensors' },
  { name: 'out', type: 'string', help: 'output directory (metrics.jsonl, checkpoint, final model)', default: 'runs/train' },
  { name: 'loss', type: 'enum', values: BASE_LOSSES, help: 'base preference loss', default: 'dpo' },
  { name: 'beta', type: 'number', help: 'β (default 0.1, SimPO 2)', min: 0 },
  { name: 'label-smoothing', type: 'number', help: 'ε of the robust loss', default: 0.1, min: 0 },
  { name: 'simpo-gamma', type: 'number', help: "SimPO's margin γ", default: 1, min: 0 },
  { name: 'ganpo', type: 'boolean', help: 'add the GANPO latent adversarial regularizer', default: false },
  { name: 'preset', type: 'enum', values: ['default', 'reference'], help: "GANPO preset: 'reference' = the reference implementation's critic (d_c 512, 8 heads, max_len 2048)", default: 'default' },
  { name: 'lambda', type: 'number', help: 'λ, weight of the adversarial loss', default: 1, min: 0 },
  { name: 'ganpo-momentum', type: 'number', help: 'μ of the six running means', default: 0.9, min: 0 },
  { name: 'critic-lr', type: 'number', help: 'critic learning rate (default: policy lr / 2)', min: 0 },
  { name: 'critic-schedule', type: 'enum', values: ['constant', 'linear', 'cosine'], help: 'critic LR schedule (with the policy warmup)', default: 'cosine' },
  { name: 'critic-steps', type: 'number', help: 'critic updates per policy step (k >= 1, or 1/n)', default: 1, min: 0 },
  { name: 'critic-width', type: 'int', help: 'critic width d_c (default 64; reference preset 512)', min: 1 },
  { name: 'critic-layers', type: 'int', help: 'critic transformer layers', default: 2, min: 1 },
  { name: 'critic-heads', type: 'int', help: 'critic attention heads (default 4; reference preset 8)', min: 1 },
  { name: 'critic-max-len', type: 'int', help: 'critic positional table length (default: model context)', min: 1 },
  { name: 'critic-dropout', type: 'number', help: 'critic dropout', default: 0.1, min: 0 },
  { name: 'pool', type: 'enum', values: ['all', 'response', 'nonpad'], help: 'positions the critics see and pool', default: 'all' },
  { name: 'contrastive', type: 'boolean', help: 'keep the contrastive critic terms (--no-contrastive drops them)', default: true },
  { name: 'shared-critic', type: 'boolean', help: 'ablation: one critic plays both roles', default: false },
  { name: 'batch-critic-calls', type: 'boolean', help: "score each critic's three inputs in one forward (one power iteration per step; off in the reference preset)", default: true },
  { name: 'steps', type: 'int', help: 'policy optimizer steps', default: 100, min: 1 },
  { name: 'batch', type: 'int', help: 'pairs per micro-batch', default: 8, min: 1 },
  { name: 'grad-accum', type: 'int', help: 'micro-batches per optimizer step', default: 1, min: 1 },
  { name: 'lr', type: 'number', help: 'policy peak learning rate', default: 1e-4, min: 0 },
  { name: 'schedule', type: 'enum', values: ['constant', 'linear', 'cosine'], help: 'policy LR schedule', default: 'cosine' },
  { name: 'warmup', type: 'int', help: 'warmup steps', default: 0, min: 0 },
  { name: 'weight-decay', type: 'number', help: 'policy AdamW weight decay', default: 0, min: 0 },
  { name: 'max-grad-norm', type: 'number', help: 'policy gradient clipping', default: 1, min: 0 },
  { name: 'max-length', type: 'int', help: 'longest prompt + response in tokens (default: model context)', min: 2 },
  { name: 'max-prompt-length', type: 'int', help: 'longest prompt in tokens (default: max length / 2)', min: 1 },
  { name: 'truncation', type: 'enum', values: ['keep_end', 'keep_start'], help: 'which end of a long prompt is kept', default: 'keep_end' },
  { name: 'held-out', type: 'number', help: 'held-out fraction (< 1) or count of pairs', default: 0.1, min: 0 },
  { name: 'eval-every', type: 'int', help: 'held-out evaluation every N steps (0: at the end only)', default: 0, min: 0 },
  { name: 'save-every', type: 'int', help: 'checkpoint every N steps (0: at the end and on interrupt only)', default: 0, min: 0 },
  { name: 'ref-cache', type: 'string', help: "file caching the reference's log-probs (and hidden states with --ganpo) for the training pairs; rebuilt when model or data change" },
  { name: 'resume', type: 'boolean', help: 'continue from <out>/checkpoint.safetensors', default: false },
  { name: 'max-bad-steps', type: 'int', help: 'consecutive non-finite steps that stop training', default: 3, min: 1 },
  { name: 'seed', type: 'int', help: 'random seed', default: 0, min: 0 },
  { name: 'config', type: 'string', help: 'JSON file with any of these flags (flags win)' },
];

/** Builds the training config from parsed flags. */
export function trainConfigFromFlags(v: FlagValues, contextLength: number, given: ReadonlySet<string> = new Set()): TrainConfig {
  const kind = v.loss as BaseLossKind;
  const base = defaultBaseLoss(kind);
  if (v.beta !== undefined) base.beta = Number(v.beta);
  base.labelSmoothing = kind === 'robust' ? Number(v['label-smoothing']) : 0;
  if (kind === 'simpo') base.simpoGamma = Number(v['simpo-gamma']);
  const c = defaultTrainConfig(base);
  c.lr = Number(v.lr);
  c.schedule = v.schedule as ScheduleKind;
  c.warmupSteps = Number(v.warmup);
  c.steps = Number(v.steps);
  c.batchSize = Number(v.batch);
  c.gradAccum = Number(v['grad-accum']);
  c.maxGradNorm = Number(v['max-grad-norm']);
  c.weightDecay = Number(v['weight-decay']);
  c.evalEvery = Number(v['eval-every']);
  c.seed = Number(v.seed);
  c.maxBadSteps = Number(v['max-bad-steps']);
  if (v.ganpo) {
    const g: GanpoConfig = v.preset === 'reference' ? referenceGanpo(c.lr) : defaultGanpo(c.lr, contextLength);
    g.lambda = Number(v.lambda);
    g.momentum = Number(v['ganpo-momentum']);
    if (v['critic-lr'] !== undefined) g.criticLr = Number(v['critic-lr']);
    g.criticSchedule = v['critic-schedule'] as ScheduleKind;
    g.criticStepsPerStep = Number(v['critic-steps']);
    if (v['critic-width'] !== undefined) g.criticWidth = Number(v['critic-width']);
    g.criticLayers = Number(v['critic-layers']);
    if (v['critic-heads'] !== undefined) g.criticHeads = Number(v['critic-heads']);
    if (v['critic-max-len'] !== undefined) g.criticMaxLen = Number(v['critic-max-len']);
    g.criticDropout = Number(v['critic-dropout']);
    g.pool = v.pool as PoolMode;
    g.contrastive = Boolean(v.contrastive);
    g.sharedCritic = Boolean(v['shared-critic']);
    // The reference preset scores with three calls unless the flag is given explicitly.
    if (v.preset !== 'reference' || given.has('batch-critic-calls')) g.batchCriticCalls = Boolean(v['batch-critic-calls']);
    c.ganpo = g;
  } else {
    for (const f of ['critic-lr', 'critic-width', 'critic-heads', 'critic-max-len']) {
      if (v[f] !== undefined) throw new UsageError(`--${f} only applies with --ganpo`);
    }
  }
  return c;
}
