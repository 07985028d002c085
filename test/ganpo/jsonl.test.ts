// Preference JSONL: valid records parse in both forms, every problem is a DataError at the right
// line, arbitrary input never escapes as another exception, and the chat template is consistent.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  DataError,
  type Message,
  parsePreferenceJsonl,
  type PreferenceRecord,
  readPreferenceJsonl,
  recordToText,
  renderChat,
} from '../../src/ganpo/jsonl.js';

const enc = new TextEncoder();
const line = (o: unknown) => JSON.stringify(o);

const roleArb = fc.constantFrom('system' as const, 'user' as const, 'assistant' as const);
const messageArb = fc.record({ role: roleArb, content: fc.string() });
const assistantArb = fc.record({ role: fc.constant('assistant' as const), content: fc.string() });
const textRecordArb = fc.record({ prompt: fc.string({ minLength: 1 }), chosen: fc.string({ minLength: 1 }), rejected: fc.string({ minLength: 1 }) });
const chatRecordArb = fc.record({
  prompt: fc.array(messageArb, { minLength: 1, maxLength: 4 }),
  chosen: fc.array(assistantArb, { minLength: 1, maxLength: 2 }),
  rejected: fc.array(assistantArb, { minLength: 1, maxLength: 2 }),
});
const recordArb: fc.Arbitrary<PreferenceRecord> = fc.oneof(textRecordArb, chatRecordArb);

function dataError(run: () => unknown): DataError {
  try {
    run();
  } catch (err) {
    expect(err).toBeInstanceOf(DataError);
    return err as DataError;
  }
  throw new Error('expected a DataError');
}

