// Fills a buffer with counter-based uniform or normal f32 numbers: element i is drawn from Philox
// counter offset + i under key (the contract of src/tensor/random/philox.ts), so GPU and CPU agree.
// Dropout masks, drawn at the generator's positions too but four per block in a domain of their
// own (philox.ts), are in dropout.ts.
//
// Dispatch geometry: one invocation per element, grid1d with 256 per workgroup.

import { splitOffset } from '../tensor/random/philox.js';
import { flatIndexWGSL, grid1d, packUniforms, type Launch } from './kernel.js';
import { philoxWGSL } from './philox.js';

const WORKGROUP = 256;

function randomWGSL(draw: 'philoxUniform' | 'philoxNormal'): string {
  return /* wgsl */ `
struct Uniforms { size: u32, key0: u32, key1: u32, offsetLo: u32, offsetHi: u32, pad0: u32, pad1: u32, pad2: u32 }
@group(0) @binding(0) var<uniform> u: Uniforms;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
${philoxWGSL}
${flatIndexWGSL(WORKGROUP)}

@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let i = flatIndex(wid, nwg, lid);
  if (i >= u.size) { return; }
  out[i] = ${draw}(vec2<u32>(u.key0, u.key1), u.offsetLo, u.offsetHi, i);
}
`;
}

const UNIFORM_WGSL = randomWGSL('philoxUniform');
const NORMAL_WGSL = randomWGSL('philoxNormal');

/**
 * size f32 values: uniform in [0, 1) bit-identical to fillUniform, or standard normal within
 * 1e-6 * (1 + |z|) of fillNormal (see philox.ts); storage [out: read_write].
 */
export function randomLaunch(kind: 'uniform' | 'normal', size: number, key: [number, number], offset: number): Launch {
  if (!Number.isSafeInteger(offset) || offset < 0 || size > 2 ** 53 - offset) {
    throw new RangeError(`random: offset ${offset} with ${size} elements leaves [0, 2^53)`);
  }
  const [lo, hi] = splitOffset(offset);
  return {
    kernel: { name: `random[${kind}]`, code: kind === 'uniform' ? UNIFORM_WGSL : NORMAL_WGSL, storage: ['read_write'] },
    uniforms: packUniforms([['u32', size], ['u32', key[0]], ['u32', key[1]], ['u32', lo], ['u32', hi], ['u32', 0], ['u32', 0], ['u32', 0]]),
    workgroups: grid1d(size, WORKGROUP),
  };
}
