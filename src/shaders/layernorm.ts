// LayerNorm over the last axis of a contiguous [rows, cols] view: the forward (saving mean and
// rstd), dx per row, and dgamma/dbeta as column sums over rows. Statistics use Welford's update in
// one pass over the row, partial (count, mean, M2) triples merged with Chan et al.'s formula: no
// cancellation, unlike E[x^2] - E[x]^2, and one read of the row fewer than two-pass. Values are
// shifted by the row's first element first: Welford's M2 carries the rounding of the running mean
// to first order, which for |mean| >> std (a row of 2.5 ± 0.09, say) cost 1e-6 of rstd in f32;
// around the pivot the running mean is small and that error with it.
//
// Dispatch geometry, by RowForm (rows.ts): forward and dx, one ROW_WORKGROUP-invocation workgroup per
// row ('workgroup', rowGrid; the forward also in a cached variant that keeps rows of up to
// ROW_CACHE_MAX_COLS elements in registers, read once, which the backend does not pick: slower on
// the H100, see softmax.ts) or one invocation per row ('invocation', 64 rows per workgroup);
// dgamma/dbeta, one invocation per (group, column) (grid1d over groups·cols, 64 per workgroup).
//
// Grouped affine: gamma and beta may hold one row of cols values per group of consecutive rows
// (groupRows rows each), so stacked models (src/nn/stacked.ts) normalize all members in one pass.

import { flatIndexWGSL, grid1d, packUniforms, type Launch } from './kernel.js';
import { ROW_REDUCE_WGSL, ROW_PER_INVOCATION_MAIN_WGSL, ROW_WORKGROUP_MAIN_WGSL, cachedRowMainWGSL, rowCacheSize, rowFormGrid, type RowForm } from './rows.js';

const FORWARD_BINDINGS = /* wgsl */ `
struct Uniforms { rows: u32, cols: u32, eps: f32, groupRows: u32 }
@group(0) @binding(0) var<uniform> u: Uniforms;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read> beta: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<storage, read_write> mean: array<f32>;
@group(0) @binding(6) var<storage, read_write> rstd: array<f32>;

// Chan et al.: the (count, mean, M2) of two disjoint parts merged; an empty part changes nothing.
fn welfordMerge(a: vec3<f32>, b: vec3<f32>) -> vec3<f32> {
  let n = a.x + b.x;
  if (b.x == 0.0) { return a; }
  if (a.x == 0.0) { return b; }
  let delta = b.y - a.y;
  let wb = b.x / n;
  return vec3<f32>(n, a.y + delta * wb, a.z + b.z + delta * delta * a.x * wb);
}

// Welford's update with one more value.
fn welfordAdd(s: vec3<f32>, v: f32) -> vec3<f32> {
  let n = s.x + 1.0;
  let delta = v - s.y;
  let m = s.y + delta / n;
  return vec3<f32>(n, m, s.z + delta * (v - m));
}
`;

// The workgroup form's shared part: bindings, the row reduction helpers and the Welford merge.
const FORWARD_WORKGROUP_PREFIX = /* wgsl */ `${FORWARD_BINDINGS}
${ROW_REDUCE_WGSL}
var<workgroup> redN: array<f32, WG>;

// Merges every invocation's (count, mean, M2) over the workgroup; call from uniform control flow.
fn workgroupWelford(s: vec3<f32>, lid: u32) -> vec3<f32> {
  redN[lid] = s.x;
  redA[lid] = s.y;
  redB[lid] = s.z;
  workgroupBarrier();
  for (var h = WG / 2u; h > 0u; h = h >> 1u) {
    if (lid < h) {
      let m = welfordMerge(vec3<f32>(redN[lid], redA[lid], redB[lid]), vec3<f32>(redN[lid + h], redA[lid + h], redB[lid + h]));
      redN[lid] = m.x;
      redA[lid] = m.y;
      redB[lid] = m.z;
    }
    workgroupBarrier();
  }
  return vec3<f32>(redN[0], redA[0], redB[0]);
}

`;

