// Reverse-mode autodiff: ops record a GradNode on their output; backward() walks the graph once
// in reverse topological order, summing each tensor's incoming gradients.

import { closeScope, keep, openScope, trackTensor } from './scope.js';
import { Tensor, type GradNode, type PendingGrads } from './tensor.js';
import { fmtShape, shapesEqual, ShapeError } from './shape.js';

let gradEnabled = true;

export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** Runs fn without recording any graph (inference, optimizer updates, the backward pass itself). */
export function noGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

/**
 * Whether record() will attach a node for these inputs (recording on, some input requiring a
 * gradient): an op asks before its forward to skip outputs only its backward would read.
 */
export function willRecord(inputs: readonly Tensor[]): boolean {
  return gradEnabled && inputs.some((t) => t.requiresGrad);
}

/** Attaches a node to out when recording is on and some input requires a gradient. */
export function record(op: string, out: Tensor, inputs: readonly Tensor[], backward: GradNode['backward'], saved: readonly Tensor[] = []): Tensor {
  if (willRecord(inputs)) {
    out.requiresGrad = true;
    out.node = { op, inputs, needsGrad: inputs.map((t) => t.requiresGrad), saved, backward };
  }
  return out;
}

function topoOrder(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const visited = new Set<Tensor>();
  // Iterative DFS: deep graphs (long sequences of ops) must not overflow the JS stack.
  const stack: [Tensor, boolean][] = [[root, false]];
  while (stack.length > 0) {
    const [t, expanded] = stack.pop()!;
    if (expanded) {
      order.push(t);
      continue;
    }
    if (visited.has(t)) continue;
    visited.add(t);
    stack.push([t, true]);
    if (t.node) t.node.inputs.forEach((inp, k) => t.node!.needsGrad[k] && !visited.has(inp) && stack.push([inp, false]));
  }
  return order;
}

/** Non-leaf tensors whose node a backward released; they must not pass for leaves afterwards. */
const released = new WeakSet<Tensor>();

export interface BackwardOptions {
  /** Keep the graph so backward can run again through it (default false: the graph is released). */
  retainGraph?: boolean;
}

/**
 * Accumulates d(root)/d(leaf) into leaf.grad for every leaf that requires a gradient. root must be
 * a scalar unless an output gradient of its shape is given.
 */
export function backward(root: Tensor, grad?: Tensor, options: BackwardOptions = {}): void {
  if (!root.requiresGrad) throw new Error(`backward: ${root.label()} does not require grad (no input of its graph has requiresGrad, or it was made under noGrad)`);
  if (grad === undefined && root.size !== 1) throw new ShapeError('backward', `${root.label()} is not a scalar; pass an output gradient of shape ${fmtShape(root.shape)}`);
  if (grad !== undefined && !shapesEqual(grad.shape, root.shape)) throw new ShapeError('backward', `output gradient ${fmtShape(grad.shape)} does not match ${fmtShape(root.shape)}`);
  const order = topoOrder(root);
  const gone = order.find((t) => released.has(t));
  if (gone) {
    throw new Error(`backward: the graph through ${gone.label()} was released by an earlier backward; pass { retainGraph: true } to that call to run backward twice`);
  }
  noGrad(() => {
    const scope = openScope();
    try {
      const grads = new Map<Tensor, Tensor>();
      // A backward may pass one gradient tensor to several inputs (add passes g to both), so a
      // gradient is freed early only when no pending entry still refers to it.
      const refs = new Map<Tensor, number>();
      const hold = (g: Tensor): void => void refs.set(g, (refs.get(g) ?? 0) + 1);
      const release = (g: Tensor): boolean => {
        const n = (refs.get(g) ?? 1) - 1;
        if (n > 0) refs.set(g, n);
        else refs.delete(g);
        return n <= 0;
      };
      const seed = grad ?? onesLikeScalar(root);
      grads.set(root, seed);
      hold(seed);
      for (let i = order.length - 1; i >= 0; i--) {
        const t = order[i];
        const g = grads.get(t);
        if (!g) continue;
        grads.delete(t);
        if (!t.node) {
          // A gradient made by this backward and held by no other entry or view can become the
          // leaf's own, saving a copy per parameter.
          const owned = g !== grad && refs.get(g) === 1 && scope.tensors.has(g) && !g.sharesStorage;
          accumulateLeaf(t, g, owned);
          release(g);
          continue;
        }
        const node = t.node;
        // Inputs whose pending gradient the backward took: its result for them is already the sum.
        const takenAt = new Map<Tensor, number>();
        const pending: PendingGrads = {
          take(k) {
            const inp = node.inputs[k];
            if (!inp || !node.needsGrad[k] || takenAt.has(inp)) return null;
            const prev = grads.get(inp);
            if (prev) takenAt.set(inp, k);
            return prev ?? null;
          },
        };
        const inGrads = node.backward(g, node.needsGrad, pending);
        // Taken inputs first: their results replace the gradient taken, before another occurrence
        // of the same tensor among the inputs adds to it.
        const ks = node.inputs.map((_, k) => k);
        if (takenAt.size > 0) ks.sort((a, b) => Number(takenAt.get(node.inputs[b]) === b) - Number(takenAt.get(node.inputs[a]) === a));
        ks.forEach((k) => {
          const inp = node.inputs[k];
          const gi = inGrads[k];
          if (!gi || !node.needsGrad[k]) {
            if (takenAt.get(inp) === k) throw new Error(`backward of ${node.op}: took the pending gradient of input ${k} but returned no gradient for it`);
            return;
          }
          if (!shapesEqual(gi.shape, inp.shape)) {
            throw new ShapeError(`backward of ${node.op}`, `gradient ${fmtShape(gi.shape)} for input ${k} of shape ${fmtShape(inp.shape)}`);
          }
          const prev = grads.get(inp);
          if (prev && takenAt.get(inp) === k) {
            // gi already includes prev (the backward took it for this input), or is prev itself.
            if (gi === prev) return;
            if (release(prev) && prev !== grad) prev.dispose();
            grads.set(inp, gi);
            hold(gi);
          } else if (prev) {
            const summed = add(prev, gi);
            if (release(prev) && prev !== grad) prev.dispose();
            grads.set(inp, summed);
            hold(summed);
          } else {
            grads.set(inp, gi);
            hold(gi);
          }
        });
        if (release(g) && g !== grad && !refs.has(g)) g.dispose();
      }
    } finally {
      closeScope(scope);
    }
  });
  if (!options.retainGraph) {
    for (const t of order) {
      if (t.node) released.add(t);
      t.node = null;
    }
  }
}

