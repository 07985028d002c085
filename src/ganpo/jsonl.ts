// Reader for TRL-style preference datasets in JSON Lines ({prompt, chosen, rejected} per line, as
// plain text or as chat messages) that rejects bad input with `file:line: reason`, and the chat
// template that turns a conversational record into the prompt/chosen/rejected texts we train on.
import { readFile } from 'node:fs/promises';

export type Role = 'system' | 'user' | 'assistant';
export interface Message {
  role: Role;
  content: string;
}
export interface PreferenceRecord {
  prompt: string | Message[];
  chosen: string | Message[];
  rejected: string | Message[];
}

/** A dataset problem at a given line (1-based); the message reads `file:line: reason`. */
export class DataError extends Error {
  constructor(
    readonly file: string,
    readonly line: number,
    readonly reason: string,
  ) {
    super(`${file}:${line}: ${reason}`);
    this.name = 'DataError';
  }
}

export interface JsonlOptions {
  /** Longest accepted line in UTF-8 bytes (default 1 MiB); longer ones are rejected before decoding. */
  maxLineBytes?: number;
}

const DEFAULT_MAX_LINE_BYTES = 1 << 20;
const ROLES: readonly Role[] = ['system', 'user', 'assistant'];
const FIELDS = ['prompt', 'chosen', 'rejected'] as const;

export async function readPreferenceJsonl(path: string, opts?: JsonlOptions): Promise<PreferenceRecord[]> {
  return parsePreferenceJsonl(await readFile(path), path, opts);
}

/**
 * Parse preference JSONL. Blank lines are skipped; extra fields on a record are ignored (datasets
 * often carry scores or ids). Throws DataError on the first problem, or if there are no records.
 */
