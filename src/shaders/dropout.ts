// Dropout kernels: a mask drawn from the dropout domain of the Philox stream (element i of a slab
// at stream position offset + i, lane (offset + i) mod 4 of its block, as fillDropoutUniform in
// src/tensor/random/philox.ts, so GPU and CPU agree), alone or applied to an input in the same pass,
// with the neighbours a transformer puts around a dropout fused in (a GELU before, a residual add
// after); and the GELU-dropout backward in one pass.
//
// Dispatch geometry: grid-stride loops over at most maxGroups workgroups of 256 invocations; in the
// mask kernels an iteration is one Philox block, the (up to) 4 elements of a slab it holds.

import type { DropoutActivation } from '../tensor/backend.js';
import { splitOffset } from '../tensor/random/philox.js';
import { unaryFunctionWGSL, unrolledMain } from './elementwise.js';
import { cachedKernel, gridStride, gridStrideLoopWGSL, type Kernel, type Launch, packUniforms, type StorageAccess, type UniformField } from './kernel.js';
import { philoxWGSL } from './philox.js';
import { STRIDED_WG } from './strided.js';

const WORKGROUP = 256;

/** Most slabs a dropout mask may draw from separate stream positions (one per stacked model). */
export const MAX_DROPOUT_SLABS = 4;

/** What an applying dropout pass computes besides the mask: y = residual + act(x) · mask, each part optional. */
export interface DropoutApplyForm {
  activation?: DropoutActivation;
  residual?: boolean;
}

/** The mask kernel (form null), or the applying kernel of a form. */
function dropoutKernel(form: DropoutApplyForm | null): Kernel {
  const act = form?.activation ?? null;
  const residual = form?.residual ?? false;
  return cachedKernel(`dropout|${form ? `apply|${act}|${residual}` : 'mask'}`, () => buildDropout(form !== null, act, residual));
}

function buildDropout(apply: boolean, act: DropoutActivation | null, residual: boolean): Kernel {
  const names = apply ? ['x', ...(residual ? ['residual'] : []), 'out', 'mask'] : ['out'];
  const storage: StorageAccess[] = names.map((n) => (n === 'out' || n === 'mask' ? 'read_write' : 'read'));
  const bindings = names.map((n, k) => `@group(0) @binding(${k + 1}) var<storage, ${storage[k]}> ${n}: array<f32>;`).join('\n');
  const masked = `m * ${act ? 'act(x[k])' : 'x[k]'}`;
  // With a residual the product is rounded before the sum, as the composed ops store it: its bits
  // OR-ed with u.zero (always 0, unknown to the compiler) keep a driver from contracting the two
  // into one fused multiply-add, which would round once and differ from dropout then add.
  const y = residual ? `residual[k] + bitcast<f32>(bitcast<u32>(${masked}) | u.zero)` : masked;
  const code = /* wgsl */ `
struct Uniforms { blocks: u32, key0: u32, key1: u32, slab: u32, keep: f32, scale: f32, zero: u32, slabBlocks: u32, offsets: array<vec4<u32>, ${MAX_DROPOUT_SLABS / 2}> }
@group(0) @binding(0) var<uniform> u: Uniforms;
${bindings}
${philoxWGSL}
${act ? unaryFunctionWGSL(act, 'act') : ''}

@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  ${gridStrideLoopWGSL(WORKGROUP, 'u.blocks')} {
    // Iteration i is block j of slab s, which draws from its own stream position o, (lo, hi) pair s
    // of offsets. Element e of the slab is position o + e: lane (o + e) mod 4 of block
    // floor(o / 4) + j where 4j + lane = phase + e, phase = o mod 4.
    let s = i / u.slabBlocks;
    let j = i - s * u.slabBlocks;
    let pair = u.offsets[s / 2u];
    let o = select(pair.xy, pair.zw, (s & 1u) == 1u);
    let phase = o.x & 3u;
    if (4u * j >= phase + u.slab) { continue; }
    let w = philoxDropoutBlock(vec2<u32>(u.key0, u.key1), o.x, o.y, j);
    for (var lane = 0u; lane < 4u; lane = lane + 1u) {
      let at = 4u * j + lane;
      if (at < phase || at - phase >= u.slab) { continue; }
      let k = s * u.slab + at - phase;
      let m = select(0.0, u.scale, philoxUnit(w[lane]) < u.keep);
      ${apply ? `mask[k] = m;
      out[k] = ${y};` : 'out[k] = m;'}
    }
  }
}
`;
  const name = apply ? `dropoutApply${act || residual ? `[${[act, residual ? '+residual' : null].filter(Boolean).join(',')}]` : ''}` : 'dropoutMask';
  return { name, code, storage };
}

