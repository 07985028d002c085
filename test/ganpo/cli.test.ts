// The ganpo CLI in child processes: bad input, interruption and exact resume, crash safety of
// checkpoints. Compiles the CLI once (tsc) into dist-test/.
import { beforeAll, describe, expect, test } from 'vitest';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GPT } from '../../src/nn/gpt.js';
import { saveModel } from '../../src/nn/lm.js';
import { loadCheckpoint } from '../../src/nn/checkpoint.js';
import { Tokenizer } from '../../src/nn/tokenizer.js';
import { Generator } from '../../src/tensor/random/philox.js';
import { cpu } from '../../src/index.js';

const root = join(__dirname, '..', '..');
const cli = join(root, 'dist-test', 'src', 'ganpo', 'cli', 'main.js');
const dir = mkdtempSync(join(tmpdir(), 'ganpo-cli-'));
const modelPath = join(dir, 'tiny.safetensors');
const dataPath = join(dir, 'pairs.jsonl');
const env = { ...process.env, GANPO_BACKEND: 'cpu', XDG_RUNTIME_DIR: dir };

function run(args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cli, ...args], { env, encoding: 'utf8', timeout: 120_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

beforeAll(async () => {
  execFileSync(join(root, 'node_modules', '.bin', 'tsc'), ['-p', join(root, 'tsconfig.build.json'), '--outDir', join(root, 'dist-test')], { stdio: 'inherit' });
  const words = ['good', 'great', 'happy', 'bad', 'awful', 'sad', 'The', 'day', 'was', 'night', 'felt'];
  const tok = Tokenizer.buildCompact(words.map((w) => ` ${w}`).join('') + ' The day was good.', 300);
  const model = new GPT({ vocabSize: tok.vocabSize, contextLength: 16, dModel: 16, nLayers: 1, nHeads: 2, dropout: 0 }, { backend: cpu, generator: new Generator(3) });
  await saveModel(modelPath, model, tok, { note: 'tiny test model' });
  const lines = Array.from({ length: 48 }, (_, i) => JSON.stringify({
    prompt: i % 2 ? 'The day was' : 'The night felt', chosen: ` ${['good', 'great', 'happy'][i % 3]}.`, rejected: ` ${['bad', 'awful', 'sad'][i % 3]}.`,
  }));
  writeFileSync(dataPath, lines.join('\n') + '\n');
}, 120_000);

const trainArgs = (out: string, extra: string[] = []): string[] => [
  'train', '--data', dataPath, '--model', modelPath, '--out', out, '--steps', '8', '--batch', '4', '--lr', '1e-3', '--ganpo', '--critic-width', '16', '--critic-heads', '2', '--critic-layers', '1', ...extra,
];

describe('ganpo train', () => {
  test('trains on a TRL-style JSONL file and writes metrics, checkpoint and model', () => {
    const out = join(dir, 'ok');
    const r = run(trainArgs(out));
    expect(r.code, r.stderr).toBe(0);
    const metrics = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(metrics.filter((m) => 'loss' in m)).toHaveLength(8);
    expect(metrics[0]).toHaveProperty('ganpo/critic_loss_chosen');
    expect(metrics.at(-1)).toHaveProperty('eval/rewards/accuracies');
    expect(existsSync(join(out, 'model.safetensors'))).toBe(true);
  });

  test('a malformed data line fails before training with file, line and reason, and writes nothing', () => {
    const bad = join(dir, 'bad.jsonl');
    writeFileSync(bad, '{"prompt":"a","chosen":"b","rejected":"c"}\n{"prompt":"a","chosen":"b","rejected":"c"}\n{"prompt":"a","chosen":""}\n');
    const out = join(dir, 'never');
    const r = run(trainArgs(out, ['--data', bad]));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/bad\.jsonl:3: /);
    expect(existsSync(out)).toBe(false);
  });

  test('unknown flags and bad values exit 2 naming the flag', () => {
    expect(run(['train', '--data', dataPath, '--stepz', '3'])).toMatchObject({ code: 2, stderr: expect.stringMatching(/unknown option --stepz \(did you mean --steps\?\)/) });
    expect(run(['train', '--data', dataPath, '--loss', 'kto'])).toMatchObject({ code: 2, stderr: expect.stringMatching(/--loss: expected one of dpo, ipo, hinge, robust, simpo/) });
    expect(run(['nope']).code).toBe(2);
  });

  test('a config file with an unknown key is rejected naming the file and key', () => {
    const cfg = join(dir, 'cfg.json');
    writeFileSync(cfg, JSON.stringify({ steps: 2, critc_lr: 1 }));
    const r = run(['train', '--data', dataPath, '--model', modelPath, '--out', join(dir, 'cfg-out'), '--config', cfg]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/cfg\.json: unknown key "critc_lr"/);
  });

  test('SIGINT writes a checkpoint; --resume continues to the same metrics as an uninterrupted run', async () => {
    const straight = join(dir, 'straight');
    expect(run(trainArgs(straight, ['--steps', '60'])).code).toBe(0);
    const out = join(dir, 'interrupted');
    const child = spawn(process.execPath, [cli, ...trainArgs(out, ['--steps', '60'])], { env });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const metricsFile = join(out, 'metrics.jsonl');
    // Interrupt once a few steps are logged.
    await new Promise<void>((resolve) => {
      const poll = setInterval(() => {
        if (existsSync(metricsFile) && readFileSync(metricsFile, 'utf8').split('\n').length > 4) {
          clearInterval(poll);
          child.kill('SIGINT');
          resolve();
        }
      }, 20);
    });
    const code = await new Promise<number>((resolve) => child.on('exit', (c) => resolve(c ?? -1)));
    expect(code, stderr).toBe(130);
    expect(stderr).toMatch(/checkpoint written/);
    const resumed = run([...trainArgs(out, ['--steps', '60']), '--resume']);
    expect(resumed.code, resumed.stderr).toBe(0);
    const read = (p: string) => readFileSync(join(p, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((m) => 'loss' in m);
    const a = read(straight);
    const b = read(out);
    expect(b.map((m) => m.step)).toEqual(a.map((m) => m.step));
    expect(b).toEqual(a);
  });

  test('SIGKILL during checkpoint writes leaves the last checkpoint intact and loadable', async () => {
    const out = join(dir, 'killed');
    const ckpt = join(out, 'checkpoint.safetensors');
    for (let round = 0; round < 3; round++) {
      const child = spawn(process.execPath, [cli, ...trainArgs(out, ['--steps', '40', '--save-every', '1'])], { env });
      await new Promise<void>((resolve) => {
        const poll = setInterval(() => {
          if (existsSync(ckpt)) {
            clearInterval(poll);
            setTimeout(() => {
              child.kill('SIGKILL');
              resolve();
            }, 50 + 150 * round);
          }
        }, 5);
      });
      await new Promise((resolve) => child.on('exit', resolve));
      const loaded = await loadCheckpoint(ckpt);
      expect((loaded.metadata as { trainer: { step: number } }).trainer.step).toBeGreaterThan(0);
    }
  });
});

describe('ganpo generate', () => {
  test('samples from a model file, reproducibly for a seed', () => {
    const a = run(['generate', '--model', modelPath, '--prompt', 'The day', '--max-new-tokens', '5', '--json', '--seed', '4']);
    const b = run(['generate', '--model', modelPath, '--prompt', 'The day', '--max-new-tokens', '5', '--json', '--seed', '4']);
    expect(a.code, a.stderr).toBe(0);
    expect(JSON.parse(a.stdout).prompt).toBe('The day');
    expect(a.stdout).toBe(b.stdout);
  });
});
