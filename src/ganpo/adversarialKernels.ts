// The adversarial losses of GANPO.md §5 as fused kernels (custom ops, src/tensor/customKernel.ts):
// each is one dispatch forward and one backward instead of the dozen small ops per loss that the
// composition costs (indexSelect, sub, mul, softplus, two means, and their VJPs). Scores are tiny
// ([2, 3, B]), so every kernel is one workgroup that loops over the batch and reduces in workgroup
// memory; sizes travel in uniforms, so each kernel compiles once. Each has a TypeScript reference
// that the CPU backend runs (in f64 under gradcheck).

import { sigmoid, softplus } from '../tensor/backends/cpu/scalar.js';
import { defineKernel, defineKernelOp } from '../tensor/customKernel.js';
import { arrayFor, type TypedArray } from '../tensor/dtype.js';
import { fmtShape, type Shape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { wgslHelpers } from '../shaders/elementwise.js';

/**
 * Each critic's loss terms as (input j, mean i, sign σ), the term being batch-mean softplus(σ·(s[k, j]
 * − m[k, i])) with m[k] the critic's three running means. Dc: ref-chosen above m_a, policy below
 * m_b (the RaGAN real/fake pair), policy above m_c, ref-rejected below m_a (the contrastive pair);
 * Dr the same with the roles of the references swapped. Without the contrastive pair a critic has
 * only its first two terms.
 */
export const TERMS: readonly (readonly [number, number, number])[][] = [
  [[1, 0, -1], [0, 1, 1], [0, 2, -1], [2, 0, 1]],
  [[2, 0, -1], [0, 2, 1], [0, 1, -1], [1, 0, 1]],
];

const WG = 64;

/** Workgroup memory for R partial sums per invocation and a tree reduction of all R at once (the result lands in red[r·WG]). */
function reductionWGSL(R: number): string {
  return `var<workgroup> red: array<f32, ${R * WG}>;
fn reduceAll(lid: u32) {
  for (var w = ${WG / 2}u; w > 0u; w = w >> 1u) {
    workgroupBarrier();
    if (lid < w) {
      for (var r = 0u; r < ${R}u; r++) { red[r * ${WG}u + lid] += red[r * ${WG}u + lid + w]; }
    }
  }
  workgroupBarrier();
}`;
}

const TERM_TABLES = `var J = array<u32, 8>(${TERMS.flat().map((t) => `${t[0]}u`).join(', ')});
  var I = array<u32, 8>(${TERMS.flat().map((t) => `${t[1]}u`).join(', ')});
  var SG = array<f32, 8>(${TERMS.flat().map((t) => `${t[2].toFixed(1)}`).join(', ')});`;

const ONE_GROUP = (): [number, number, number] => [1, 1, 1];

function scoresCheck(what: string, rows: number[]): (shapes: readonly Shape[]) => string | null {
  return ([s, m]) => {
    const ok = s.length === rows.length + 1 && rows.every((r, i) => s[i] === r) && s[rows.length] >= 1;
    if (!ok) return `${what} must be [${rows.join(', ')}, B] with B >= 1, got ${fmtShape(s)}`;
    if (m && !(m.length === 1 && m[0] === 6)) return `means must be [6], got ${fmtShape(m)}`;
    return null;
  };
}

const batchOf = (s: Shape): number => s[s.length - 1];

// ---- critic losses -------------------------------------------------------------------------

/** [L_Dc, L_Dr]: loss k = (1/nt) Σ_terms (1/B) Σ_b softplus(σ (s[k, j, b] − m[3k + i])). */
function criticLossesCpu(s: TypedArray, m: TypedArray, B: number, nt: number): TypedArray {
  const out = arrayFor(s instanceof Float64Array ? 'f64' : 'f32', 2);
  for (let k = 0; k < 2; k++) {
    let total = 0;
    for (const [j, i, sg] of TERMS[k].slice(0, nt)) {
      let acc = 0;
      for (let b = 0; b < B; b++) acc += softplus(sg * (s[(3 * k + j) * B + b] - m[3 * k + i]));
      total += acc * (1 / B);
    }
    out[k] = total * (1 / nt);
  }
  return out;
}

const CRITIC_HEADER = `struct U { B: u32, nt: u32, invB: f32, invNt: f32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> s: array<f32>;
@group(0) @binding(2) var<storage, read> m: array<f32>;`;

const CRITIC_FORWARD = `${CRITIC_HEADER}
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
${wgslHelpers(['softplus'])}
${reductionWGSL(8)}
@compute @workgroup_size(${WG})
fn main(@builtin(local_invocation_index) lid: u32) {
  ${TERM_TABLES}
  var acc = array<f32, 8>(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
  for (var b = lid; b < u.B; b += ${WG}u) {
    for (var t = 0u; t < 8u; t++) {
      if ((t & 3u) >= u.nt) { continue; }
      let k = t >> 2u;
      acc[t] += softplus(SG[t] * (s[(3u * k + J[t]) * u.B + b] - m[3u * k + I[t]]));
    }
  }
  for (var t = 0u; t < 8u; t++) { red[t * ${WG}u + lid] = acc[t]; }
  reduceAll(lid);
  if (lid == 0u) {
    for (var k = 0u; k < 2u; k++) {
      var total = 0.0;
      for (var t = 0u; t < u.nt; t++) { total += red[(4u * k + t) * ${WG}u] * u.invB; }
      out[k] = total * u.invNt;
    }
  }
}`;

/** dS and dM of criticLossesCpu for output gradient g [2]. */
function criticLossesBackwardCpu(s: TypedArray, m: TypedArray, g: TypedArray, B: number, nt: number): [TypedArray, TypedArray] {
  const dtype = s instanceof Float64Array ? 'f64' : 'f32';
  const ds = arrayFor(dtype, 6 * B);
  const dm = arrayFor(dtype, 6);
  for (let k = 0; k < 2; k++) {
    for (const [j, i, sg] of TERMS[k].slice(0, nt)) {
      for (let b = 0; b < B; b++) {
        const w = sigmoid(sg * (s[(3 * k + j) * B + b] - m[3 * k + i])) * g[k] * (1 / B) * (1 / nt);
        ds[(3 * k + j) * B + b] += sg * w;
        dm[3 * k + i] -= sg * w;
      }
    }
  }
  return [ds, dm];
}

const CRITIC_BACKWARD = `${CRITIC_HEADER}
@group(0) @binding(3) var<storage, read> out: array<f32>;
@group(0) @binding(4) var<storage, read> g: array<f32>;
@group(0) @binding(5) var<storage, read_write> ds: array<f32>;
@group(0) @binding(6) var<storage, read_write> dm: array<f32>;
${wgslHelpers(['sigmoid'])}
${reductionWGSL(6)}
@compute @workgroup_size(${WG})
fn main(@builtin(local_invocation_index) lid: u32) {
  ${TERM_TABLES}
  var accM = array<f32, 6>(0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
  for (var b = lid; b < u.B; b += ${WG}u) {
    // Zeroed explicitly each iteration: a bare declaration in a loop body kept its values on lavapipe.
    var d = array<f32, 6>(0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    for (var t = 0u; t < 8u; t++) {
      if ((t & 3u) >= u.nt) { continue; }
      let k = t >> 2u;
      let w = sigmoid(SG[t] * (s[(3u * k + J[t]) * u.B + b] - m[3u * k + I[t]])) * g[k] * u.invB * u.invNt;
      d[3u * k + J[t]] += SG[t] * w;
      accM[3u * k + I[t]] -= SG[t] * w;
    }
    for (var r = 0u; r < 6u; r++) { ds[r * u.B + b] = d[r]; }
  }
  for (var r = 0u; r < 6u; r++) { red[r * ${WG}u + lid] = accM[r]; }
  reduceAll(lid);
  if (lid < 6u) { dm[lid] = red[lid * ${WG}u]; }
}`;

const criticLossUniforms = (contrastive: boolean) => (shapes: readonly Shape[]) => {
  const B = batchOf(shapes[0]);
  const nt = contrastive ? 4 : 2;
  return [['u32', B], ['u32', nt], ['f32', 1 / B], ['f32', 1 / nt]] as const;
};

function criticLossesOp(contrastive: boolean): (scores: Tensor, means: Tensor) => Tensor {
  const nt = contrastive ? 4 : 2;
  const uniforms = criticLossUniforms(contrastive);
  return defineKernelOp({
    name: `criticLosses${contrastive ? '' : '[pair]'}`,
    inputs: [{ name: 'scores' }, { name: 'means' }],
    check: scoresCheck('scores', [2, 3]),
    outputs: () => [{ name: 'losses', shape: [2] }],
    uniforms,
    code: CRITIC_FORWARD,
    workgroups: ONE_GROUP,
    zeroOutputs: false,
    cpu: ([s, m], [shape]) => [criticLossesCpu(s, m, batchOf(shape), nt)],
    backward: {
      kernel: {
        inputs: [{ name: 'scores' }, { name: 'means' }, { name: 'losses' }, { name: 'grad' }],
        outputs: ([s, m]) => [{ name: 'dscores', shape: s }, { name: 'dmeans', shape: m }],
        uniforms,
        code: CRITIC_BACKWARD,
        workgroups: ONE_GROUP,
        zeroOutputs: false,
        cpu: ([s, m, , g], [shape]) => criticLossesBackwardCpu(s, m, g, batchOf(shape), nt),
      },
    },
  });
}

/** Fused critic losses [L_Dc, L_Dr] of scores [2, 3, B] against means [6] (see adversarial.ts criticLosses). */
export const fusedCriticLosses = { contrastive: criticLossesOp(true), pair: criticLossesOp(false) };

// ---- generator loss ------------------------------------------------------------------------

/** Rows 0 and 1 of the [2, B] scores are judged against means m_b (1) and m_c' (5). */
const GEN_MEANS = [1, 5] as const;

const GEN_HEADER = `struct U { B: u32, inv: f32, pad0: u32, pad1: u32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> s: array<f32>;
@group(0) @binding(2) var<storage, read> m: array<f32>;`;

const GEN_FORWARD = `${GEN_HEADER}
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
${wgslHelpers(['softplus'])}
${reductionWGSL(1)}
@compute @workgroup_size(${WG})
fn main(@builtin(local_invocation_index) lid: u32) {
  var acc = 0.0;
  for (var b = lid; b < u.B; b += ${WG}u) {
    acc += softplus(m[${GEN_MEANS[0]}u] - s[b]) + softplus(m[${GEN_MEANS[1]}u] - s[u.B + b]);
  }
  red[lid] = acc;
  reduceAll(lid);
  if (lid == 0u) { out[0] = red[0] * u.inv; }
}`;

const GEN_BACKWARD = `${GEN_HEADER}
@group(0) @binding(3) var<storage, read> out: array<f32>;
@group(0) @binding(4) var<storage, read> g: array<f32>;
@group(0) @binding(5) var<storage, read_write> ds: array<f32>;
@group(0) @binding(6) var<storage, read_write> dm: array<f32>;
${wgslHelpers(['sigmoid'])}
${reductionWGSL(2)}
@compute @workgroup_size(${WG})
fn main(@builtin(local_invocation_index) lid: u32) {
  let w = g[0] * u.inv;
  var acc = array<f32, 2>(0.0, 0.0);
  for (var b = lid; b < u.B; b += ${WG}u) {
    let w0 = sigmoid(m[${GEN_MEANS[0]}u] - s[b]) * w;
    let w1 = sigmoid(m[${GEN_MEANS[1]}u] - s[u.B + b]) * w;
    ds[b] = -w0;
    ds[u.B + b] = -w1;
    acc[0] += w0;
    acc[1] += w1;
  }
  red[lid] = acc[0];
  red[${WG}u + lid] = acc[1];
  reduceAll(lid);
  if (lid < 6u) { dm[lid] = select(0.0, red[0], lid == ${GEN_MEANS[0]}u) + select(0.0, red[${WG}u], lid == ${GEN_MEANS[1]}u); }
}`;

const genUniforms = (shapes: readonly Shape[]) => {
  const B = batchOf(shapes[0]);
  return [['u32', B], ['f32', 1 / (2 * B)], ['u32', 0], ['u32', 0]] as const;
};

/** Fused L_adv of eval-mode scores [2, B] against means [6] (see adversarial.ts generatorLoss). */
export const fusedGeneratorLoss = defineKernelOp({
  name: 'generatorLoss',
  inputs: [{ name: 'scores' }, { name: 'means' }],
  check: scoresCheck('scores', [2]),
  outputs: () => [{ name: 'loss', shape: [] }],
  uniforms: genUniforms,
  code: GEN_FORWARD,
  workgroups: ONE_GROUP,
  zeroOutputs: false,
  cpu: ([s, m], [shape]) => {
    const B = batchOf(shape);
    const out = arrayFor(s instanceof Float64Array ? 'f64' : 'f32', 1);
    let acc = 0;
    for (let b = 0; b < B; b++) acc += softplus(m[GEN_MEANS[0]] - s[b]) + softplus(m[GEN_MEANS[1]] - s[B + b]);
    out[0] = acc * (1 / (2 * B));
    return [out];
  },
  backward: {
    kernel: {
      inputs: [{ name: 'scores' }, { name: 'means' }, { name: 'loss' }, { name: 'grad' }],
      outputs: ([s, m]) => [{ name: 'dscores', shape: s }, { name: 'dmeans', shape: m }],
      uniforms: genUniforms,
      code: GEN_BACKWARD,
      workgroups: ONE_GROUP,
      zeroOutputs: false,
      cpu: ([s, m, , g], [shape]) => {
        const B = batchOf(shape);
        const dtype = s instanceof Float64Array ? 'f64' : 'f32';
        const ds = arrayFor(dtype, 2 * B);
        const dm = arrayFor(dtype, 6);
        for (let r = 0; r < 2; r++) {
          for (let b = 0; b < B; b++) {
            const w = sigmoid(m[GEN_MEANS[r]] - s[r * B + b]) * g[0] * (1 / (2 * B));
            ds[r * B + b] = -w;
            dm[GEN_MEANS[r]] += w;
          }
        }
        return [ds, dm];
      },
    },
  },
});

// ---- running means and accuracy (no gradient) ----------------------------------------------

/** next[r] = prev[r]·μ + mean_b(s[r, b])·(1 − μ) over the six score rows; μ = 0 with prev = 0 starts them. */
export const runningMeansKernel = (mu: number) => defineKernel({
  name: 'runningMeans',
  inputs: [{ name: 'scores' }, { name: 'prev' }],
  check: scoresCheck('scores', [2, 3]),
  outputs: () => [{ name: 'means', shape: [6] }],
  uniforms: ([s]) => [['u32', batchOf(s)], ['f32', 1 / batchOf(s)], ['f32', mu], ['f32', 1 - mu]],
  code: `struct U { B: u32, invB: f32, mu: f32, rest: f32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> s: array<f32>;
@group(0) @binding(2) var<storage, read> prev: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
${reductionWGSL(6)}
@compute @workgroup_size(${WG})
fn main(@builtin(local_invocation_index) lid: u32) {
  var acc = array<f32, 6>(0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
  for (var b = lid; b < u.B; b += ${WG}u) {
    for (var r = 0u; r < 6u; r++) { acc[r] += s[r * u.B + b]; }
  }
  for (var r = 0u; r < 6u; r++) { red[r * ${WG}u + lid] = acc[r]; }
  reduceAll(lid);
  if (lid < 6u) { out[lid] = prev[lid] * u.mu + red[lid * ${WG}u] * u.invB * u.rest; }
}`,
  workgroups: ONE_GROUP,
  zeroOutputs: false,
  cpu: ([s, prev], [shape]) => {
    const B = batchOf(shape);
    const out = arrayFor(s instanceof Float64Array ? 'f64' : 'f32', 6);
    for (let r = 0; r < 6; r++) {
      let acc = 0;
      for (let b = 0; b < B; b++) acc += s[r * B + b];
      out[r] = prev[r] * mu + acc * (1 / B) * (1 - mu);
    }
    return [out];
  },
});

/** Rows of the flattened [6, B] scores compared by the accuracy: b (1) over a (0), c' (5) over a' (3). */
const ACCURACY_PAIRS = [[1, 0], [5, 3]] as const;

/** Fraction of b > a and c' > a' comparisons over both critics (see adversarial.ts criticAccuracy). */
export const accuracyKernel = defineKernel({
  name: 'criticAccuracy',
  inputs: [{ name: 'scores' }],
  check: scoresCheck('scores', [2, 3]),
  outputs: () => [{ name: 'accuracy', shape: [] }],
  uniforms: ([s]) => [['u32', batchOf(s)], ['f32', 1 / (2 * batchOf(s))], ['u32', 0], ['u32', 0]],
  code: `struct U { B: u32, inv: f32, pad0: u32, pad1: u32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> s: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
${reductionWGSL(1)}
@compute @workgroup_size(${WG})
fn main(@builtin(local_invocation_index) lid: u32) {
  var acc = 0.0;
  for (var b = lid; b < u.B; b += ${WG}u) {
${ACCURACY_PAIRS.map(([hi, lo]) => `    acc += select(0.0, 1.0, s[${hi}u * u.B + b] > s[${lo}u * u.B + b]);`).join('\n')}
  }
  red[lid] = acc;
  reduceAll(lid);
  if (lid == 0u) { out[0] = red[0] * u.inv; }
}`,
  workgroups: ONE_GROUP,
  zeroOutputs: false,
  cpu: ([s], [shape]) => {
    const B = batchOf(shape);
    const out = arrayFor(s instanceof Float64Array ? 'f64' : 'f32', 1);
    let acc = 0;
    for (let b = 0; b < B; b++) for (const [hi, lo] of ACCURACY_PAIRS) acc += s[hi * B + b] > s[lo * B + b] ? 1 : 0;
    out[0] = acc * (1 / (2 * B));
    return [out];
  },
});
