// Atomic writes: a failed or killed write leaves the previous file intact and no temp file behind.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { writeFileAtomic, writeFileAtomicSync } from '../../src/nn/atomicWrite.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'atomic-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

// An iterable that yields one chunk and then throws: the temp file exists and is half written when
// the failure happens. The sync variant rejects it as an invalid argument after creating the temp.
function failingData(): Uint8Array {
  const chunks = {
    *[Symbol.iterator]() {
      yield new Uint8Array(1024).fill(7);
      throw new Error('data source failed');
    },
  };
  return chunks as unknown as Uint8Array;
}

const variants = [
  ['async', (p: string, d: Uint8Array | string) => writeFileAtomic(p, d)],
  ['sync', async (p: string, d: Uint8Array | string) => writeFileAtomicSync(p, d)],
] as const;

describe.each(variants)('writeFileAtomic (%s)', (_name, write) => {
  it('replaces the content of an existing file and leaves only the target', async () => {
    const target = join(dir, 'ckpt.bin');
    writeFileSync(target, 'old');
    await write(target, new Uint8Array([1, 2, 3]));
    expect([...readFileSync(target)]).toEqual([1, 2, 3]);
    await write(target, 'text');
    expect(readFileSync(target, 'utf8')).toBe('text');
    expect(readdirSync(dir)).toEqual(['ckpt.bin']);
  });

  it('a write that fails mid-way keeps the old file and removes the temp file', async () => {
    const target = join(dir, 'ckpt.bin');
    writeFileSync(target, 'old content');
    await expect(write(target, failingData())).rejects.toThrow();
    expect(readFileSync(target, 'utf8')).toBe('old content');
    expect(readdirSync(dir)).toEqual(['ckpt.bin']);
  });

  it('a target in a nonexistent directory fails and creates nothing', async () => {
    const target = join(dir, 'missing', 'ckpt.bin');
    await expect(write(target, 'x')).rejects.toThrow(/ENOENT/);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('a rename that fails (target is a directory) removes the temp file', async () => {
    const target = join(dir, 'taken');
    mkdirSync(target);
    writeFileSync(join(target, 'inside'), 'keep');
    await expect(write(target, 'x')).rejects.toThrow();
    expect(readdirSync(dir)).toEqual(['taken']);
    expect(readFileSync(join(target, 'inside'), 'utf8')).toBe('keep');
  });
});

// The child cannot import TypeScript under Node 20, so the module is transpiled to plain ESM first.
function transpiledModule(into: string): string {
  const src = join(dirname(fileURLToPath(import.meta.url)), '../../src/nn/atomicWrite.ts');
  const out = ts.transpileModule(readFileSync(src, 'utf8'), {
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
  });
  const path = join(into, 'atomicWrite.mjs');
  writeFileSync(path, out.outputText);
  return path;
}

// Version v: u32 v, BODY bytes equal to v & 255, u32 v. A torn write breaks length, body or trailer.
const BODY = 1 << 21;
const CHILD = `
import { writeFileAtomic, writeFileAtomicSync } from './atomicWrite.mjs';
const [target, mode] = process.argv.slice(2);
const BODY = ${BODY};
function content(v) {
  const b = new Uint8Array(BODY + 8);
  const dv = new DataView(b.buffer);
  dv.setUint32(0, v, true);
  b.fill(v & 255, 4, 4 + BODY);
  dv.setUint32(4 + BODY, v, true);
  return b;
}
process.stdout.write('ready\\n');
for (let v = 1; ; v++) {
  if (mode === 'sync') writeFileAtomicSync(target, content(v));
  else await writeFileAtomic(target, content(v));
}
`;

function versionOf(bytes: Uint8Array): number {
  expect(bytes.length).toBe(BODY + 8);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const v = dv.getUint32(0, true);
  expect(dv.getUint32(4 + BODY, true)).toBe(v);
  const body = bytes.subarray(4, 4 + BODY);
  expect(body.every((x) => x === (v & 255))).toBe(true);
  return v;
}

function runChildAndKill(script: string, target: string, mode: string, delayMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, target, mode], { stdio: ['ignore', 'pipe', 'inherit'] });
    child.on('error', reject);
    child.on('exit', () => resolve());
    child.stdout.once('data', () => setTimeout(() => child.kill('SIGKILL'), delayMs));
  });
}

describe('writeFileAtomic under SIGKILL', () => {
  it('the target is always a complete old or new version, whenever the writer is killed', async () => {
    const script = join(dir, 'child.mjs');
    transpiledModule(dir);
    writeFileSync(script, CHILD);
    const target = join(dir, 'target.bin');
    const initial = new Uint8Array(BODY + 8);
    writeFileSync(target, initial); // version 0
    let last = 0;
    for (let round = 0; round < 10; round++) {
      const delay = 10 + Math.floor(Math.random() * 150);
      await runChildAndKill(script, target, round % 2 === 0 ? 'sync' : 'async', delay);
      const v = versionOf(new Uint8Array(readFileSync(target)));
      expect(v).toBeGreaterThanOrEqual(0);
      last = Math.max(last, v);
    }
    // Sanity: the child really wrote something in at least one round.
    expect(last).toBeGreaterThan(0);
  }, 20_000);
});
