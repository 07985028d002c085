// Optimizer updates applied in place on the GPU: AdamW (decoupled weight decay, bias-corrected),
// the same formula as the CPU backend's adamw.
//
// Dispatch geometry: one invocation per parameter element, grid1d with 256 per workgroup.

import type { AdamWParams } from '../tensor/backend.js';
import { flatIndexWGSL, grid1d, packUniforms, type Launch } from './kernel.js';

const WORKGROUP = 256;

const ADAMW_WGSL = /* wgsl */ `
// Step-dependent factors arrive precomputed (in f64 on the host, rounded once), not as powers in f32.
struct Uniforms {
  size: u32, lr: f32, beta1: f32, beta2: f32,
  oneMinusBeta1: f32, oneMinusBeta2: f32, eps: f32, decay: f32,
  biasCorrection1: f32, biasCorrection2: f32, pad0: u32, pad1: u32,
}
@group(0) @binding(0) var<uniform> u: Uniforms;
@group(0) @binding(1) var<storage, read_write> param: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> m: array<f32>;
@group(0) @binding(4) var<storage, read_write> v: array<f32>;

${flatIndexWGSL(WORKGROUP)}

@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let i = flatIndex(wid, nwg, lid);
  if (i >= u.size) { return; }
  let g = grad[i];
  let mi = u.beta1 * m[i] + u.oneMinusBeta1 * g;
  let vi = u.beta2 * v[i] + u.oneMinusBeta2 * g * g;
  m[i] = mi;
  v[i] = vi;
  let update = mi / u.biasCorrection1 / (sqrt(vi / u.biasCorrection2) + u.eps);
  param[i] = param[i] * u.decay - u.lr * update;
}
`;

/** One AdamW step in place; storage [param: read_write, grad: read, m: read_write, v: read_write]. */
export function adamwLaunch(size: number, p: AdamWParams): Launch {
  return {
    kernel: { name: 'adamw', code: ADAMW_WGSL, storage: ['read_write', 'read', 'read_write', 'read_write'] },
    uniforms: packUniforms([
      ['u32', size], ['f32', p.lr], ['f32', p.beta1], ['f32', p.beta2],
      ['f32', 1 - p.beta1], ['f32', 1 - p.beta2], ['f32', p.eps], ['f32', 1 - p.lr * p.weightDecay],
      ['f32', 1 - p.beta1 ** p.step], ['f32', 1 - p.beta2 ** p.step], ['u32', 0], ['u32', 0],
    ]),
    workgroups: grid1d(size, WORKGROUP),
  };
}
