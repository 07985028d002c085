import { describe, expect, test } from 'vitest';
import fc from 'fast-check';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { applyConfigFile, parseArgs, UsageError, type FlagSpec } from '../../src/ganpo/cli/args.js';

const specs: FlagSpec[] = [
  { name: 'lr', type: 'number', help: 'learning rate', default: 1e-3, min: 0 },
  { name: 'steps', type: 'int', help: 'steps', default: 10, min: 1 },
  { name: 'loss', type: 'enum', values: ['dpo', 'simpo'], help: 'loss', default: 'dpo' },
  { name: 'ganpo', type: 'boolean', help: 'regularize', default: false },
  { name: 'data', type: 'string', help: 'data file' },
];

describe('command-line flags', () => {
  test('every spelling parses', () => {
    const p = parseArgs(['--lr', '0.5', '--steps=3', '--loss', 'simpo', '--ganpo', 'pos', '--data', 'x.jsonl'], specs);
    expect(p.values).toEqual({ lr: 0.5, steps: 3, loss: 'simpo', ganpo: true, data: 'x.jsonl' });
    expect(p.positional).toEqual(['pos']);
    expect(parseArgs(['--no-ganpo'], specs).values.ganpo).toBe(false);
  });
  test('unknown flags and bad values are errors naming the flag', () => {
    expect(() => parseArgs(['--lrr', '1'], specs)).toThrow(/unknown option --lrr \(did you mean --lr\?\)/);
    expect(() => parseArgs(['--steps', '1.5'], specs)).toThrow(/--steps: expected an integer/);
    expect(() => parseArgs(['--steps', '0'], specs)).toThrow(/--steps: must be >= 1/);
    expect(() => parseArgs(['--loss', 'kto'], specs)).toThrow(/--loss: expected one of dpo, simpo/);
    expect(() => parseArgs(['--lr'], specs)).toThrow(/--lr: missing value/);
    expect(() => parseArgs(['-x'], specs)).toThrow(UsageError);
  });
  test('arbitrary argument lists either parse or raise a UsageError', () => {
    fc.assert(fc.property(fc.array(fc.oneof(fc.string(), fc.constantFrom('--lr', '--steps', '--ganpo', '--no-ganpo', '--loss', '--', '-'))), (argv) => {
      try {
        parseArgs(argv, specs);
      } catch (e) {
        expect(e).toBeInstanceOf(UsageError);
      }
    }));
  });
});

describe('config files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ganpo-args-'));
  const file = (name: string, text: string): string => {
    const p = join(dir, name);
    writeFileSync(p, text);
    return p;
  };
  test('keys in either case apply under the command line', () => {
    const p = parseArgs(['--lr', '0.1'], specs);
    applyConfigFile(file('a.json', '{"lr": 0.2, "steps": 7, "ganpo": true}'), p, specs);
    expect(p.values).toMatchObject({ lr: 0.1, steps: 7, ganpo: true });
  });
  test('unknown keys, wrong types and bad JSON name the file and the key', () => {
    const p = parseArgs([], specs);
    expect(() => applyConfigFile(file('b.json', '{"stepz": 1}'), p, specs)).toThrow(/b\.json: unknown key "stepz" \(did you mean --steps\?\)/);
    expect(() => applyConfigFile(file('c.json', '{"steps": "many"}'), p, specs)).toThrow(/c\.json: steps: expected a number/);
    expect(() => applyConfigFile(file('d.json', '{"steps": '), p, specs)).toThrow(/d\.json: invalid JSON/);
    expect(() => applyConfigFile(file('e.json', '[1]'), p, specs)).toThrow(/must be a JSON object/);
  });
  test('random JSON objects either apply or raise a UsageError', () => {
    fc.assert(fc.property(fc.dictionary(fc.constantFrom('lr', 'steps', 'loss', 'ganpo', 'data', 'zzz'), fc.jsonValue()), (obj) => {
      try {
        applyConfigFile(file('f.json', JSON.stringify(obj)), parseArgs([], specs), specs);
      } catch (e) {
        expect(e).toBeInstanceOf(UsageError);
      }
    }), { numRuns: 100 });
  });
});
