// Strict command-line and config-file parsing from one flag table: unknown flags, missing values
// and bad values are errors that name the flag (or the config file and key).

import { readFileSync } from 'node:fs';

export type FlagType = 'string' | 'number' | 'int' | 'boolean' | 'enum';

export interface FlagSpec {
  /** Flag name without dashes, kebab-case (e.g. 'critic-lr'). */
  name: string;
  type: FlagType;
  help: string;
  values?: readonly string[];
  default?: string | number | boolean;
  /** Lower bound for numbers (inclusive). */
  min?: number;
}

export type FlagValues = Record<string, string | number | boolean | undefined>;

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
  }
  return d[a.length][b.length];
}

function suggest(name: string, specs: readonly FlagSpec[]): string {
  const best = specs.map((s) => [s.name, distance(name, s.name)] as const).sort((x, y) => x[1] - y[1])[0];
  return best && best[1] <= 3 ? ` (did you mean --${best[0]}?)` : '';
}

/** Converts a raw value for a flag, or throws naming `where` (e.g. "--lr" or "config.json: lr"). */
export function convertValue(spec: FlagSpec, raw: unknown, where: string): string | number | boolean {
  switch (spec.type) {
    case 'boolean':
      if (typeof raw === 'boolean') return raw;
      if (raw === 'true' || raw === '1') return true;
      if (raw === 'false' || raw === '0') return false;
      throw new UsageError(`${where}: expected true or false, got ${JSON.stringify(raw)}`);
    case 'number':
    case 'int': {
      const v = typeof raw === 'number' ? raw : typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : NaN;
      if (!Number.isFinite(v)) throw new UsageError(`${where}: expected a number, got ${JSON.stringify(raw)}`);
      if (spec.type === 'int' && !Number.isInteger(v)) throw new UsageError(`${where}: expected an integer, got ${JSON.stringify(raw)}`);
      if (spec.min !== undefined && v < spec.min) throw new UsageError(`${where}: must be >= ${spec.min}, got ${v}`);
      return v;
    }
    case 'enum':
      if (typeof raw !== 'string' || !spec.values?.includes(raw)) {
        throw new UsageError(`${where}: expected one of ${spec.values?.join(', ')}, got ${JSON.stringify(raw)}`);
      }
      return raw;
    case 'string':
      if (typeof raw !== 'string' || raw === '') throw new UsageError(`${where}: expected a non-empty string, got ${JSON.stringify(raw)}`);
      return raw;
  }
}

export interface ParsedArgs {
  values: FlagValues;
  /** Flags given explicitly on the command line (so they override a config file). */
  given: Set<string>;
  positional: string[];
}

/** Parses `--flag value`, `--flag=value`, `--flag` / `--no-flag` (booleans), and positionals. */
export function parseArgs(argv: readonly string[], specs: readonly FlagSpec[]): ParsedArgs {
  const byName = new Map(specs.map((s) => [s.name, s]));
  const values: FlagValues = {};
  for (const s of specs) values[s.name] = s.default;
  const given = new Set<string>();
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--') {
      positional.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith('--')) {
      if (arg.startsWith('-') && arg.length > 1) throw new UsageError(`unknown option ${arg} (options are spelled --name)`);
      positional.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    let name = eq >= 0 ? arg.slice(2, eq) : arg.slice(2);
    let raw: string | undefined = eq >= 0 ? arg.slice(eq + 1) : undefined;
    let spec = byName.get(name);
    if (!spec && name.startsWith('no-') && byName.get(name.slice(3))?.type === 'boolean' && raw === undefined) {
      name = name.slice(3);
      spec = byName.get(name);
      raw = 'false';
    }
    if (!spec) throw new UsageError(`unknown option --${name}${suggest(name, specs)}`);
    if (raw === undefined) {
      if (spec.type === 'boolean') raw = 'true';
      else if (i + 1 < argv.length && !argv[i + 1].startsWith('--')) raw = argv[++i];
      else throw new UsageError(`--${name}: missing value`);
    }
    values[name] = convertValue(spec, raw, `--${name}`);
    given.add(name);
  }
  return { values, given, positional };
}

/**
 * Reads a JSON config file whose keys are flag names (kebab-case or camelCase) and merges it under
 * the command line: a flag given on the command line wins.
 */
export function applyConfigFile(path: string, parsed: ParsedArgs, specs: readonly FlagSpec[]): void {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new UsageError(`--config: cannot read ${path}: ${(e as Error).message}`);
  }
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch (e) {
    throw new UsageError(`${path}: invalid JSON: ${(e as Error).message}`);
  }
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) throw new UsageError(`${path}: the config must be a JSON object`);
  const byName = new Map(specs.map((s) => [s.name, s]));
  for (const [key, raw] of Object.entries(obj)) {
    const name = key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
    const spec = byName.get(name);
    if (!spec || name === 'config') throw new UsageError(`${path}: unknown key "${key}"${suggest(name, specs)}`);
    const v = convertValue(spec, raw, `${path}: ${key}`);
    if (!parsed.given.has(name)) parsed.values[name] = v;
  }
}

/** Help text for a command: usage line and one line per flag with its default. */
export function helpText(usage: string, summary: string, specs: readonly FlagSpec[]): string {
  const rows = specs.map((s) => {
    const kind = s.type === 'enum' ? s.values!.join('|') : s.type === 'boolean' ? '' : `<${s.type}>`;
    const flag = `--${s.name}${kind ? ' ' + kind : ''}`;
    const def = s.default !== undefined ? ` (default ${s.default})` : '';
    return `  ${flag.padEnd(34)} ${s.help}${def}`;
  });
  return `${usage}\n\n${summary}\n\nOptions:\n${rows.join('\n')}\n`;
}
