// Optimizer updates applied in place on the GPU: AdamW (decoupled weight decay, bias-corrected),
// the same formula as the CPU backend's adamw, for one parameter or for several in one dispatch,
// and the in-place scaling of gradient clipping over several gradients.
//
// Dispatch geometry: adamw one invocation per parameter element, grid1d with 256 per workgroup;
// the multi-tensor kernels a grid-stride loop over the slots' concatenated elements.

import type { AdamWParams } from '../tensor/backend.js';
import { cachedKernel, flatIndexWGSL, grid1d, gridStride, gridStrideLoopWGSL, packUniforms, type Kernel, type Launch } from './kernel.js';

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

/** One parameter of a multi-tensor AdamW launch: its element count and step-dependent factors. */
export interface AdamWSlot {
  size: number;
  p: AdamWParams;
}

/**
 * AdamW over up to `slots.length` parameters in one dispatch, the same formula as ADAMW_WGSL.
 * Storage: [param_k, grad_k, m_k, v_k] for each slot k, in order. WGSL cannot index an array of
 * bindings, so the slots are unrolled: a grid-stride loop runs over the concatenated elements and
 * each index picks its slot by the running ends in the uniforms (one pipeline per slot count).
 * Uniforms: 4 header words, then per slot three vec4s: (end, lr, decay, eps), (bc1, bc2, β1, β2)
 * and (1 − β1, 1 − β2, pad, pad); every factor is per slot, so parameters with different settings
 * or step counts can share a launch.
 */
export function adamwMultiKernel(n: number, gated = false): Kernel {
  return cachedKernel(`adamwMulti|${n}|${gated}`, () => buildAdamwMulti(n, gated));
}

function buildAdamwMulti(n: number, gated: boolean): Kernel {
  const bindings: string[] = [];
  const bodies: string[] = [];
  for (let k = 0; k < n; k++) {
    const b = 1 + 4 * k;
    bindings.push(`@group(0) @binding(${b}) var<storage, read_write> param${k}: array<f32>;
@group(0) @binding(${b + 1}) var<storage, read> grad${k}: array<f32>;
@group(0) @binding(${b + 2}) var<storage, read_write> m${k}: array<f32>;
@group(0) @binding(${b + 3}) var<storage, read_write> v${k}: array<f32>;`);
    const start = k === 0 ? '0u' : `u.slots[${3 * (k - 1)}].x`;
    bodies.push(`${k === 0 ? '' : ' else '}if (i < u.slots[${3 * k}].x) {
      let j = i - ${start};
      let a = u.slots[${3 * k}];
      let c = bitcast<vec4<f32>>(u.slots[${3 * k + 1}]);
      let d = bitcast<vec4<f32>>(u.slots[${3 * k + 2}]);
      let g = grad${k}[j];
      let mi = c.z * m${k}[j] + d.x * g;
      let vi = c.w * v${k}[j] + d.y * g * g;
      m${k}[j] = mi;
      v${k}[j] = vi;
      let update = mi / c.x / (sqrt(vi / c.y) + bitcast<f32>(a.w));
      param${k}[j] = param${k}[j] * bitcast<f32>(a.z) - bitcast<f32>(a.y) * update;
    }`);
  }
  // Gated: a one-element buffer written on the device decides whether the update happens at all
  // (0: nothing changes, so a step found non-finite is skipped without reading anything back).
  const gate = gated ? `@group(0) @binding(${1 + 4 * n}) var<storage, read> gate: array<f32>;` : '';
  const code = /* wgsl */ `
struct Uniforms { total: u32, pad0: u32, pad1: u32, pad2: u32, slots: array<vec4<u32>, ${3 * n}> }
@group(0) @binding(0) var<uniform> u: Uniforms;
${bindings.join('\n')}
${gate}

@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  ${gated ? 'if (gate[0] == 0.0) { return; }' : ''}
  ${gridStrideLoopWGSL(WORKGROUP, 'u.total')} {
    ${bodies.join('')}
  }
}
`;
  const storage = Array.from({ length: n }, () => ['read_write', 'read', 'read_write', 'read_write'] as const).flat();
  return { name: `adamwMulti[${n}${gated ? ',gated' : ''}]`, code, storage: gated ? [...storage, 'read'] : storage };
}

