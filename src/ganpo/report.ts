// The study's report: a terminal table, report.md with SVG plots (training curves, reward and win
// rate against temperature, reward against KL, samples), and results.json with every number.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { lineChart, smooth, type Series } from './plot.js';
import type { MethodResult, StudyResult } from './study.js';

const f = (x: number | null | undefined, d = 3): string => (x === null || x === undefined || !Number.isFinite(x) ? '–' : x.toFixed(d));

interface Agg {
  name: string;
  runs: MethodResult[];
}

/** Groups runs by method name at noise 0 (seeds pooled). */
function groups(r: StudyResult): Agg[] {
  const out: Agg[] = [{ name: 'base', runs: [r.base] }];
  for (const run of r.runs.filter((x) => x.noise === 0)) {
    let g = out.find((x) => x.name === run.method);
    if (!g) out.push((g = { name: run.method, runs: [] }));
    g.runs.push(run);
  }
  return out;
}

function meanSd(xs: number[]): string {
  const m = xs.reduce((a, b) => a + b, 0) / xs.length;
  if (xs.length < 2) return f(m);
  const sd = Math.sqrt(xs.reduce((a, b) => a + (b - m) ** 2, 0) / (xs.length - 1));
  return `${f(m)} ± ${f(sd)}`;
}

function tempValue(run: MethodResult, T: number, key: 'reward' | 'winRate'): number {
  return run.temps.find((t) => t.temperature === T)![key];
}

/** Markdown table: one row per method; reward and win rate per temperature, KL, drift, text stats at T=1. */
export function resultsTable(r: StudyResult): string {
  const Ts = r.config.temperatures;
  const head = ['method', ...Ts.map((T) => `reward T=${T}`), ...Ts.map((T) => `win T=${T}`), 'KL', 'drift', 'len', 'dist-2', 'rep', 'pref acc'];
  const rows = groups(r).map((g) => {
    const at1 = (k: keyof MethodResult['temps'][0]['stats']): string => meanSd(g.runs.map((x) => x.temps.find((t) => t.temperature === 1)?.stats[k] ?? NaN));
    return [
      g.name,
      ...Ts.map((T) => meanSd(g.runs.map((x) => tempValue(x, T, 'reward')))),
      ...Ts.map((T) => (g.name === 'base' ? '–' : meanSd(g.runs.map((x) => tempValue(x, T, 'winRate'))))),
      g.name === 'base' ? '0' : meanSd(g.runs.map((x) => x.kl)),
      g.name === 'base' ? '0' : meanSd(g.runs.map((x) => x.drift)),
      at1('length'), at1('distinct2'), at1('repetition'),
      g.name === 'base' ? '–' : meanSd(g.runs.map((x) => x.heldOutAccuracy ?? NaN)),
    ];
  });
  return [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((x) => `| ${x.join(' | ')} |`)].join('\n');
}

/** Plain-text version of the table for the terminal. */
export function terminalTable(r: StudyResult): string {
  const Ts = r.config.temperatures;
  const head = ['method', ...Ts.map((T) => `R@${T}`), ...Ts.map((T) => `W@${T}`), 'KL', 'drift', 'len', 'rep'];
  const rows = groups(r).map((g) => {
    const m = (xs: number[]): string => f(xs.reduce((a, b) => a + b, 0) / xs.length);
    return [g.name, ...Ts.map((T) => m(g.runs.map((x) => tempValue(x, T, 'reward')))),
      ...Ts.map((T) => (g.name === 'base' ? '–' : m(g.runs.map((x) => tempValue(x, T, 'winRate'))))),
      m(g.runs.map((x) => x.kl)), m(g.runs.map((x) => x.drift)),
      m(g.runs.map((x) => x.temps.find((t) => t.temperature === 1)?.stats.length ?? NaN)),
      m(g.runs.map((x) => x.temps.find((t) => t.temperature === 1)?.stats.repetition ?? NaN))];
  });
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(head), ...rows.map(line)].join('\n');
}

function curve(runs: MethodResult[], key: string): Series[] {
  return runs.filter((x) => x.noise === 0 && x.seed === runs[0].seed && x.history.some((h) => key in h)).map((x) => ({
    name: x.method,
    points: smooth(x.history.map((h) => [h.step, h[key]] as [number, number]), 0.3),
  }));
}

