// Dropout kernels: a mask drawn from the Philox stream of random.ts (element i of a slab at stream
// position offset + i, so GPU and CPU agree), alone or applied to an input in the same pass.
//
// Dispatch geometry: a grid-stride loop, 256 invocations per workgroup.

import { splitOffset } from '../tensor/random/philox.js';
import { gridStride, gridStrideLoopWGSL, packUniforms, type Launch, type UniformField } from './kernel.js';
import { philoxWGSL } from './philox.js';

const WORKGROUP = 256;

/** Most slabs a dropout mask may draw from separate stream positions (one per stacked model). */
export const MAX_DROPOUT_SLABS = 4;

const APPLY_BINDINGS = `@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read_write> mask: array<f32>;`;

/** The mask kernel, or with `apply` also the masked input x · mask, in one pass over x. */
function dropoutWGSL(apply: boolean): string {
  return /* wgsl */ `
struct Uniforms { size: u32, key0: u32, key1: u32, slab: u32, keep: f32, scale: f32, pad0: u32, pad1: u32, offsets: array<vec4<u32>, ${MAX_DROPOUT_SLABS / 2}> }
@group(0) @binding(0) var<uniform> u: Uniforms;
${apply ? APPLY_BINDINGS : '@group(0) @binding(1) var<storage, read_write> out: array<f32>;'}
${philoxWGSL}

@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  ${gridStrideLoopWGSL(WORKGROUP, 'u.size')} {
    // Slab s (of u.slab elements) draws from its own stream position, (lo, hi) pair s of offsets.
    let s = i / u.slab;
    let pair = u.offsets[s / 2u];
    let o = select(pair.xy, pair.zw, (s & 1u) == 1u);
    let r = philoxUniform(vec2<u32>(u.key0, u.key1), o.x, o.y, i - s * u.slab);
    let m = select(0.0, u.scale, r < u.keep);
    ${apply ? 'mask[i] = m; out[i] = m * x[i];' : 'out[i] = m;'}
  }
}
`;
}

const DROPOUT_MASK_WGSL = dropoutWGSL(false);
const DROPOUT_APPLY_WGSL = dropoutWGSL(true);

/**
 * A dropout mask in one kernel: scale where the uniform draw of element i is below keep, else 0
 * (keep = 1 − p and scale = 1/(1 − p), rounded to f32 by the caller), the values of
 * (uniform < keep) · scale composed from randomLaunch; storage [out: read_write]. offsets: one
 * stream position for the whole mask, or one per equal slab (at most MAX_DROPOUT_SLABS), element j
 * of slab s drawn at offsets[s] + j (a stack of models, each drawing what it would alone). A
 * grid-stride loop over at most maxGroups workgroups (few on a software adapter, where each costs
 * microseconds). With apply, the kernel also multiplies an input by the mask (storage [x: read,
 * out, mask: read_write]): dropout's forward in one pass, keeping the mask for the backward (redrawing
 * it there would cost the Philox rounds again, which dominate on a CPU adapter).
 */
export function dropoutMaskLaunch(size: number, key: [number, number], offsets: number | readonly number[], keep: number, scale: number, maxGroups: number, apply = false): Launch {
  const offs = typeof offsets === 'number' ? [offsets] : offsets;
  if (offs.length < 1 || offs.length > MAX_DROPOUT_SLABS || size % offs.length !== 0) {
    throw new RangeError(`dropoutMask: ${offs.length} slab offsets for ${size} elements (1 to ${MAX_DROPOUT_SLABS}, dividing the size)`);
  }
  const slab = size / offs.length;
  const words: UniformField[] = [];
  for (let s = 0; s < MAX_DROPOUT_SLABS; s++) {
    const o = offs[s] ?? 0;
    if (!Number.isSafeInteger(o) || o < 0 || slab > 2 ** 53 - o) throw new RangeError(`dropoutMask: offset ${o} with ${slab} elements leaves [0, 2^53)`);
    const [lo, hi] = splitOffset(o);
    words.push(['u32', lo], ['u32', hi]);
  }
  return {
    kernel: apply
      ? { name: 'dropoutApply', code: DROPOUT_APPLY_WGSL, storage: ['read', 'read_write', 'read_write'] }
      : { name: 'dropoutMask', code: DROPOUT_MASK_WGSL, storage: ['read_write'] },
    uniforms: packUniforms([['u32', size], ['u32', key[0]], ['u32', key[1]], ['u32', Math.max(1, slab)], ['f32', keep], ['f32', scale], ['u32', 0], ['u32', 0], ...words]),
    workgroups: gridStride(size, WORKGROUP, maxGroups),
  };
}
