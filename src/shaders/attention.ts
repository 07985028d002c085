// Fused scaled dot-product attention (FlashAttention-2 style): the forward streams over the keys
// with an online softmax and saves only the row log-sum-exp; the backward recomputes each
// probability from it, in one pass over keys per query (dq) and one over queries per key (dk, dv),
// so no tq×tk matrix is ever stored and nothing needs atomics.
//
// Dispatch geometry: one invocation per query row (forward, stats, dq) or per key row (dk/dv),
// grid1d over 64-wide workgroups. The head dim D is baked into the source (one pipeline per D) so
// the per-row arrays live in registers and the inner loops unroll; D <= ATTENTION_MAX_D.
//
// Scores are ((q·k)·scale + causalBias) + keyBias, the composed op's biases: −1e9 where causally
// masked, (mask − 1)·1e9 for a key mask. With no key mask the q buffer is bound in its place.

import type { AttentionParams } from '../tensor/backend.js';
import { flatIndexWGSL, grid1d, packUniforms, type Launch } from './kernel.js';
import { LOWEST_F32 } from './rows.js';

/** Largest head dim with a fused kernel (the backend composes beyond it). */
export const ATTENTION_MAX_D = 128;
const WG = 64;

const HEADER = (d: number) => `const D = ${d}u;
struct U { rows: u32, heads: u32, tq: u32, tk: u32, scale: f32, causal: u32, hasMask: u32, pad: u32 }
@group(0) @binding(0) var<uniform> u: U;`;

/** WGSL: the biased score of query i against key j of batch b, given q·k. */
const SCORE_WGSL = `fn score(dot: f32, i: u32, j: u32, b: u32) -> f32 {
  var s = dot * u.scale;
  if (u.causal != 0u && i32(j) - i32(i) > i32(u.tk) - i32(u.tq)) { s = s - 1e9; }
  if (u.hasMask != 0u) { s = s + (mask[b * u.tk + j] - 1.0) * 1e9; }
  return s;
}`;

const MAIN = `@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {`;

function forwardCode(d: number): string {
  return `${HEADER(d)}
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read> mask: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;
@group(0) @binding(6) var<storage, read_write> lse: array<f32>;
${SCORE_WGSL}
${flatIndexWGSL(WG)}
${MAIN}
  let r = flatIndex(wid, nwg, lid);
  if (r >= u.rows) { return; }
  let bh = r / u.tq;
  let i = r % u.tq;
  let b = bh / u.heads;
  var qr: array<f32, D>;
  var acc: array<f32, D>;
  for (var c = 0u; c < D; c++) { qr[c] = q[r * D + c]; acc[c] = 0.0; }
  // Online softmax: m is the running max, l the sum of exp(s - m); acc is rescaled when m grows.
  var m = ${LOWEST_F32};
  var l = 0.0;
  let kv0 = bh * u.tk * D;
  for (var j = 0u; j < u.tk; j++) {
    var dot = 0.0;
    for (var c = 0u; c < D; c++) { dot += qr[c] * k[kv0 + j * D + c]; }
    let s = score(dot, i, j, b);
    let mNew = max(m, s);
    let corr = exp(m - mNew);
    let p = exp(s - mNew);
    l = l * corr + p;
    for (var c = 0u; c < D; c++) { acc[c] = acc[c] * corr + p * v[kv0 + j * D + c]; }
    m = mNew;
  }
  lse[r] = m + log(l);
  for (var c = 0u; c < D; c++) { out[r * D + c] = acc[c] / l; }
}`;
}

/** Per query row: stats[r] = (lse[r], dout[r]·out[r]), the softmax backward's row dot product. */
function statsCode(d: number): string {
  return `${HEADER(d)}
@group(0) @binding(1) var<storage, read> out: array<f32>;
@group(0) @binding(2) var<storage, read> dout: array<f32>;
@group(0) @binding(3) var<storage, read> lse: array<f32>;
@group(0) @binding(4) var<storage, read_write> stats: array<vec2<f32>>;
${flatIndexWGSL(WG)}
${MAIN}
  let r = flatIndex(wid, nwg, lid);
  if (r >= u.rows) { return; }
  var dsum = 0.0;
  for (var c = 0u; c < D; c++) { dsum += dout[r * D + c] * out[r * D + c]; }
  stats[r] = vec2<f32>(lse[r], dsum);
}`;
}

/** Per query row: dq = scale · Σ_j p_ij (dout_i·v_j − dsum_i) k_j. */
function dqCode(d: number): string {
  return `${HEADER(d)}
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read> mask: array<f32>;
@group(0) @binding(5) var<storage, read> stats: array<vec2<f32>>;
@group(0) @binding(6) var<storage, read> dout: array<f32>;
@group(0) @binding(7) var<storage, read_write> dq: array<f32>;
${SCORE_WGSL}
${flatIndexWGSL(WG)}
${MAIN}
  let r = flatIndex(wid, nwg, lid);
  if (r >= u.rows) { return; }
  let bh = r / u.tq;
  let i = r % u.tq;
  let b = bh / u.heads;
  let st = stats[r];
  var qr: array<f32, D>;
  var gr: array<f32, D>;
  var acc: array<f32, D>;
  for (var c = 0u; c < D; c++) { qr[c] = q[r * D + c]; gr[c] = dout[r * D + c]; acc[c] = 0.0; }
  let kv0 = bh * u.tk * D;
  for (var j = 0u; j < u.tk; j++) {
    var dot = 0.0;
    var dp = 0.0;
    for (var c = 0u; c < D; c++) {
      dot += qr[c] * k[kv0 + j * D + c];
      dp += gr[c] * v[kv0 + j * D + c];
    }
    let p = exp(score(dot, i, j, b) - st.x);
    let ds = p * (dp - st.y);
    for (var c = 0u; c < D; c++) { acc[c] += ds * k[kv0 + j * D + c]; }
  }
  for (var c = 0u; c < D; c++) { dq[r * D + c] = acc[c] * u.scale; }
}`;
}

