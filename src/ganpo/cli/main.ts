#!/usr/bin/env node
// The `ganpo` command line: pretrain, train, eval, generate, and study (the main job).

import { UsageError } from './args.js';
import { pretrainCommand } from './pretrain.js';
import { trainCommand } from './train.js';
import { studyCommand } from './study.js';
import { generateCommand } from './generate.js';
import { evalCommand } from './eval.js';

const COMMANDS: Record<string, { run: (argv: string[]) => Promise<number>; help: string }> = {
  pretrain: { run: pretrainCommand, help: 'pretrain the base GPT on the bundled corpus' },
  study: { run: studyCommand, help: 'the main job: GANPO vs DPO (and SimPO) on the embedded sentiment task (npm start)' },
  generate: { run: generateCommand, help: 'sample continuations from a model' },
  eval: { run: evalCommand, help: 'preference metrics on JSONL data, oracle-scored samples (--sentiment)' },
  train: { run: trainCommand, help: 'preference-train a model on TRL-style JSONL (DPO, IPO, hinge, robust, SimPO; --ganpo)' },
};

function usage(): string {
  const rows = Object.entries(COMMANDS).map(([k, c]) => `  ${k.padEnd(10)} ${c.help}`);
  return `usage: ganpo <command> [options]   (ganpo <command> --help for its options)\n\ncommands:\n${rows.join('\n')}\n`;
}

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    process.stdout.write(usage());
    return cmd ? 0 : 2;
  }
  const c = COMMANDS[cmd];
  if (!c) throw new UsageError(`unknown command '${cmd}'\n${usage()}`);
  return c.run(rest);
}

main(process.argv.slice(2)).then(
  // Dawn keeps the event loop alive: exit explicitly.
  (code) => process.exit(code),
  (err: unknown) => {
    const e = err as Error;
    process.stderr.write(`ganpo: ${e instanceof UsageError ? '' : `${e.name}: `}${e.message}\n`);
    if (process.env.GANPO_DEBUG) process.stderr.write(`${e.stack}\n`);
    process.exit(e instanceof UsageError ? 2 : 1);
  },
);
