// Batched matrix multiply out[b] = op(a[b]) · op(b[b]) as WGSL builders, in two families: register
// blocking without workgroup memory (fastest on lavapipe, see DESIGN.md) and shared-memory tiling
// (the classic form for real GPUs). Sizes, transposes and batch strides are uniforms, so each
// variant compiles once and serves every shape.
//
// Dispatch geometry: x = column tiles, y = row tiles × batch folds, z = batch (folded into y past 65535).

import type { MatmulParams } from '../tensor/backend.js';
import { MAX_WORKGROUPS_PER_DIM, packUniforms, type Launch, type UniformField } from './kernel.js';

/** Register-blocked variants compute a TM×TN block per invocation; tiled64 shares 64×64 tiles. */
export const MATMUL_VARIANTS = ['register4x4', 'register4x8', 'tiled64'] as const;
export type MatmulVariant = (typeof MATMUL_VARIANTS)[number];

/** Batch dims the shader decomposes; more must be merged by the caller. */
export const MATMUL_MAX_BATCH_RANK = 4;

/**
 * Default variant. Measured on lavapipe (2 cores, square n = 512 / 1024, GFLOP/s): register4x8
 * 4.6 / 8.3, register4x4 3.4 / 3.6, tiled64 1.5 / 2.5: workgroup barriers are expensive on a CPU
 * driver. On hardware the shared-memory tile is the usual winner once the output fills it (not
 * yet measured here).
 */
export function chooseMatmulVariant(p: MatmulParams, adapterIsSoftware: boolean): MatmulVariant {
  if (adapterIsSoftware) return p.n >= 8 ? 'register4x8' : 'register4x4';
  return p.m >= 32 && p.n >= 32 ? 'tiled64' : 'register4x4';
}

interface Geometry {
  /** Output rows and columns covered by one workgroup. */
  rowsPerGroup: number;
  colsPerGroup: number;
}

const GEOMETRY: Record<MatmulVariant, Geometry> = {
  register4x4: { rowsPerGroup: 32, colsPerGroup: 32 },
  register4x8: { rowsPerGroup: 32, colsPerGroup: 64 },
  tiled64: { rowsPerGroup: 64, colsPerGroup: 64 },
};

const UNIFORMS_WGSL = /* wgsl */ `
// Element (i, k) of a is a[aBase + i * aRow + k * aCol]; (k, j) of b is b[bBase + k * bRow + j * bCol].
struct Uniforms {
  M: u32, N: u32, K: u32, batch: u32,
  aRow: u32, aCol: u32, bRow: u32, bCol: u32,
  rowGroups: u32, pad0: u32, pad1: u32, pad2: u32,
  shape0: u32, shape1: u32, shape2: u32, shape3: u32,
  aBatch0: u32, aBatch1: u32, aBatch2: u32, aBatch3: u32,
  bBatch0: u32, bBatch1: u32, bBatch2: u32, bBatch3: u32,
}

@group(0) @binding(0) var<uniform> u: Uniforms;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

// Start of batch element 'batch' in a (x) and b (y): the flat index decomposed over the batch
// shape (dim 3 innermost), each coordinate times that dim's stride (0 where broadcast).
fn batchOffsets(batch: u32) -> vec2<u32> {
  var rest = batch;
  let i3 = rest % u.shape3; rest = rest / u.shape3;
  let i2 = rest % u.shape2; rest = rest / u.shape2;
  let i1 = rest % u.shape1; rest = rest / u.shape1;
  let i0 = rest;
  return vec2<u32>(
    i0 * u.aBatch0 + i1 * u.aBatch1 + i2 * u.aBatch2 + i3 * u.aBatch3,
    i0 * u.bBatch0 + i1 * u.bBatch1 + i2 * u.bBatch2 + i3 * u.bBatch3,
  );
}
`;

const lanes = ['x', 'y', 'z', 'w'];