export function parsePreferenceJsonl(text: string | Uint8Array, file: string, opts?: JsonlOptions): PreferenceRecord[] {
  const maxLineBytes = opts?.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
  const records: PreferenceRecord[] = [];
  let lineNo = 0;
  for (const raw of lines(text, file, maxLineBytes)) {
    lineNo = raw.lineNo;
    const line = raw.text.endsWith('\r') ? raw.text.slice(0, -1) : raw.text;
    if (line.trim() === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (err) {
      throw new DataError(file, lineNo, `invalid JSON (${err instanceof Error ? err.message : String(err)})`);
    }
    records.push(toRecord(value, (reason) => new DataError(file, lineNo, reason)));
  }
  if (records.length === 0) throw new DataError(file, Math.max(lineNo, 1), 'no preference records in the dataset');
  return records;
}

/**
 * Split into lines with 1-based numbers, checking each line's byte length before any decoding so a
 * huge line costs one newline scan rather than a JSON parse. Bytes are decoded strictly per line, so
 * invalid UTF-8 is reported where it occurs.
 */
function* lines(input: string | Uint8Array, file: string, maxLineBytes: number): Generator<{ lineNo: number; text: string }> {
  const tooLong = (lineNo: number, bytes: number) =>
    new DataError(file, lineNo, `line is ${bytes} bytes, longer than the ${maxLineBytes}-byte limit`);
  let lineNo = 0;
  if (typeof input === 'string') {
    let start = input.charCodeAt(0) === 0xfeff ? 1 : 0;
    while (start <= input.length) {
      lineNo++;
      let end = input.indexOf('\n', start);
      if (end < 0) end = input.length;
      // A UTF-16 unit is at most 3 UTF-8 bytes, so only lines that might be too long get measured.
      if ((end - start) * 3 > maxLineBytes) {
        const bytes = Buffer.byteLength(input.slice(start, end), 'utf8');
        if (bytes > maxLineBytes) throw tooLong(lineNo, bytes);
      }
      yield { lineNo, text: input.slice(start, end) };
      start = end + 1;
    }
    return;
  }
  const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  let start = input[0] === 0xef && input[1] === 0xbb && input[2] === 0xbf ? 3 : 0;
  while (start <= input.length) {
    lineNo++;
    let end = input.indexOf(0x0a, start);
    if (end < 0) end = input.length;
    if (end - start > maxLineBytes) throw tooLong(lineNo, end - start);
    let text: string;
    try {
      text = decoder.decode(input.subarray(start, end));
    } catch {
      throw new DataError(file, lineNo, 'invalid UTF-8');
    }
    yield { lineNo, text };
    start = end + 1;
  }
}

function toRecord(value: unknown, error: (reason: string) => DataError): PreferenceRecord {
  if (!isPlainObject(value)) throw error(`expected a JSON object with prompt, chosen and rejected, got ${kindOf(value)}`);
  const rec = {} as Record<(typeof FIELDS)[number], string | Message[]>;
  for (const field of FIELDS) {
    const v = value[field];
    if (v === undefined) throw error(`missing field "${field}"`);
    if (typeof v === 'string') {
      if (v === '') throw error(`field "${field}" is empty`);
      rec[field] = v;
    } else if (Array.isArray(v)) {
      if (v.length === 0) throw error(`field "${field}" is an empty message list`);
      rec[field] = v.map((m, i) => toMessage(m, `${field}[${i}]`, error));
    } else {
      throw error(`field "${field}" must be a string or a list of messages, got ${kindOf(v)}`);
    }
  }
  // Mixed forms have no single reading (is a string prompt already templated?), so refuse them.
  const conversational = FIELDS.map((f) => typeof rec[f] !== 'string');
  if (conversational.some((c) => c !== conversational[0])) {
    throw error('prompt, chosen and rejected must all be strings or all be message lists');
  }
  for (const field of ['chosen', 'rejected'] as const) {
    const list = rec[field];
    if (typeof list === 'string') continue;
    // Completions hold only the model's turns: other roles would be dropped by recordToText.
    const i = list.findIndex((m) => m.role !== 'assistant');
    if (i >= 0) throw error(`${field}[${i}]: completion messages must have role "assistant", got "${list[i]!.role}"`);
  }
  return rec;
}

function toMessage(m: unknown, where: string, error: (reason: string) => DataError): Message {
  if (!isPlainObject(m)) throw error(`${where}: a message must be an object with role and content, got ${kindOf(m)}`);
  const { role, content } = m;
  if (role === undefined) throw error(`${where}: missing "role"`);
  if (typeof role !== 'string' || !(ROLES as readonly string[]).includes(role)) {
    throw error(`${where}: unknown role ${short(role)} (expected ${ROLES.join(', ')})`);
  }
  if (content === undefined) throw error(`${where}: missing "content"`);
  if (typeof content !== 'string') throw error(`${where}: "content" must be a string, got ${kindOf(content)}`);
  return { role: role as Role, content };
}

function isPlainObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function kindOf(x: unknown): string {
  return x === null ? 'null' : Array.isArray(x) ? 'an array' : typeof x;
}

function short(x: unknown): string {
  const s = JSON.stringify(x) ?? String(x);
  return s.length > 40 ? `${s.slice(0, 37)}...` : s;
}

/**
 * The chat template: each message as `<|role|>\n{content}\n`, followed by the generation header
 * `<|assistant|>\n` so the model continues as the assistant. For example
 * `<|system|>\nBe brief.\n<|user|>\nHi\n<|assistant|>\n`.
 */
export function renderChat(messages: readonly Message[]): string {
  return messages.map((m) => `<|${m.role}|>\n${m.content}\n`).join('') + '<|assistant|>\n';
}

/**
 * Flatten a record to training text. Conversational: the prompt is rendered with renderChat, and a
 * completion is its assistant contents joined by the template's turn separator, so that
 * prompt + completion is exactly the rendered full conversation up to its final newline.
 */
export function recordToText(rec: PreferenceRecord): { prompt: string; chosen: string; rejected: string } {
  const completion = (c: string | Message[]) =>
    typeof c === 'string' ? c : c.map((m) => m.content).join('\n<|assistant|>\n');
  return {
    prompt: typeof rec.prompt === 'string' ? rec.prompt : renderChat(rec.prompt),
    chosen: completion(rec.chosen),
    rejected: completion(rec.rejected),
  };
}
