// The matmul's store epilogues, applied to each output value after the bias as it is stored, in
// every kernel family (matmul.ts, matmulTiles.ts): a GELU (erf or tanh form), optionally also
// storing its input (the pre-activation, which the backward needs) to a second output; or a
// residual tensor of the output's shape added (read once, at the store). Each rounds where the
// unfused kernels round: the activation is the unary kernel's own WGSL (unaryFunctionWGSL) applied
// to the same f32 value matmul would have stored, and the residual add is binary('add')'s
// `residual + value`, so a fused matmul equals matmul then gelu, or matmul then add, bit for bit.

import type { MatmulActivation } from '../tensor/backend.js';
import { unaryFunctionWGSL } from './elementwise.js';
import type { StorageAccess } from './kernel.js';

/** The store epilogue of a matmul kernel: flags of its pipeline key (none: the kernel as it was). */
export interface MatmulStoreEpilogue {
  /** out = act(acc + bias). */
  activation?: MatmulActivation | null;
  /** With an activation: pre = acc + bias stored too (one more read_write binding). */
  keepPre?: boolean;
  /** out = residual + (acc + bias), residual one more read binding laid out like out. */
  residual?: boolean;
}

/** Throws unless e is one of the supported forms (an activation, with or without pre; or a residual). */
export function checkStoreEpilogue(e: MatmulStoreEpilogue): void {
  if (e.activation && e.residual) throw new Error('matmul: an activation and a residual in one epilogue are not supported');
  if (e.keepPre && !e.activation) throw new Error('matmul: keepPre needs an activation');
}

/** The part of a pipeline key (and of a kernel name: with spaces) naming e; '' for none. */
export function storeEpilogueTag(e: MatmulStoreEpilogue, sep: '/' | ' +'): string {
  if (e.activation) return `${sep}${e.activation}${e.keepPre ? '+pre' : ''}`;
  return e.residual ? `${sep}residual` : '';
}

/** Access modes of e's bindings (after out and the bias). */
export function storeEpilogueStorage(e: MatmulStoreEpilogue): StorageAccess[] {
  if (e.residual) return ['read'];
  return e.keepPre ? ['read_write'] : [];
}

/**
 * e's bindings from `binding` on (residual: read, or pre: read_write; elements `outElem`, as out)
 * and the activation functions act (f32, the unary kernel's) and act4 (per lane, as the unary
 * kernel's vec4 form); '' for none.
 */
export function storeEpilogueWGSL(e: MatmulStoreEpilogue, binding: number, outElem: string): string {
  const lines: string[] = [];
  if (e.residual) lines.push(`@group(0) @binding(${binding}) var<storage, read> residual: array<${outElem}>;`);
  if (e.keepPre) lines.push(`@group(0) @binding(${binding}) var<storage, read_write> pre: array<${outElem}>;`);
  if (e.activation) {
    lines.push(unaryFunctionWGSL(e.activation, 'act'));
    lines.push('fn act4(v: vec4<f32>) -> vec4<f32> { return vec4<f32>(act(v.x), act(v.y), act(v.z), act(v.w)); }');
  }
  return lines.length ? `${lines.join('\n')}\n` : '';
}

/**
 * The WGSL statement(s) storing `value` (f32, or vec4<f32> when vec) at out[idx] through e; for
 * no epilogue exactly `out[idx] = value;`. Callers place it inside braces (it may declare `pv`).
 */
export function storeWGSL(e: MatmulStoreEpilogue, idx: string, value: string, vec: boolean): string {
  if (e.activation) {
    const act = vec ? 'act4' : 'act';
    return e.keepPre ? `let pv = ${value}; pre[${idx}] = pv; out[${idx}] = ${act}(pv);` : `out[${idx}] = ${act}(${value});`;
  }
  if (e.residual) return `out[${idx}] = residual[${idx}] + (${value});`;
  return `out[${idx}] = ${value};`;
}
