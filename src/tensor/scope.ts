// Explicit lifetime: tensors created inside tidy() are freed when it returns, except those it
// returns, those kept with keep(), and those the returned tensors' autodiff graph still needs.

import type { Tensor } from './tensor.js';

const stack: Set<Tensor>[] = [];

export function trackTensor(t: Tensor): void {
  if (stack.length > 0) stack[stack.length - 1].add(t);
}

export function untrackTensor(t: Tensor): void {
  for (let i = stack.length - 1; i >= 0; i--) if (stack[i].delete(t)) return;
}

/** Exempts a tensor from every enclosing scope: it lives until disposed explicitly. */
export function keep<T extends Tensor>(t: T): T {
  untrackTensor(t);
  return t;
}

function collect(value: unknown, out: Set<Tensor>, seen: Set<unknown>): void {
  if (value === null || typeof value !== 'object' || seen.has(value)) return;
  seen.add(value);
  if (isTensor(value)) {
    out.add(value);
    return;
  }
  if (value instanceof Map) {
    for (const v of value.values()) collect(v, out, seen);
  } else if (Array.isArray(value)) {
    for (const v of value) collect(v, out, seen);
  } else if (Object.getPrototypeOf(value) === Object.prototype) {
    for (const v of Object.values(value)) collect(v, out, seen);
  }
}

function isTensor(v: object): v is Tensor {
  return 'shape' in v && 'dispose' in v && 'node' in v;
}

/** Adds the tensors an autodiff graph holds (inputs and saved tensors) reachable from roots. */
function withGraph(roots: Set<Tensor>): Set<Tensor> {
  const out = new Set<Tensor>();
  const todo = [...roots];
  while (todo.length > 0) {
    const t = todo.pop()!;
    if (out.has(t)) continue;
    out.add(t);
    if (t.grad) todo.push(t.grad);
    if (t.node) todo.push(...t.node.inputs, ...t.node.saved);
  }
  return out;
}

/** An open scope made by openScope; close it with closeScope. */
export interface ScopeHandle {
  readonly tensors: Set<Tensor>;
}

/**
 * Opens a scope by hand, for async code that tidy cannot wrap (a training step that awaits a
 * readback). Every tensor created until closeScope is tracked in it. Scopes are process-wide:
 * do not interleave unrelated async tensor work with an open scope.
 */
export function openScope(): ScopeHandle {
  const tensors = new Set<Tensor>();
  stack.push(tensors);
  return { tensors };
}

/**
 * Closes the innermost scope: frees every tensor created in it except those in `result` (tensors
 * anywhere in arrays, Maps or plain objects), kept ones, and what their graphs need; those move
 * to the enclosing scope.
 */
export function closeScope(handle: ScopeHandle, result?: unknown): void {
  if (stack[stack.length - 1] !== handle.tensors) throw new Error('closeScope: scopes must be closed innermost first');
  stack.pop();
  const returned = new Set<Tensor>();
  collect(result, returned, new Set());
  const survivors = withGraph(returned);
  for (const t of handle.tensors) {
    if (survivors.has(t)) trackTensor(t);
    else t.dispose();
  }
}

/**
 * Runs fn and frees every tensor it created except what it returns (tensors anywhere in arrays,
 * Maps or plain objects), what was kept, and what their autodiff graphs need; those move to the
 * enclosing scope. fn must be synchronous: an async fn would escape the scope (use openScope).
 */
export function tidy<T>(fn: () => T): T {
  const handle = openScope();
  let result: T;
  try {
    result = fn();
  } catch (e) {
    closeScope(handle);
    throw e;
  }
  if (result instanceof Promise) {
    closeScope(handle);
    throw new Error('tidy: the function returned a Promise; scopes only work with synchronous functions (use openScope/closeScope)');
  }
  closeScope(handle, result);
  return result;
}

/** Depth of nested scopes (0 outside any tidy). */
export function scopeDepth(): number {
  return stack.length;
}