/** Per key row: dv = Σ_i p_ij dout_i; dk = scale · Σ_i p_ij (dout_i·v_j − dsum_i) q_i. */
function dkvCode(d: number): string {
  return `${HEADER(d)}
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read> mask: array<f32>;
@group(0) @binding(5) var<storage, read> stats: array<vec2<f32>>;
@group(0) @binding(6) var<storage, read> dout: array<f32>;
@group(0) @binding(7) var<storage, read_write> dk: array<f32>;
@group(0) @binding(8) var<storage, read_write> dv: array<f32>;
${SCORE_WGSL}
${flatIndexWGSL(WG)}
${MAIN}
  let kr = flatIndex(wid, nwg, lid);
  if (kr >= u.rows) { return; } // here rows counts key rows
  let bh = kr / u.tk;
  let j = kr % u.tk;
  let b = bh / u.heads;
  var kj: array<f32, D>;
  var vj: array<f32, D>;
  var dkAcc: array<f32, D>;
  var dvAcc: array<f32, D>;
  for (var c = 0u; c < D; c++) { kj[c] = k[kr * D + c]; vj[c] = v[kr * D + c]; dkAcc[c] = 0.0; dvAcc[c] = 0.0; }
  for (var i = 0u; i < u.tq; i++) {
    let r = bh * u.tq + i;
    var dot = 0.0;
    var dp = 0.0;
    for (var c = 0u; c < D; c++) {
      dot += q[r * D + c] * kj[c];
      dp += dout[r * D + c] * vj[c];
    }
    let st = stats[r];
    let p = exp(score(dot, i, j, b) - st.x);
    let ds = p * (dp - st.y);
    for (var c = 0u; c < D; c++) {
      dvAcc[c] += p * dout[r * D + c];
      dkAcc[c] += ds * q[r * D + c];
    }
  }
  for (var c = 0u; c < D; c++) { dk[kr * D + c] = dkAcc[c] * u.scale; dv[kr * D + c] = dvAcc[c]; }
}`;
}

function uniforms(p: AttentionParams, rows: number, hasMask: boolean): Uint32Array {
  return packUniforms([['u32', rows], ['u32', p.heads], ['u32', p.tq], ['u32', p.tk], ['f32', p.scale], ['u32', p.causal ? 1 : 0], ['u32', hasMask ? 1 : 0], ['u32', 0]]);
}

/** Storage [q, k, v, mask (or q): read; out, lse: read_write]. */
export function attentionLaunch(p: AttentionParams, hasMask: boolean): Launch {
  const rows = p.batch * p.heads * p.tq;
  return {
    kernel: { name: `attention[d=${p.d}]`, code: forwardCode(p.d), storage: ['read', 'read', 'read', 'read', 'read_write', 'read_write'] },
    uniforms: uniforms(p, rows, hasMask),
    workgroups: grid1d(rows, WG),
  };
}

/**
 * Three launches, in order: stats with storage [out, dout, lse: read; stats (vec2 per query row):
 * read_write]; dq with [q, k, v, mask, stats, dout: read; dq: read_write]; dk/dv with
 * [q, k, v, mask, stats, dout: read; dk, dv: read_write].
 */
export function attentionBackwardLaunches(p: AttentionParams, hasMask: boolean): { stats: Launch; dq: Launch; dkv: Launch } {
  const qRows = p.batch * p.heads * p.tq;
  const kRows = p.batch * p.heads * p.tk;
  const read6 = ['read', 'read', 'read', 'read', 'read', 'read'] as const;
  return {
    stats: {
      kernel: { name: `attentionBackward[stats,d=${p.d}]`, code: statsCode(p.d), storage: ['read', 'read', 'read', 'read_write'] },
      uniforms: uniforms(p, qRows, hasMask),
      workgroups: grid1d(qRows, WG),
    },
    dq: {
      kernel: { name: `attentionBackward[dq,d=${p.d}]`, code: dqCode(p.d), storage: [...read6, 'read_write'] },
      uniforms: uniforms(p, qRows, hasMask),
      workgroups: grid1d(qRows, WG),
    },
    dkv: {
      kernel: { name: `attentionBackward[dk,dv,d=${p.d}]`, code: dkvCode(p.d), storage: [...read6, 'read_write', 'read_write'] },
      uniforms: uniforms(p, kRows, hasMask),
      workgroups: grid1d(kRows, WG),
    },
  };
}