describe('parsePreferenceJsonl: valid input', () => {
  it('round-trips random records in both forms, from a string and from bytes, skipping blank lines', () => {
    fc.assert(
      fc.property(fc.array(recordArb, { minLength: 1, maxLength: 5 }), fc.constantFrom('\n', '\r\n', '\n\n', '\n  \n'), (recs, sep) => {
        const text = recs.map(line).join(sep) + sep;
        expect(parsePreferenceJsonl(text, 'd.jsonl')).toEqual(recs);
        expect(parsePreferenceJsonl(enc.encode(text), 'd.jsonl')).toEqual(recs);
      }),
      { numRuns: 300 },
    );
  });

  it('ignores extra fields and a leading BOM', () => {
    const text = '\ufeff' + line({ prompt: 'p', chosen: 'c', rejected: 'r', score: 3 });
    expect(parsePreferenceJsonl(text, 'd')).toEqual([{ prompt: 'p', chosen: 'c', rejected: 'r' }]);
    expect(parsePreferenceJsonl(enc.encode(text), 'd')).toEqual([{ prompt: 'p', chosen: 'c', rejected: 'r' }]);
  });

  it('readPreferenceJsonl reads a file and names it in errors', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'jsonl-'));
    try {
      const path = join(dir, 'prefs.jsonl');
      writeFileSync(path, line({ prompt: 'p', chosen: 'c', rejected: 'r' }) + '\n');
      expect(await readPreferenceJsonl(path)).toHaveLength(1);
      writeFileSync(path, line({ prompt: 'p', chosen: 'c', rejected: 'r' }) + '\n{oops\n');
      await expect(readPreferenceJsonl(path)).rejects.toThrow(`${path}:2: invalid JSON`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('parsePreferenceJsonl: each problem is a DataError at file:line', () => {
  const ok = line({ prompt: 'p', chosen: 'c', rejected: 'r' });
  const chat = (o: Partial<Record<'prompt' | 'chosen' | 'rejected', unknown>>) =>
    line({ prompt: [{ role: 'user', content: 'hi' }], chosen: [{ role: 'assistant', content: 'a' }], rejected: [{ role: 'assistant', content: 'b' }], ...o });
  const cases: [string, string, RegExp][] = [
    ['invalid JSON', '{"prompt": ', /invalid JSON/],
    ['not an object (array)', '[1, 2]', /expected a JSON object .* got an array/],
    ['not an object (string)', '"text"', /got string/],
    ['not an object (null)', 'null', /got null/],
    ['missing field', line({ prompt: 'p', chosen: 'c' }), /missing field "rejected"/],
    ['empty field', line({ prompt: '', chosen: 'c', rejected: 'r' }), /field "prompt" is empty/],
    ['wrong-typed field', line({ prompt: 'p', chosen: 3, rejected: 'r' }), /field "chosen" must be a string or a list of messages, got number/],
    ['empty message list', chat({ prompt: [] }), /field "prompt" is an empty message list/],
    ['message not an object', chat({ prompt: ['hi'] }), /prompt\[0\]: a message must be an object/],
    ['unknown role', chat({ prompt: [{ role: 'tool', content: 'x' }] }), /prompt\[0\]: unknown role "tool"/],
    ['missing role', chat({ prompt: [{ content: 'x' }] }), /prompt\[0\]: missing "role"/],
    ['missing content', chat({ chosen: [{ role: 'assistant' }] }), /chosen\[0\]: missing "content"/],
    ['wrong-typed content', chat({ rejected: [{ role: 'assistant', content: ['x'] }] }), /rejected\[0\]: "content" must be a string, got an array/],
    ['non-assistant completion', chat({ chosen: [{ role: 'assistant', content: 'a' }, { role: 'user', content: 'u' }] }), /chosen\[1\]: completion messages must have role "assistant", got "user"/],
    ['mixed forms', chat({ prompt: 'plain' }), /must all be strings or all be message lists/],
  ];
  it.each(cases)('%s', (_what, bad, reason) => {
    const text = `${ok}\n\n${bad}\n${ok}\n`; // the bad record sits on line 3
    for (const input of [text, enc.encode(text)]) {
      const err = dataError(() => parsePreferenceJsonl(input, 'prefs.jsonl'));
      expect(err.file).toBe('prefs.jsonl');
      expect(err.line).toBe(3);
      expect(err.message).toMatch(/^prefs\.jsonl:3: /);
      expect(err.message).toMatch(reason);
    }
  });

  it('invalid UTF-8 is reported at its line', () => {
    const bytes = new Uint8Array([...enc.encode(ok + '\n'), ...enc.encode('{"prompt": "'), 0xc3, 0x28, ...enc.encode('"}\n')]);
    const err = dataError(() => parsePreferenceJsonl(bytes, 'prefs.jsonl'));
    expect(err.message).toBe('prefs.jsonl:2: invalid UTF-8');
  });

  it('an empty dataset is an error', () => {
    for (const text of ['', '\n\n  \n', enc.encode('')]) {
      expect(dataError(() => parsePreferenceJsonl(text, 'e.jsonl')).message).toMatch(/^e\.jsonl:\d+: no preference records/);
    }
  });

  it('a 10 MB line is rejected quickly with its line number, from bytes and from a string', () => {
    const big = `${ok}\n{"prompt": "${'x'.repeat(10 << 20)}", "chosen": "c", "rejected": "r"}\n${ok}\n`;
    const bytes = enc.encode(big);
    for (const input of [bytes, big]) {
      const t0 = performance.now();
      const err = dataError(() => parsePreferenceJsonl(input, 'big.jsonl'));
      expect(performance.now() - t0).toBeLessThan(500);
      expect(err.line).toBe(2);
      expect(err.message).toMatch(/^big\.jsonl:2: line is 10485806 bytes, longer than the 1048576-byte limit/);
    }
  });

  it('maxLineBytes is configurable and counts UTF-8 bytes', () => {
    const rec = line({ prompt: 'é'.repeat(20), chosen: 'c', rejected: 'r' }); // 40 bytes of é
    expect(dataError(() => parsePreferenceJsonl(rec, 'f', { maxLineBytes: 50 })).message).toMatch(/^f:1: line is \d+ bytes/);
    expect(parsePreferenceJsonl(rec, 'f', { maxLineBytes: 200 })).toHaveLength(1);
    expect(dataError(() => parsePreferenceJsonl(enc.encode(rec), 'f', { maxLineBytes: 50 })).line).toBe(1);
  });
});

describe('fuzzing: any input parses or throws DataError', () => {
  const check = (input: string | Uint8Array) => {
    try {
      parsePreferenceJsonl(input, 'fuzz', { maxLineBytes: 64 });
    } catch (err) {
      if (!(err instanceof DataError)) throw err;
      expect(err.message.startsWith(`fuzz:${err.line}: `)).toBe(true);
    }
  };
  it('random strings', () => {
    fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 200 }), check), { numRuns: 2000 });
  });
  it('random bytes', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), check), { numRuns: 2000 });
  });
  it('random JSON values per line', () => {
    fc.assert(fc.property(fc.array(fc.jsonValue(), { maxLength: 4 }), (vs) => check(vs.map((v) => JSON.stringify(v)).join('\n'))), { numRuns: 1000 });
  });
  it('records with random field values', () => {
    const val = fc.oneof(fc.string(), fc.array(fc.oneof(messageArb, fc.jsonValue()), { maxLength: 2 }), fc.jsonValue());
    const rec = fc.record({ prompt: val, chosen: val, rejected: val }, { requiredKeys: [] });
    fc.assert(fc.property(fc.array(rec, { maxLength: 3 }), (rs) => check(rs.map(line).join('\n'))), { numRuns: 1000 });
  });
});

describe('chat template', () => {
  it('renders roles as headers and ends with the assistant generation header', () => {
    const msgs: Message[] = [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'Hi' },
    ];
    expect(renderChat(msgs)).toBe('<|system|>\nBe brief.\n<|user|>\nHi\n<|assistant|>\n');
  });

  it('recordToText: prompt + completion + "\\n" equals the rendered whole conversation', () => {
    fc.assert(
      fc.property(chatRecordArb, (rec) => {
        const t = recordToText(rec);
        expect(t.prompt).toBe(renderChat(rec.prompt));
        const whole = renderChat([...rec.prompt, ...rec.chosen]);
        expect(t.prompt + t.chosen + '\n' + '<|assistant|>\n').toBe(whole);
      }),
    );
  });

  it('recordToText passes plain text through', () => {
    expect(recordToText({ prompt: 'p', chosen: 'c', rejected: 'r' })).toEqual({ prompt: 'p', chosen: 'c', rejected: 'r' });
  });
});
