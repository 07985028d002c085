// Waiting on the GPU without spinning a CPU core.
//
// While a promise of dawn.node is pending (queue.onSubmittedWorkDone, buffer.mapAsync), dawn.node
// polls its instance for events by rescheduling itself with the global setImmediate: the
// JavaScript thread busy-loops until the work is done. On a real GPU that only costs a core. On a
// software adapter (lavapipe) the "GPU" is the CPU's cores, and the poller competes with the driver
// for them: measured on the 2-core machine, one 1024³ matmul waited on that way took 105-121 ms,
// and 71-75 ms with the poller asleep between polls.
//
// politely(wait) runs a wait with setImmediate put to sleep first: each immediate scheduled
// during the wait blocks the thread (Atomics.wait: a futex sleep, no CPU) before it is queued, for
// a tenth of the time waited so far, between MIN_SLEEP_MS and MAX_SLEEP_MS. A short wait thus
// polls often and ends promptly (a 2 ms kernel), a long one wakes about once a millisecond and is
// at most about 10% late; no timer or handle type changes (clearImmediate and
// promisify(setImmediate) are untouched). Measured (2 cores, lavapipe): a fixed 0.1 ms sleep kept
// too many wakeups (1024³ matmul 106 ms), a 1 ms timer cost short kernels a millisecond each. Other code that schedules immediates during such a wait
// is slowed the same way. The patch is installed once per process (shared by every copy of this
// module) and is inert outside politely(): setImmediate then goes straight to Node's own.

const STATE = Symbol.for('ganpo.politeWait');

/** Shortest and longest sleep of a poll during a polite wait, in milliseconds. */
export const MIN_SLEEP_MS = 0.05;
export const MAX_SLEEP_MS = 1;

interface State {
  /** politely() calls in progress. */
  waiting: number;
  /** performance.now() when the outermost wait in progress began. */
  since: number;
  /** Polls that slept (tests, diagnostics). */
  sleeps: number;
}

type Callback = (...args: unknown[]) => void;

function install(): State {
  const g = globalThis as typeof globalThis & { [STATE]?: State };
  const existing = g[STATE];
  if (existing) return existing;
  const state: State = { waiting: 0, since: 0, sleeps: 0 };
  const nativeSet = globalThis.setImmediate;
  const cell = new Int32Array(new SharedArrayBuffer(4));
  const politeSet = (fn: Callback, ...args: unknown[]): unknown => {
    if (state.waiting > 0) {
      const ms = Math.min(MAX_SLEEP_MS, Math.max(MIN_SLEEP_MS, (performance.now() - state.since) / 10));
      Atomics.wait(cell, 0, 0, ms);
      state.sleeps++;
    }
    return nativeSet(fn, ...args);
  };
  // Keep Node's own properties (util.promisify.custom among them) on the replacement.
  for (const key of Reflect.ownKeys(nativeSet)) {
    if (!(key in politeSet)) Object.defineProperty(politeSet, key, Object.getOwnPropertyDescriptor(nativeSet, key)!);
  }
  globalThis.setImmediate = politeSet as unknown as typeof setImmediate;
  g[STATE] = state;
  return state;
}

/** Runs wait() with dawn.node's event polling asleep between polls instead of busy. */
export async function politely<T>(wait: () => Promise<T>): Promise<T> {
  const state = install();
  if (state.waiting === 0) state.since = performance.now();
  state.waiting++;
  try {
    return await wait();
  } finally {
    state.waiting--;
  }
}

/** politely() calls in progress, and polls that slept so far (tests). */
export function politeWaitStats(): { waiting: number; sleeps: number } {
  const s = (globalThis as typeof globalThis & { [STATE]?: State })[STATE];
  return { waiting: s?.waiting ?? 0, sleeps: s?.sleeps ?? 0 };
}

/**
 * Whether waits should be polite: GANPO_POLITE_WAIT=1 or 0 forces it; by default on a software
 * adapter only (on a GPU the poll costs an otherwise idle core and nothing else).
 */
export function politeWaitFor(adapterIsSoftware: boolean, env: Readonly<Record<string, string | undefined>> = process.env): boolean {
  const v = env.GANPO_POLITE_WAIT;
  if (v === '1') return true;
  if (v === '0') return false;
  return adapterIsSoftware;
}