/**
 * A dropout mask in one kernel: scale where the dropout uniform of element i is below keep, else 0
 * (keep = 1 − p and scale = 1/(1 − p), rounded to f32 by the caller), the values of (u < keep) ·
 * scale for the uniforms u of fillDropoutUniform; storage [out: read_write]. offsets: one stream
 * position for the whole mask, or one per equal slab (at most MAX_DROPOUT_SLABS), element j of
 * slab s drawn at offsets[s] + j (a stack of models, each drawing what it would alone); an offset
 * need not be a multiple of 4 (a slab may start and end inside a block). A grid-stride loop over
 * the slabs' Philox blocks on at most maxGroups workgroups (few on a software adapter, where each
 * costs microseconds).
 */
export function dropoutMaskLaunch(size: number, key: [number, number], offsets: number | readonly number[], keep: number, scale: number, maxGroups: number): Launch {
  return dropoutLaunch(dropoutKernel(null), size, key, offsets, keep, scale, maxGroups);
}

/**
 * dropoutMaskLaunch's mask applied to an input in the same pass: out = residual + act(x) · mask,
 * the activation and the residual as the form asks, and the mask kept for the backward (redrawing
 * it there would cost the Philox rounds again, which dominate on a CPU adapter). Storage [x: read,
 * residual: read (with a residual), out: read_write, mask: read_write]. Each step rounds to f32 as
 * the composed kernels do (unary act, binary mul, binary add), so out is bit-identical to them.
 */
export function dropoutApplyLaunch(size: number, key: [number, number], offsets: number | readonly number[], keep: number, scale: number, maxGroups: number,
  form: DropoutApplyForm = {}): Launch {
  return dropoutLaunch(dropoutKernel(form), size, key, offsets, keep, scale, maxGroups);
}

function dropoutLaunch(kernel: Kernel, size: number, key: [number, number], offsets: number | readonly number[], keep: number, scale: number, maxGroups: number): Launch {
  const offs = typeof offsets === 'number' ? [offsets] : offsets;
  if (offs.length < 1 || offs.length > MAX_DROPOUT_SLABS || size % offs.length !== 0) {
    throw new RangeError(`dropoutMask: ${offs.length} slab offsets for ${size} elements (1 to ${MAX_DROPOUT_SLABS}, dividing the size)`);
  }
  const slab = size / offs.length;
  // Blocks a slab spans at the worst phase (offset mod 4 = 3); at others its last one is skipped.
  const slabBlocks = Math.ceil((slab + 3) / 4);
  const blocks = size === 0 ? 0 : offs.length * slabBlocks;
  const words: UniformField[] = [];
  for (let s = 0; s < MAX_DROPOUT_SLABS; s++) {
    const o = offs[s] ?? 0;
    if (!Number.isSafeInteger(o) || o < 0 || slab > 2 ** 53 - o) throw new RangeError(`dropoutMask: offset ${o} with ${slab} elements leaves [0, 2^53)`);
    const [lo, hi] = splitOffset(o);
    words.push(['u32', lo], ['u32', hi]);
  }
  return {
    kernel,
    uniforms: packUniforms([['u32', blocks], ['u32', key[0]], ['u32', key[1]], ['u32', slab], ['f32', keep], ['f32', scale], ['u32', 0], ['u32', Math.max(1, slabBlocks)], ...words]),
    workgroups: gridStride(blocks, WORKGROUP, maxGroups),
  };
}

/**
 * The backward of an applying dropout with an activation: out = (g · mask) · act'(x) over n
 * contiguous elements, the product rounded first, so out is bit-identical to binary mul then
 * binary geluBackward (or geluTanhBackward). Storage [x, g, mask: read, out: read_write].
 */
export function dropoutActivationBackwardLaunch(act: DropoutActivation, n: number, maxGroups: number): Launch {
  return {
    kernel: cachedKernel(`dropoutActivationBackward|${act}`, () => buildActivationBackward(act)),
    uniforms: packUniforms([['u32', n]]),
    workgroups: gridStride(n, STRIDED_WG, maxGroups),
  };
}

function buildActivationBackward(act: DropoutActivation): Kernel {
  const code = /* wgsl */ `
struct Uniforms { n: u32, pad0: u32, pad1: u32, pad2: u32 }
@group(0) @binding(0) var<uniform> u: Uniforms;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read> mask: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
${unaryFunctionWGSL(act === 'gelu' ? 'geluGrad' : 'geluTanhGrad', 'actGrad')}
${unrolledMain((i, t) => `let x${t} = x[${i}]; let d${t} = g[${i}] * mask[${i}];`, (i, t) => `out[${i}] = d${t} * actGrad(x${t});`)}`;
  return { name: `dropoutActivationBackward[${act}]`, code, storage: ['read', 'read', 'read', 'read_write'] };
}
