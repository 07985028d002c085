import { expect, test } from 'vitest';
import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { arrayToTensor, loadCheckpoint, saveCheckpoint, withPrefix } from '../../src/nn/checkpoint.js';
import { randn, tensor } from '../../src/index.js';

const dir = mkdtempSync(join(tmpdir(), 'ganpo-ckpt-'));

test('a checkpoint round-trips tensors of every dtype and its JSON metadata', async () => {
  const tensors = new Map([
    ['policy.w', randn([3, 4])],
    ['policy.x', randn([2], { dtype: 'f64' })],
    ['data.ids', tensor([1, -2, 3], [3], { dtype: 'i32' })],
  ]);
  const path = join(dir, 'a.safetensors');
  await saveCheckpoint(path, tensors, { step: 7, nested: { ok: true } });
  const loaded = await loadCheckpoint(path);
  expect(loaded.metadata).toEqual({ step: 7, nested: { ok: true } });
  for (const [name, t] of tensors) {
    const back = arrayToTensor(loaded.arrays.get(name)!, name, path);
    expect(back.dtype).toBe(t.dtype);
    expect([...back.dataSync()]).toEqual([...t.dataSync()]);
  }
  expect([...withPrefix(loaded.arrays, 'policy.').keys()].sort()).toEqual(['w', 'x']);
});

test('a truncated checkpoint fails with an error naming the file', async () => {
  const path = join(dir, 'b.safetensors');
  await saveCheckpoint(path, new Map([['w', randn([8])]]), {});
  const bytes = readFileSync(path);
  writeFileSync(path, bytes.subarray(0, bytes.length - 5));
  await expect(loadCheckpoint(path)).rejects.toThrow(/b\.safetensors/);
  await expect(loadCheckpoint(join(dir, 'missing.safetensors'))).rejects.toThrow(/cannot read checkpoint .*missing\.safetensors/);
});