const FORWARD_WGSL = /* wgsl */ `${FORWARD_WORKGROUP_PREFIX}
${ROW_WORKGROUP_MAIN_WGSL}
  let gbase = (row / u.groupRows) * u.cols;
  let pivot = x[base];
  var s = vec3<f32>(0.0);
  // Four loads in flight per lane (a GPU's loop is otherwise bound by one load's latency at a
  // time), merged as one chunk's exact (4, mean, M2), as the invocation form does.
  var c = lid;
  for (; c + 3u * WG < u.cols; c = c + 4u * WG) {
    let v = vec4<f32>(x[base + c], x[base + c + WG], x[base + c + 2u * WG], x[base + c + 3u * WG]) - vec4<f32>(pivot);
    let cm = (v.x + v.y + v.z + v.w) * 0.25;
    let d = v - vec4<f32>(cm);
    s = welfordMerge(s, vec3<f32>(4.0, cm, dot(d, d)));
  }
  for (; c < u.cols; c = c + WG) { s = welfordAdd(s, x[base + c] - pivot); }
  s = workgroupWelford(s, lid);
  let mu = s.y; // the mean of x - pivot
  let rs = 1.0 / sqrt(s.z / f32(u.cols) + u.eps);
  for (c = lid; c < u.cols; c = c + WG) {
    y[base + c] = ((x[base + c] - pivot) - mu) * rs * gamma[gbase + c] + beta[gbase + c];
  }
  if (lid == 0u) {
    mean[row] = pivot + mu;
    rstd[row] = rs;
  }
}
`;

/**
 * The 'workgroup' form holding its row in registers (K values per lane, elements lid + j·WG), so
 * the row is read from memory once instead of twice (statistics, then the output pass). The
 * statistics visit the values in the same chunks and order as FORWARD_WGSL: the same bits.
 */
function forwardCachedWGSL(k: number): string {
  return /* wgsl */ `${FORWARD_WORKGROUP_PREFIX}
${cachedRowMainWGSL(k)}
  let gbase = (row / u.groupRows) * u.cols;
  let pivot = x[base];
  var s = vec3<f32>(0.0);
  var j = 0u;
  for (; j + 3u < K && lid + (j + 3u) * WG < u.cols; j = j + 4u) {
    let v = vec4<f32>(xs[j], xs[j + 1u], xs[j + 2u], xs[j + 3u]) - vec4<f32>(pivot);
    let cm = (v.x + v.y + v.z + v.w) * 0.25;
    let d = v - vec4<f32>(cm);
    s = welfordMerge(s, vec3<f32>(4.0, cm, dot(d, d)));
  }
  for (; j < K && lid + j * WG < u.cols; j = j + 1u) { s = welfordAdd(s, xs[j] - pivot); }
  s = workgroupWelford(s, lid);
  let mu = s.y; // the mean of x - pivot
  let rs = 1.0 / sqrt(s.z / f32(u.cols) + u.eps);
  for (j = 0u; j < K; j = j + 1u) {
    let c = lid + j * WG;
    if (c < u.cols) { y[base + c] = ((xs[j] - pivot) - mu) * rs * gamma[gbase + c] + beta[gbase + c]; }
  }
  if (lid == 0u) {
    mean[row] = pivot + mu;
    rstd[row] = rs;
  }
}
`;
}

const FORWARD_CACHED_SOURCES = new Map<number, string>();

// One invocation per row. Welford over chunks of four: each chunk's exact (4, mean, M2) merged into
// the running triple (one division per chunk), then single values for the tail.
const FORWARD_ROW_WGSL = /* wgsl */ `${FORWARD_BINDINGS}
${ROW_PER_INVOCATION_MAIN_WGSL}
  let gbase = (row / u.groupRows) * u.cols;
  let pivot = x[base];
  var s = vec3<f32>(0.0);
  var c = 0u;
  for (; c + 4u <= u.cols; c = c + 4u) {
    let v = vec4<f32>(x[base + c], x[base + c + 1u], x[base + c + 2u], x[base + c + 3u]) - vec4<f32>(pivot);
    let cm = (v.x + v.y + v.z + v.w) * 0.25;
    let d = v - vec4<f32>(cm);
    s = welfordMerge(s, vec3<f32>(4.0, cm, dot(d, d)));
  }
  for (; c < u.cols; c = c + 1u) { s = welfordAdd(s, x[base + c] - pivot); }
  let mu = s.y; // the mean of x - pivot
  let rs = 1.0 / sqrt(s.z / f32(u.cols) + u.eps);
  for (c = 0u; c < u.cols; c = c + 1u) { y[base + c] = ((x[base + c] - pivot) - mu) * rs * gamma[gbase + c] + beta[gbase + c]; }
  mean[row] = pivot + mu;
  rstd[row] = rs;
}
`;