export function writeReport(r: StudyResult, dir: string): void {
  const Ts = r.config.temperatures;
  const g = groups(r);
  const meanAt = (runs: MethodResult[], T: number, k: 'reward' | 'winRate'): number => runs.reduce((a, x) => a + tempValue(x, T, k), 0) / runs.length;
  const svg = (name: string, content: string): string => {
    writeFileSync(join(dir, name), content);
    return name;
  };
  const plots = {
    loss: svg('training_loss.svg', lineChart(curve(r.runs, 'loss'), { title: 'Training loss (EMA)', xLabel: 'step', yLabel: 'loss' })),
    margins: svg('training_margins.svg', lineChart(curve(r.runs, 'rewards/margins'), { title: 'Reward margins (EMA)', xLabel: 'step', yLabel: 'rewards/margins' })),
    acc: svg('training_accuracies.svg', lineChart(curve(r.runs, 'rewards/accuracies'), { title: 'Reward accuracies (EMA)', xLabel: 'step', yLabel: 'rewards/accuracies' })),
    critic: svg('critic_losses.svg', lineChart([
      ...curve(r.runs, 'ganpo/critic_loss_chosen').map((s) => ({ ...s, name: `${s.name} L_Dc` })),
      ...curve(r.runs, 'ganpo/critic_loss_rejected').map((s) => ({ ...s, name: `${s.name} L_Dr` })),
      ...curve(r.runs, 'ganpo/critic_accuracy').map((s) => ({ ...s, name: `${s.name} critic acc` })),
    ], { title: 'Critic losses and accuracy (EMA)', xLabel: 'step', yLabel: 'value' })),
    reward: svg('reward_vs_temperature.svg', lineChart(g.map((x) => ({ name: x.name, points: Ts.map((T) => [T, meanAt(x.runs, T, 'reward')] as [number, number]) })), { title: 'Oracle reward vs sampling temperature', xLabel: 'temperature', yLabel: 'AFINN sentiment per word' })),
    win: svg('winrate_vs_temperature.svg', lineChart(g.filter((x) => x.name !== 'base').map((x) => ({ name: x.name, points: Ts.map((T) => [T, meanAt(x.runs, T, 'winRate')] as [number, number]) })), { title: 'Win rate against the base model', xLabel: 'temperature', yLabel: 'win rate (ties ½)' })),
    kl: svg('reward_vs_kl.svg', lineChart(g.map((x) => ({ name: x.name, points: x.runs.map((run) => [run.kl, tempValue(run, 1, 'reward')] as [number, number]) })), { title: 'Reward (T=1) against KL from the reference', xLabel: 'KL(π‖π_ref) per continuation (nats)', yLabel: 'reward', scatter: true })),
  };
  const noiseRuns = r.runs.filter((x) => x.noise > 0 || (r.config.noise.some((n) => n > 0) && x.seed === r.config.seeds[0] && r.runs.some((y) => y.noise > 0 && y.method === x.method)));
  const noiseSection = noiseRuns.length ? `
## Label-noise sweep (seed ${r.config.seeds[0]})

| method | noise | reward T=1.0 | reward T=1.6 | win T=1.0 | win T=1.6 | KL | pref acc |
|---|---|---|---|---|---|---|---|
${noiseRuns.sort((a, b) => a.method.localeCompare(b.method) || a.noise - b.noise).map((x) => `| ${x.method} | ${x.noise} | ${f(tempValue(x, 1, 'reward'))} | ${f(tempValue(x, 1.6, 'reward'))} | ${f(tempValue(x, 1, 'winRate'))} | ${f(tempValue(x, 1.6, 'winRate'))} | ${f(x.kl)} | ${f(x.heldOutAccuracy)} |`).join('\n')}
` : '';
  const samples = (T: number): string => g.map((x) => `**${x.name}**\n\n${x.runs[0].temps.find((t) => t.temperature === T)!.samples.slice(0, 3).map((s, i) => `> *${r.prompts[i]}*${s.replace(/\n/g, ' ')}`).join('\n>\n')}`).join('\n\n');
  const c = r.config;
  const md = `# GANPO vs plain preference losses on the embedded sentiment task

Generated by \`npm start\`${c.seeds.length > 1 ? ' -- --full' : ''} on ${new Date().toISOString().slice(0, 10)}; every number below comes from this run
(results.json holds them all). Device: ${r.device}. Wall time: ${(r.seconds / 60).toFixed(1)} min.

## Setting

- Base model: ${r.model.config.nLayers} layers, d_model ${r.model.config.dModel}, context ${r.model.config.contextLength}, vocabulary ${r.model.config.vocabSize} (models/base).
- Prompts: the first ${c.promptWords} words of held-out corpus sentences; ${c.trainPrompts} for training pairs, ${c.evalPrompts} for evaluation.
- Pairs: ${c.samplesPerPrompt} base-model samples per prompt (T=1, ${c.maxNewTokens} new tokens), most and least positive under the AFINN-165 oracle (per word, each distinct word once); ${r.pairs.count} pairs, ${r.pairs.ties} prompts skipped as ties; mean oracle score chosen ${f(r.pairs.meanChosen)}, rejected ${f(r.pairs.meanRejected)}. Data: data/pairs.jsonl.
- Training: ${c.steps} steps, ${c.batchSize} pairs per step, AdamW lr ${c.lr} (cosine, 10% warmup), DPO β ${c.beta}, SimPO β ${c.simpoBeta} γ ${c.simpoGamma}; GANPO λ ${c.lambda}, critic width ${c.criticWidth}, critic lr = ${c.criticLrRatio} × policy lr, pool all, contrastive terms on. Seeds: ${c.seeds.join(', ')}.
- Evaluation: one sample per held-out prompt at each temperature (the same sampling seed for every model), ${c.maxNewTokens} new tokens; win rate against the base model's sample for the same prompt and temperature (ties ½); KL = mean of log π − log π_ref over the policy's own T=1 samples; drift = ‖h_π − h_ref‖ / ‖h_ref‖ of the final hidden states on held-out text; text statistics at T=1 (length in tokens, distinct-2, repeated word 3-grams).

## Results${c.seeds.length > 1 ? ` (mean ± sd over ${c.seeds.length} seeds)` : ''}

${resultsTable(r)}
${noiseSection}
## Plots

![reward vs temperature](${plots.reward}) ![win rate vs temperature](${plots.win})

![reward vs KL](${plots.kl}) ![training loss](${plots.loss})

![margins](${plots.margins}) ![accuracies](${plots.acc})

![critic losses](${plots.critic})

## Samples at T=1.0

${samples(1)}

## Samples at T=1.6

${samples(1.6)}
`;
  writeFileSync(join(dir, 'report.md'), md);
  writeFileSync(join(dir, 'results.json'), JSON.stringify(r, null, 1));
}
