// Prints the README's Performance table from a results file (default bench/results/latest.json):
//   node dist/bench/markdown.js [PATH]
// Paste its output into the README; test/bench/results.test.ts fails while the two disagree.

import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatMarkdown, type BenchResult } from './results.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const path = resolve(process.argv[2] ?? resolve(repoRoot, 'bench/results/latest.json'));
const results = JSON.parse(readFileSync(path, 'utf8')) as BenchResult[];
console.log(formatMarkdown(results));