/**
 * dx bindings; with `add` a dxAdd input (binding 6, dx moves to 7) whose value each element adds
 * to its gradient. The gradient is rounded to f32 before that add, as a separate add pass would
 * see it: its bits OR-ed with u.zero (always 0, unknown to the compiler) keep a driver from
 * contracting the last multiply and the add into one fused multiply-add.
 */
const dxBindings = (add: boolean) => /* wgsl */ `
struct Uniforms { rows: u32, cols: u32, groupRows: u32, zero: u32 }
@group(0) @binding(0) var<uniform> u: Uniforms;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> gamma: array<f32>;
@group(0) @binding(4) var<storage, read> mean: array<f32>;
@group(0) @binding(5) var<storage, read> rstd: array<f32>;
${add ? `@group(0) @binding(6) var<storage, read> dxAdd: array<f32>;
@group(0) @binding(7) var<storage, read_write> dx: array<f32>;` : '@group(0) @binding(6) var<storage, read_write> dx: array<f32>;'}
`;

/** The statement storing element i's gradient value v (an f32 expression) into dx. */
const storeDx = (add: boolean, i: string, v: string) =>
  add ? `dx[${i}] = dxAdd[${i}] + bitcast<f32>(bitcast<u32>(${v}) | u.zero);` : `dx[${i}] = ${v};`;

// dx = rstd / n * (n * g - sum(g) - xhat * sum(g * xhat)) with g = dy * gamma.
const dxWGSL = (add: boolean) => /* wgsl */ `${dxBindings(add)}
${ROW_REDUCE_WGSL}
${ROW_WORKGROUP_MAIN_WGSL}
  let mu = mean[row];
  let rs = rstd[row];
  let gbase = (row / u.groupRows) * u.cols;
  var sums = vec2<f32>(0.0);
  for (var c = lid; c < u.cols; c = c + WG) {
    let g = dy[base + c] * gamma[gbase + c];
    sums = sums + vec2<f32>(g, g * (x[base + c] - mu) * rs);
  }
  sums = workgroupSum2(sums, lid);
  let n = f32(u.cols);
  for (var c = lid; c < u.cols; c = c + WG) {
    let xhat = (x[base + c] - mu) * rs;
    ${storeDx(add, 'base + c', 'rs / n * (n * dy[base + c] * gamma[gbase + c] - sums.x - xhat * sums.y)')}
  }
}
`;

const dxRowWGSL = (add: boolean) => /* wgsl */ `${dxBindings(add)}
${ROW_PER_INVOCATION_MAIN_WGSL}
  let mu = mean[row];
  let rs = rstd[row];
  let gbase = (row / u.groupRows) * u.cols;
  var sums = vec2<f32>(0.0);
  for (var c = 0u; c < u.cols; c = c + 1u) {
    let g = dy[base + c] * gamma[gbase + c];
    sums = sums + vec2<f32>(g, g * (x[base + c] - mu) * rs);
  }
  let n = f32(u.cols);
  for (var c = 0u; c < u.cols; c = c + 1u) {
    let xhat = (x[base + c] - mu) * rs;
    ${storeDx(add, 'base + c', 'rs / n * (n * dy[base + c] * gamma[gbase + c] - sums.x - xhat * sums.y)')}
  }
}
`;

/** The four dx kernels' sources (row form × add), built once. */
const DX_SOURCES = {
  workgroup: [dxWGSL(false), dxWGSL(true)],
  invocation: [dxRowWGSL(false), dxRowWGSL(true)],
};

const PARAM_GRAD_WORKGROUP = 64;

