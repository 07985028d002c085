import { describe, expect, test } from 'vitest';
import fc from 'fast-check';
import { Tokenizer } from '../../src/nn/tokenizer.js';
import { BatchSampler, collatePairs, seededPermutation, splitHeldOut, tokenizePairs } from '../../src/ganpo/data.js';
import { responseLogProbs } from '../../src/ganpo/logprobs.js';
import { sentiment } from '../../src/ganpo/oracle.js';
import { Generator } from '../../src/tensor/random/philox.js';
import { randn } from '../../src/index.js';

const tok = Tokenizer.gpt2();
const rec = (prompt: string, chosen: string, rejected: string) => ({ prompt, chosen, rejected });

describe('tokenizing preference pairs', () => {
  test('responses get the end-of-text token and prompts keep their end when truncated', () => {
    const r = tokenizePairs([rec('one two three four five six', ' good', ' bad')], tok, { maxLength: 8, maxPromptLength: 3 });
    const p = r.pairs[0];
    expect(tok.decode(p.prompt)).toBe(' four five six');
    expect(p.chosen.at(-1)).toBe(tok.eotId);
    expect(r.promptsTruncated).toBe(1);
  });
  test('keep_start keeps the beginning of a long prompt', () => {
    const r = tokenizePairs([rec('one two three four five six', ' good', ' bad')], tok, { maxLength: 8, maxPromptLength: 3, truncationMode: 'keep_start' });
    expect(tok.decode(r.pairs[0].prompt)).toBe('one two three');
  });
  test('invalid truncation settings fail with the setting named', () => {
    expect(() => tokenizePairs([rec('a b', ' x', ' y')], tok, { maxLength: 4, maxPromptLength: 4 })).toThrow(/maxPromptLength must be an integer in \[1, maxLength\)/);
    expect(() => tokenizePairs([rec('a b', ' x', ' y')], tok, { maxLength: 1 })).toThrow(/maxLength must be an integer >= 2/);
  });
  test('a response longer than the room left is cut at its end and counted', () => {
    const r = tokenizePairs([rec('a', ' one two three four', ' x')], tok, { maxLength: 3, maxPromptLength: 1 });
    expect(r.pairs[0].chosen.length).toBe(2);
    expect(r.responsesTruncated).toBe(1);
  });
});

describe('collating pairs', () => {
  test('masks and targets line up: a target is set exactly where the next token is a response token', () => {
    fc.assert(fc.property(fc.array(fc.record({
      prompt: fc.array(fc.integer({ min: 1, max: 50 }), { minLength: 1, maxLength: 6 }),
      chosen: fc.array(fc.integer({ min: 1, max: 50 }), { minLength: 1, maxLength: 6 }),
      rejected: fc.array(fc.integer({ min: 1, max: 50 }), { minLength: 1, maxLength: 6 }),
    }), { minLength: 1, maxLength: 4 }), (raw) => {
      const pairs = raw.map((p, index) => ({ index, ...p }));
      const b = collatePairs(pairs, 0);
      const T = b.length;
      expect(b.ids.length).toBe(2 * pairs.length * T);
      for (let r = 0; r < 2 * pairs.length; r++) {
        const p = pairs[r % pairs.length];
        const resp = r < pairs.length ? p.chosen : p.rejected;
        expect(b.responseLengths[r]).toBe(resp.length);
        for (let t = 0; t < T; t++) {
          const o = r * T + t;
          const next = t + 1 < T ? b.responseMask[o + 1] : 0;
          expect(b.targets[o]).toBe(next ? b.ids[o + 1] : -1);
          expect(b.attentionMask[o]).toBe(t < p.prompt.length + resp.length ? 1 : 0);
        }
      }
    }), { numRuns: 50 });
  });
});