/** TM×TN outputs per invocation, operands read straight from storage: no barriers at all. */
function registerBlockedWGSL(tm: number, tn: number): string {
  const vecs = tn / 4;
  const lines: string[] = [];
  const acc = (i: number, v: number) => `acc${i}_${v}`;
  for (let i = 0; i < tm; i++) for (let v = 0; v < vecs; v++) lines.push(`  var ${acc(i, v)} = vec4<f32>(0.0);`);
  const body: string[] = [];
  for (let v = 0; v < vecs; v++) {
    const cols = [0, 1, 2, 3].map((j) => `b[cb${v}.${lanes[j]} + kb]`).join(', ');
    body.push(`    let b${v} = vec4<f32>(${cols});`);
  }
  for (let i = 0; i < tm; i++) {
    body.push(`    let a${i} = a[ra.${lanes[i]} + ka];`);
    for (let v = 0; v < vecs; v++) body.push(`    ${acc(i, v)} = fma(vec4<f32>(a${i}), b${v}, ${acc(i, v)});`);
  }
  const colBases: string[] = [];
  for (let v = 0; v < vecs; v++) {
    colBases.push(`  let cb${v} = offs.y + min(vec4<u32>(col0 + ${v * 4}u) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(u.N - 1u)) * u.bCol;`);
  }
  const stores: string[] = [];
  for (let i = 0; i < tm; i++) {
    stores.push(`  if (row0 + ${i}u < u.M) {`);
    stores.push(`    let o = outBase + (row0 + ${i}u) * u.N;`);
    for (let j = 0; j < tn; j++) {
      stores.push(`    if (col0 + ${j}u < u.N) { out[o + col0 + ${j}u] = ${acc(i, Math.floor(j / 4))}.${lanes[j % 4]}; }`);
    }
    stores.push('  }');
  }
  return /* wgsl */ `${UNIFORMS_WGSL}
// Each invocation of an 8x8 workgroup computes a ${tm}x${tn} block of the output. Row and column
// indices past the edge are clamped for the loads (always in bounds, no branches in the k loop)
// and skipped at the store.
@compute @workgroup_size(8, 8)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
  let batch = (wid.y / u.rowGroups) * nwg.z + wid.z;
  let row0 = ((wid.y % u.rowGroups) * 8u + lid.y) * ${tm}u;
  let col0 = (wid.x * 8u + lid.x) * ${tn}u;
  if (batch >= u.batch || row0 >= u.M || col0 >= u.N) { return; }
  let offs = batchOffsets(batch);
  let ra = offs.x + min(vec4<u32>(row0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(u.M - 1u)) * u.aRow;
${colBases.join('\n')}
${lines.join('\n')}
  var ka = 0u;
  var kb = 0u;
  for (var k = 0u; k < u.K; k = k + 1u) {
${body.join('\n')}
    ka = ka + u.aCol;
    kb = kb + u.bRow;
  }
  let outBase = batch * u.M * u.N;
${stores.join('\n')}
}
`;
}

/**
 * 64x64 output tile per 16x16 workgroup, 4x4 per invocation at rows ty + 16i and columns tx + 16j
 * (strided so neighbouring invocations read neighbouring shared words), k in steps of 16.
 */
function tiledWGSL(): string {
  return /* wgsl */ `${UNIFORMS_WGSL}
const TILE = 64u;
const TK = 16u;
var<workgroup> aTile: array<f32, 1024>; // [TK][TILE]: aTile[kk * 64 + i] = a(row i of the tile, k)
var<workgroup> bTile: array<f32, 1024>; // [TK][TILE]: bTile[kk * 64 + j] = b(k, column j of the tile)

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) li: u32, @builtin(num_workgroups) nwg: vec3<u32>) {
  // The batch is uniform across the workgroup, so this return cannot split a barrier.
  let batch = (wid.y / u.rowGroups) * nwg.z + wid.z;
  if (batch >= u.batch) { return; }
  let offs = batchOffsets(batch);
  let tileRow = (wid.y % u.rowGroups) * TILE;
  let tileCol = wid.x * TILE;
  var acc: array<vec4<f32>, 4>;
  for (var k0 = 0u; k0 < u.K; k0 = k0 + TK) {
    // 256 invocations load 1024 words of each tile, zero-filling past the edges.
    for (var l = 0u; l < 4u; l = l + 1u) {
      let e = li + l * 256u;
      let kk = e / TILE;
      let t = e % TILE;
      let k = k0 + kk;
      let row = tileRow + t;
      let col = tileCol + t;
      var av = 0.0;
      if (row < u.M && k < u.K) { av = a[offs.x + row * u.aRow + k * u.aCol]; }
      var bv = 0.0;
      if (col < u.N && k < u.K) { bv = b[offs.y + k * u.bRow + col * u.bCol]; }
      aTile[e] = av;
      bTile[e] = bv;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < TK; kk = kk + 1u) {
      let base = kk * TILE;
      let bv = vec4<f32>(bTile[base + lid.x], bTile[base + lid.x + 16u], bTile[base + lid.x + 32u], bTile[base + lid.x + 48u]);
      for (var i = 0u; i < 4u; i = i + 1u) {
        acc[i] = fma(vec4<f32>(aTile[base + lid.y + 16u * i]), bv, acc[i]);
      }
    }
    workgroupBarrier();
  }
  let outBase = batch * u.M * u.N;
  for (var i = 0u; i < 4u; i = i + 1u) {
    let row = tileRow + lid.y + 16u * i;
    if (row >= u.M) { continue; }
    for (var j = 0u; j < 4u; j = j + 1u) {
      let col = tileCol + lid.x + 16u * j;
      if (col < u.N) { out[outBase + row * u.N + col] = acc[i][j]; }
    }
  }
}
`;
}