function accumulateLeaf(t: Tensor, g: Tensor, owned: boolean): void {
  if (t.grad) {
    const sum = add(t.grad, g);
    t.grad.dispose();
    t.grad = keep(sum);
  } else {
    // The incoming gradient may be shared with another path; then the leaf gets its own copy.
    t.grad = keep(owned ? g : copyOf(g));
  }
}

function add(a: Tensor, b: Tensor): Tensor {
  return new Tensor(a.backend.binary('add', a.storage, b.storage, a.shape as number[], a.strides, b.strides), a.shape);
}

function copyOf(a: Tensor): Tensor {
  return new Tensor(a.backend.unary('affine', a.storage, [1, 0]), a.shape);
}

function onesLikeScalar(t: Tensor): Tensor {
  const s = t.backend.alloc(t.dtype, t.size);
  t.backend.fill(s, 1);
  return new Tensor(s, t.shape);
}

/**
 * Functional gradients: valueAndGrad(fn)(...xs) returns fn's scalar value and d fn / d x for each
 * argument, without touching the arguments' own .grad.
 */
export function valueAndGrad(fn: (...xs: Tensor[]) => Tensor) {
  return (...xs: Tensor[]): { value: Tensor; grads: Tensor[] } => {
    const leaves = xs.map((x) => {
      const leaf = new Tensor(x.storage, x.shape, x);
      leaf.requiresGrad = true;
      leaf.name = x.name;
      return leaf;
    });
    const value = fn(...leaves);
    if (!value.requiresGrad) throw new Error('valueAndGrad: the function result does not depend on its arguments');
    backward(value);
    // Detach the value before the leaves go: fn may have returned one of them (an identity op).
    const detached = new Tensor(value.storage, value.shape, value);
    const grads = leaves.map((l) => {
      const g = l.grad ?? zerosFor(l);
      l.grad = null;
      // A leaf's .grad is kept out of every scope; as a returned value it belongs to the caller's.
      trackTensor(g);
      l.dispose();
      return g;
    });
    value.dispose();
    return { value: detached, grads };
  };
}

function zerosFor(t: Tensor): Tensor {
  const s = t.backend.alloc(t.dtype, t.size);
  t.backend.fill(s, 0);
  return new Tensor(s, t.shape);
}

export interface OpContext {
  readonly inputs: readonly Tensor[];
  readonly output: Tensor;
  readonly saved: readonly Tensor[];
}

export interface OpDefinition {
  name: string;
  /** Computes the output from the inputs (runs without recording); may return tensors to save for backward. */
  forward: (...inputs: Tensor[]) => Tensor | { output: Tensor; saved?: Tensor[] };
  /** Returns the gradient of each input given the output's gradient (null for inputs without one). */
  backward: (grad: Tensor, ctx: OpContext) => readonly (Tensor | null)[];
}

/** Defines a differentiable op from a forward and a hand-written backward; check it with gradcheck. */
export function defineOp(def: OpDefinition): (...inputs: Tensor[]) => Tensor {
  return (...inputs: Tensor[]): Tensor => {
    const res = noGrad(() => def.forward(...inputs));
    const { output, saved = [] } = res instanceof Tensor ? { output: res, saved: [] } : res;
    const ctx: OpContext = { inputs, output, saved };
    return record(def.name, output, inputs, (g) => {
      const grads = def.backward(g, ctx);
      if (grads.length !== inputs.length) throw new Error(`defineOp '${def.name}': backward returned ${grads.length} gradients for ${inputs.length} inputs`);
      return grads;
    }, saved);
  };
}
