// log softmax(logits)[target] per row and its gradient, without materializing the softmax: the
// forward keeps only the row log-sum-exp (one online pass), the backward recomputes exp(l - lse).
//
// Dispatch geometry: forward, by RowForm (rows.ts): one ROW_WORKGROUP-invocation workgroup per row
// ('workgroup', rowGrid) or one invocation per row ('invocation', 64 rows per workgroup); backward,
// at most maxGroups workgroups of 64 taking rows in turn (a few per core on a software adapter).

import { HARDWARE_MAX_GROUPS, MAX_WORKGROUPS_PER_DIM, packUniforms, type Launch } from './kernel.js';
import { LOWEST_F32, ONLINE_MAX_SUM_WGSL, ROW_REDUCE_WGSL, ROW_PER_INVOCATION_MAIN_WGSL, ROW_WORKGROUP_MAIN_WGSL, rowFormGrid, type RowForm } from './rows.js';

const NAN_BITS = 0x7fc00000;

const FORWARD_WGSL = /* wgsl */ `
struct Uniforms { rows: u32, cols: u32, nanBits: u32, pad: u32 }
@group(0) @binding(0) var<uniform> u: Uniforms;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> targets: array<i32>;
@group(0) @binding(3) var<storage, read_write> logp: array<f32>;
@group(0) @binding(4) var<storage, read_write> lse: array<f32>;
${ROW_REDUCE_WGSL}
${ROW_WORKGROUP_MAIN_WGSL}
  var ms = vec2<f32>(${LOWEST_F32}, 0.0);
  for (var c = lid; c < u.cols; c = c + WG) { ms = onlineMaxSum(ms, logits[base + c]); }
  ms = workgroupMaxSum(ms, lid);
  if (lid == 0u) {
    let l = ms.x + log(ms.y);
    lse[row] = l;
    let t = targets[row];
    // Negative targets are ignored (0); one past the row has no logit, so NaN as on the CPU.
    var lp = 0.0;
    if (t >= i32(u.cols)) { lp = bitcast<f32>(u.nanBits); }
    else if (t >= 0) { lp = logits[base + u32(t)] - l; }
    logp[row] = lp;
  }
}
`;

const FORWARD_ROW_WGSL = /* wgsl */ `
struct Uniforms { rows: u32, cols: u32, nanBits: u32, pad: u32 }
@group(0) @binding(0) var<uniform> u: Uniforms;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> targets: array<i32>;
@group(0) @binding(3) var<storage, read_write> logp: array<f32>;
@group(0) @binding(4) var<storage, read_write> lse: array<f32>;
${ONLINE_MAX_SUM_WGSL}
${ROW_PER_INVOCATION_MAIN_WGSL}
  var ms = vec2<f32>(${LOWEST_F32}, 0.0);
  for (var c = 0u; c < u.cols; c = c + 1u) { ms = onlineMaxSum(ms, logits[base + c]); }
  let l = ms.x + log(ms.y);
  lse[row] = l;
  let t = targets[row];
  var lp = 0.0;
  if (t >= i32(u.cols)) { lp = bitcast<f32>(u.nanBits); }
  else if (t >= 0) { lp = logits[base + u32(t)] - l; }
  logp[row] = lp;
}
`;

const BACKWARD_WORKGROUP = 64;

// dlogits[r, c] = dlogp[r] * (onehot(t[r])[c] - exp(logits[r, c] - lse[r])), zero where t[r] < 0.
// Workgroups take rows in turn (row = wid.x, wid.x + nwg.x, ...), lanes stride over the columns:
// no integer division per element (lavapipe runs u32 division lane by lane) and contiguous loads.
const BACKWARD_WGSL = /* wgsl */ `
struct Uniforms { rows: u32, cols: u32, pad0: u32, pad1: u32 }
@group(0) @binding(0) var<uniform> u: Uniforms;
@group(0) @binding(1) var<storage, read> dlogp: array<f32>;
@group(0) @binding(2) var<storage, read> logits: array<f32>;
@group(0) @binding(3) var<storage, read> lse: array<f32>;
@group(0) @binding(4) var<storage, read> targets: array<i32>;
@group(0) @binding(5) var<storage, read_write> dlogits: array<f32>;

@compute @workgroup_size(${BACKWARD_WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  for (var r = wid.x; r < u.rows; r = r + nwg.x) {
    let t = targets[r];
    let base = r * u.cols;
    if (t < 0) {
      for (var c = lid; c < u.cols; c = c + ${BACKWARD_WORKGROUP}u) { dlogits[base + c] = 0.0; }
      continue;
    }
    let g = dlogp[r];
    let l = lse[r];
    for (var c = lid; c < u.cols; c = c + ${BACKWARD_WORKGROUP}u) {
      dlogits[base + c] = select(0.0, g, u32(t) == c) - g * exp(logits[base + c] - l);
    }
  }
}
`;

/** Storage [logits: read, targets (i32): read, logp: read_write, lse: read_write]. */
export function gatherLogProbsLaunch(rows: number, cols: number, form: RowForm = 'workgroup'): Launch {
  const row = form === 'invocation';
  return {
    kernel: { name: row ? 'gatherLogProbs[row]' : 'gatherLogProbs', code: row ? FORWARD_ROW_WGSL : FORWARD_WGSL, storage: ['read', 'read', 'read_write', 'read_write'] },
    uniforms: packUniforms([['u32', rows], ['u32', cols], ['u32', NAN_BITS], ['u32', 0]]),
    workgroups: rowFormGrid(rows, form),
  };
}

/**
 * Storage [dlogp, logits, lse, targets (i32): read; dlogits: read_write]. maxGroups caps the
 * grid-stride workgroups (the backend passes a few per core on a software adapter).
 */
export function gatherLogProbsBackwardLaunch(rows: number, cols: number, maxGroups = HARDWARE_MAX_GROUPS): Launch {
  return {
    kernel: { name: 'gatherLogProbsBackward', code: BACKWARD_WGSL, storage: ['read', 'read', 'read', 'read', 'read_write'] },
    uniforms: packUniforms([['u32', rows], ['u32', cols], ['u32', 0], ['u32', 0]]),
    workgroups: [Math.max(1, Math.min(rows, maxGroups, MAX_WORKGROUPS_PER_DIM)), 1, 1],
  };
}