/**
 * One multi-tensor AdamW launch; storage [param, grad, m, v] per slot, then [gate] when gated. The factors are those of
 * adamwLaunch (computed in f64 on the host, rounded once), so each parameter gets bit for bit the
 * update of the one-tensor kernel.
 */
export function adamwMultiLaunch(slots: readonly AdamWSlot[], maxGroups: number, gated = false): Launch {
  const words = new Uint32Array(4 + 12 * slots.length);
  const f = new Float32Array(words.buffer);
  let end = 0;
  slots.forEach(({ size, p }, k) => {
    end += size;
    const o = 4 + 12 * k;
    words[o] = end;
    f.set([p.lr, 1 - p.lr * p.weightDecay, p.eps, 1 - p.beta1 ** p.step, 1 - p.beta2 ** p.step, p.beta1, p.beta2, 1 - p.beta1, 1 - p.beta2], o + 1);
  });
  words[0] = end;
  return { kernel: adamwMultiKernel(slots.length, gated), uniforms: words, workgroups: gridStride(end, WORKGROUP, maxGroups) };
}

/**
 * Gradient clipping in place over up to n tensors: x ← x · min(1, maxNorm / (norm + 1e-6)), the
 * norm read from a one-element buffer computed on the device (no readback). The scale is formed in
 * f32 exactly as clipGradNorm's composed ops did (add, div, minimum), then one multiply.
 * Storage: [norm: read, x_0 .. x_{n-1}: read_write]. Uniforms: maxNorm, then the running ends.
 */
export function clipScaleKernel(n: number): Kernel {
  return cachedKernel(`clipScale|${n}`, () => buildClipScale(n));
}

function buildClipScale(n: number): Kernel {
  const bindings = Array.from({ length: n }, (_, k) => `@group(0) @binding(${k + 2}) var<storage, read_write> x${k}: array<f32>;`);
  const bodies = Array.from({ length: n }, (_, k) => `${k === 0 ? '' : ' else '}if (i < end(${k}u)) { x${k}[i - ${k === 0 ? '0u' : `end(${k - 1}u)`}] = x${k}[i - ${k === 0 ? '0u' : `end(${k - 1}u)`}] * scale; }`);
  const code = /* wgsl */ `
struct Uniforms { maxNorm: f32, total: u32, pad0: u32, pad1: u32, ends: array<vec4<u32>, ${Math.ceil(n / 4)}> }
@group(0) @binding(0) var<uniform> u: Uniforms;
@group(0) @binding(1) var<storage, read> norm: array<f32>;
${bindings.join('\n')}
fn end(k: u32) -> u32 { return u.ends[k / 4u][k % 4u]; }

@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let scale = min(u.maxNorm / (norm[0] + 1e-6), 1.0);
  ${gridStrideLoopWGSL(WORKGROUP, 'u.total')} {
    ${bodies.join('')}
  }
}
`;
  return { name: `clipScale[${n}]`, code, storage: ['read', ...Array.from({ length: n }, () => 'read_write' as const)] };
}

/** One clipping launch over tensors of the given sizes; storage [norm, x_0, ...]. */
export function clipScaleLaunch(sizes: readonly number[], maxNorm: number, maxGroups: number): Launch {
  const words = new Uint32Array(4 + 4 * Math.ceil(sizes.length / 4));
  new Float32Array(words.buffer)[0] = maxNorm;
  let end = 0;
  sizes.forEach((s, k) => {
    end += s;
    words[4 + k] = end;
  });
  words[1] = end;
  return { kernel: clipScaleKernel(sizes.length), uniforms: words, workgroups: gridStride(end, WORKGROUP, maxGroups) };
}