describe('response log-probs', () => {
  test('equal the hand sum of log-softmax entries over response tokens', () => {
    const pairs = [{ index: 0, prompt: [1, 2], chosen: [3, 4], rejected: [5] }];
    const b = collatePairs(pairs, 0);
    const V = 7;
    const logits = randn([2, b.length, V], { dtype: 'f64' });
    const L = logits.dataSync();
    const lsm = (r: number, t: number, c: number): number => {
      const o = (r * b.length + t) * V;
      const m = Math.max(...L.subarray(o, o + V));
      let s = 0;
      for (let k = 0; k < V; k++) s += Math.exp(L[o + k] - m);
      return L[o + c] - m - Math.log(s);
    };
    const out = responseLogProbs(logits, b);
    const got = out.sum.dataSync();
    expect(got[0]).toBeCloseTo(lsm(0, 1, 3) + lsm(0, 2, 4), 10);
    expect(got[1]).toBeCloseTo(lsm(1, 1, 5), 10);
    expect([...out.mean.dataSync()].map((x) => +x.toFixed(10))).toEqual([+(got[0] / 2).toFixed(10), +got[1].toFixed(10)]);
  });
});

describe('shuffling and splitting', () => {
  test('seeded permutations are permutations and reproducible', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 200 }), fc.integer({ min: 0, max: 1e6 }), (n, seed) => {
      const a = seededPermutation(n, new Generator(seed));
      expect([...a].sort((x, y) => x - y)).toEqual([...Array(n).keys()]);
      expect(seededPermutation(n, new Generator(seed))).toEqual(a);
    }));
  });
  test('held-out split is disjoint, complete and seeded', () => {
    const items = [...Array(50).keys()];
    const s = splitHeldOut(items, 0.2, 7);
    expect(s.eval.length).toBe(10);
    expect([...s.eval, ...s.train].sort((a, b) => a - b)).toEqual(items);
    expect(splitHeldOut(items, 0.2, 7)).toEqual(s);
  });
  test('the batch sampler covers each epoch once and can jump to any batch', () => {
    const s = new BatchSampler(10, 3, 5);
    const epoch0 = [0, 1, 2].flatMap((b) => s.batch(b));
    expect(new Set(epoch0).size).toBe(9);
    const fresh = new BatchSampler(10, 3, 5);
    expect(fresh.batch(4)).toEqual(s.batch(4));
  });
});

describe('the AFINN oracle', () => {
  test('scores sentiment per word and counts repeated words once', () => {
    expect(sentiment('a good day').score).toBeCloseTo(3 / 3);
    expect(sentiment('good good good').score).toBeCloseTo(3 / 3);
    expect(sentiment('terrible').score).toBeLessThan(0);
    expect(sentiment('').score).toBe(0);
  });
});

describe('response log-probs at response rows only', () => {
  test('equal the full-logits computation, values and gradients', async () => {
    const { responseRows, responseLogProbsAtRows } = await import('../../src/ganpo/logprobs.js');
    const { gradcheck, indexSelect, reshape, tensor: mk } = await import('../../src/index.js');
    const pairs = [{ index: 0, prompt: [1, 2], chosen: [3, 4], rejected: [5] }, { index: 1, prompt: [2], chosen: [6], rejected: [1, 2, 3] }];
    const b = collatePairs(pairs, 0);
    const V = 7;
    const logits = randn([4, b.length, V], { dtype: 'f64' });
    const rows = responseRows(b);
    const full = (l: typeof logits) => responseLogProbs(l, b).sum;
    const atRows = (l: typeof logits) => responseLogProbsAtRows(indexSelect(reshape(l, [4 * b.length, V]), 0, mk(rows, [rows.length], { dtype: 'i32' })), b, rows).sum;
    const a = full(logits).dataSync();
    const c = atRows(logits).dataSync();
    a.forEach((v, i) => expect(c[i]).toBeCloseTo(v, 10));
    const r = gradcheck((l) => atRows(l), [logits]);
    expect(r.ok, r.report).toBe(true);
  });
});