const PARAM_GRAD_WGSL = /* wgsl */ `
struct Uniforms { rows: u32, cols: u32, groupRows: u32, pad1: u32 }
@group(0) @binding(0) var<uniform> u: Uniforms;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> mean: array<f32>;
@group(0) @binding(4) var<storage, read> rstd: array<f32>;
@group(0) @binding(5) var<storage, read_write> dgamma: array<f32>;
@group(0) @binding(6) var<storage, read_write> dbeta: array<f32>;

${flatIndexWGSL(PARAM_GRAD_WORKGROUP)}

// One (group, column) per invocation, summing down the group's rows: neighbouring invocations read
// neighbouring words of each row. O(rows) serial work per column; fine while rows is a batch of tokens.
@compute @workgroup_size(${PARAM_GRAD_WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let i = flatIndex(wid, nwg, lid);
  if (i >= (u.rows / u.groupRows) * u.cols) { return; }
  let c = i % u.cols;
  let first = (i / u.cols) * u.groupRows;
  var dg = 0.0;
  var db = 0.0;
  for (var r = first; r < first + u.groupRows; r = r + 1u) {
    let g = dy[r * u.cols + c];
    dg = dg + g * (x[r * u.cols + c] - mean[r]) * rstd[r];
    db = db + g;
  }
  dgamma[i] = dg;
  dbeta[i] = db;
}
`;

/** rows per affine group; groups must divide rows (and rows 0 is one empty group). */
function groupRows(rows: number, groups: number): number {
  if (!(Number.isInteger(groups) && groups >= 1 && rows % groups === 0)) throw new RangeError(`layerNorm: ${groups} affine groups do not divide ${rows} rows`);
  return Math.max(1, rows / groups);
}

/**
 * Storage [x, gamma, beta: read; y, mean, rstd: read_write]; mean and rstd are per row; gamma and
 * beta hold groups × cols values, group g applying to rows [g·rows/groups, (g+1)·rows/groups).
 * With `cached` (the 'workgroup' form, cols <= ROW_CACHE_MAX_COLS) each workgroup holds its row in
 * registers and reads it once.
 */
export function layerNormLaunch(rows: number, cols: number, eps: number, form: RowForm = 'workgroup', groups = 1, cached = false): Launch {
  const row = form === 'invocation';
  if (cached && row) throw new Error('layerNorm: the cached form is a workgroup-per-row form');
  let name = row ? 'layerNorm[row]' : 'layerNorm';
  let code = row ? FORWARD_ROW_WGSL : FORWARD_WGSL;
  if (cached) {
    const k = rowCacheSize(cols);
    name = `layerNorm[cached ${k}]`;
    code = FORWARD_CACHED_SOURCES.get(k) ?? forwardCachedWGSL(k);
    FORWARD_CACHED_SOURCES.set(k, code);
  }
  return {
    kernel: { name, code, storage: ['read', 'read', 'read', 'read_write', 'read_write', 'read_write'] },
    uniforms: packUniforms([['u32', rows], ['u32', cols], ['f32', eps], ['u32', groupRows(rows, groups)]]),
    workgroups: rowFormGrid(rows, form),
  };
}

/**
 * Two launches, independent of each other: dx with storage [dy, x, gamma, mean, rstd: read;
 * dx: read_write] (with `add`: [dy, x, gamma, mean, rstd, dxAdd: read; dx: read_write], dx =
 * dxAdd + the gradient), and dgamma/dbeta (groups × cols each) with storage [dy, x, mean, rstd:
 * read; dgamma, dbeta: read_write].
 */
export function layerNormBackwardLaunches(rows: number, cols: number, form: RowForm = 'workgroup', groups = 1, add = false): { dx: Launch; params: Launch } {
  const row = form === 'invocation';
  const uniforms = packUniforms([['u32', rows], ['u32', cols], ['u32', groupRows(rows, groups)], ['u32', 0]]);
  const name = `layerNormBackward[dx${row ? ',row' : ''}${add ? ',+add' : ''}]`;
  return {
    dx: {
      kernel: { name, code: DX_SOURCES[form][add ? 1 : 0], storage: ['read', 'read', 'read', 'read', 'read', ...(add ? ['read' as const] : []), 'read_write'] },
      uniforms,
      workgroups: rowFormGrid(rows, form),
    },
    params: {
      kernel: { name: 'layerNormBackward[dgamma,dbeta]', code: PARAM_GRAD_WGSL, storage: ['read', 'read', 'read', 'read', 'read_write', 'read_write'] },
      uniforms,
      workgroups: grid1d(groups * cols, PARAM_GRAD_WORKGROUP),
    },
  };
}
