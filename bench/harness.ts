// Timing with tinybench: each case's tasks (ours and its peer) run in alternating rounds in one
// process, so a change in machine load during the run hits both; the median of all samples is kept.
// Every timed call must end with its GPU work complete (a readback or a queue wait).

import { Bench } from 'tinybench';

export interface Plan {
  /** Rounds of the tasks, alternating their order. */
  rounds: number;
  /** Timed calls per task per round. */
  iterations: number;
  /** Untimed calls per task before the first round (pipeline compilation, pool warm-up). */
  warmup: number;
}

export interface Timing {
  median_ms: number;
  samples: number;
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Times each named task; returns the median over all rounds of each. */
export async function timeTasks(tasks: Record<string, () => Promise<unknown>>, plan: Plan): Promise<Record<string, Timing>> {
  const names = Object.keys(tasks);
  const samples = new Map<string, number[]>(names.map((n) => [n, []]));
  for (let round = 0; round < plan.rounds; round++) {
    const bench = new Bench({
      iterations: plan.iterations,
      time: 0,
      warmup: round === 0 && plan.warmup > 0,
      warmupIterations: plan.warmup,
      warmupTime: 0,
      retainSamples: true,
      throws: true,
    });
    const order = round % 2 === 0 ? names : [...names].reverse();
    for (const n of order) bench.add(n, tasks[n]);
    await bench.run();
    for (const task of bench.tasks) {
      const r = task.result;
      if (r.state !== 'completed') throw new Error(`bench task ${task.name} ended ${r.state}`);
      samples.get(task.name)!.push(...(r.latency.samples ?? []));
    }
  }
  return Object.fromEntries(names.map((n) => {
    const xs = samples.get(n)!;
    if (xs.length === 0) throw new Error(`bench task ${n} recorded no samples`);
    return [n, { median_ms: median(xs), samples: xs.length }];
  }));
}