const sources = new Map<MatmulVariant, string>();

function sourceFor(variant: MatmulVariant): string {
  let code = sources.get(variant);
  if (code === undefined) {
    code = variant === 'register4x4' ? registerBlockedWGSL(4, 4) : variant === 'register4x8' ? registerBlockedWGSL(4, 8) : tiledWGSL();
    sources.set(variant, code);
  }
  return code;
}

/** Launch for out [batch..., m, n] = op(a) · op(b); storage [a: read, b: read, out: read_write]. */
export function matmulLaunch(p: MatmulParams, variant: MatmulVariant = chooseMatmulVariant(p, true)): Launch {
  const { m, n, k, batchShape } = p;
  const rank = batchShape.length;
  if (rank > MATMUL_MAX_BATCH_RANK || p.aBatchStrides.length !== rank || p.bBatchStrides.length !== rank) {
    throw new RangeError(`matmul: batch rank ${rank} (strides ${p.aBatchStrides.length}, ${p.bBatchStrides.length}) must match and be at most ${MATMUL_MAX_BATCH_RANK}`);
  }
  const pad = (xs: readonly number[], fill: number) => [...new Array<number>(MATMUL_MAX_BATCH_RANK - rank).fill(fill), ...xs];
  const shape = pad(batchShape, 1);
  const aBatch = pad(p.aBatchStrides, 0);
  const bBatch = pad(p.bBatchStrides, 0);
  const batch = batchShape.reduce((s, d) => s * d, 1);
  const g = GEOMETRY[variant];
  const colGroups = Math.max(1, Math.ceil(n / g.colsPerGroup));
  const rowGroups = Math.max(1, Math.ceil(m / g.rowsPerGroup));
  // Past 65535 batch elements, fold them into y: y = rowGroups × folds, z = ceil(batch / folds).
  const folds = Math.ceil(Math.max(1, batch) / MAX_WORKGROUPS_PER_DIM);
  const z = Math.max(1, Math.ceil(batch / folds));
  const y = rowGroups * folds;
  if (colGroups > MAX_WORKGROUPS_PER_DIM || y > MAX_WORKGROUPS_PER_DIM) {
    throw new RangeError(`matmul: output [${batchShape.join(', ')}${rank ? ', ' : ''}${m}, ${n}] needs more than ${MAX_WORKGROUPS_PER_DIM} workgroups per dimension`);
  }
  const fields: UniformField[] = [
    ['u32', m], ['u32', n], ['u32', k], ['u32', batch],
    ['u32', p.transA ? 1 : k], ['u32', p.transA ? m : 1], ['u32', p.transB ? 1 : n], ['u32', p.transB ? k : 1],
    ['u32', rowGroups], ['u32', 0], ['u32', 0], ['u32', 0],
    ...shape.map((d): UniformField => ['u32', d]),
    ...aBatch.map((s): UniformField => ['u32', s]),
    ...bBatch.map((s): UniformField => ['u32', s]),
  ];
  // Empty outputs still dispatch one harmless workgroup: every invocation exits at the bounds check.
  const empty = m === 0 || n === 0 || batch === 0;
  return {
    kernel: { name: `matmul[${variant}]`, code: sourceFor(variant), storage: ['read', 'read', 'read_write'] },
    uniforms: packUniforms(empty ? fields.map(([t], i) => [t, i < 4 ? 0 : 1] as UniformField) : fields),
    workgroups: [colGroups, y, z],
  };
}
