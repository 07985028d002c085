// Batched matrix multiply out[b] = op(a[b]) · op(b[b]) as WGSL builders, in two families: register
// blocking without workgroup memory (fastest on lavapipe, see DESIGN.md) and shared-memory tiling
// (the classic form for real GPUs). Sizes, transposes and batch strides are uniforms, so each
// (variant, layout, precision) compiles once and serves every shape.
//
// Layout specialization: where an operand is contiguous along a dimension divisible by 4 (and its
// batch strides are multiples of 4), the register variants bind it as array<vec4> and read four
// elements per load: a along k (a·b, 4 k-steps per load) or along m (transA), b along n (a·b) or
// along k (transB). Such operands use compile-time strides; the others keep the uniform strides.
// matmulLayout() derives the layout from the params, so it is not a choice: a variant and a
// layout together name one pipeline (at most 3 × 3 × 2 layouts per variant, each compiled on use).
//
// Epilogues, each a flag of the pipeline key (without them the kernels are as they were): a bias
// added to every output row (a linear layer's forward), and operand sums (a linear layer's bias
// gradient, computed by its weight-gradient matmul): per batch element, Σ_k op(b)[k, j] for every
// column j ('colsOfB', length n) or Σ_k op(a)[i, k] for every row i ('rowsOfA', length m). Every
// variant already reads the b values of its columns (a values of its rows) at every k, so the sums
// cost a few adds; the invocations of the first row block (column block) write them, so each sum
// is written once: no atomics, deterministic. After the bias, a store epilogue (matmulEpilogue.ts):
// a GELU as each value is stored (with its input kept for the backward when asked), or a residual
// added; each bit-identical to the unfused kernel it replaces.
//
// Dispatch geometry: x = column tiles, y = row tiles × batch folds, z = batch (folded into y past 65535).

import type { MatmulParams, MatmulSums } from '../tensor/backend.js';
import { gridStride, gridStrideLoopWGSL, MAX_WORKGROUPS_PER_DIM, packUniforms, type Launch, type StorageAccess, type UniformField } from './kernel.js';
import { checkStoreEpilogue, storeEpilogueStorage, storeEpilogueTag, storeEpilogueWGSL, storeWGSL, type MatmulStoreEpilogue } from './matmulEpilogue.js';
import { tileWGSL, tileWorkgroupBytes, type TileSpec } from './matmulTiles.js';

/**
 * Register-blocked variants compute a TM×TN block per invocation from storage (no workgroup
 * memory) on an 8×8 workgroup: 'registerTMxTN' loads every operand value it uses;
 * 'subgroupTMxTN' lets the 8 lanes that share a block row load one row of a each and pass the
 * values around with subgroupShuffle (needs the `subgroups` feature; 'w16' = an 8×16 workgroup).
 * tiled64 shares 64×64 tiles through workgroup memory (scalar loads, one tile buffer).
 * 'tileBMxBN[kBK]' (tiles.ts) stage BM×BK and BK×BN operand tiles in double-buffered workgroup
 * memory with vec4 loads where the layout allows, 4×4 blocks of vec4 registers per invocation.
 */
export const MATMUL_VARIANTS = [
  'register4x4', 'register4x8', 'register8x4', 'subgroup8x4', 'subgroup8x8', 'subgroup8x4w16', 'tiled64',
  'tile64x64', 'tile128x64', 'tile128x128', 'tile128x128k16',
] as const;
export type MatmulVariant = (typeof MATMUL_VARIANTS)[number];

/** Variants that need a device feature beyond core WebGPU. */
export const MATMUL_VARIANT_FEATURE: Partial<Record<MatmulVariant, GPUFeatureName>> = { subgroup8x4: 'subgroups', subgroup8x8: 'subgroups', subgroup8x4w16: 'subgroups' };

/**
 * Operand precision: 'f32', or 'f16' (operands stored as f16, read and widened to f32, products
 * accumulated and stored in f32; the kernel then needs the `shader-f16` feature).
 */
export type MatmulOperandType = 'f32' | 'f16';

/** Batch dims the shader decomposes; more must be merged by the caller. */
export const MATMUL_MAX_BATCH_RANK = 4;

/**
 * How each operand is read: 'strided' uses the uniform strides (any transpose, any size);
 * vec4 forms need the contiguous dimension (and batch strides) divisible by 4.
 */
export interface MatmulLayout {
  /** vecK: a is [m, k] with k % 4 == 0; vecM: a is stored [k, m] (transA) with m % 4 == 0. */
  a: 'strided' | 'vecK' | 'vecM';
  /** vecN: b is [k, n] with n % 4 == 0; vecK: b is stored [n, k] (transB) with k % 4 == 0. */
  b: 'strided' | 'vecN' | 'vecK';
  /** out rows are stored as vec4 (n % 4 == 0). */
  out: boolean;
}

const div4 = (xs: readonly number[]) => xs.every((x) => x % 4 === 0);

/** The layout a variant uses for p (tiled64 always reads scalars). */
export function matmulLayout(p: MatmulParams, variant: MatmulVariant): MatmulLayout {
  if (variant === 'tiled64') return { a: 'strided', b: 'strided', out: false };
  const aOk = div4(p.aBatchStrides);
  const bOk = div4(p.bBatchStrides);
  let a: MatmulLayout['a'] = 'strided';
  if (aOk && !p.transA && p.k % 4 === 0 && p.k > 0) a = 'vecK';
  // The subgroup variant shuffles a's per-row values; a vec4 over rows needs no sharing.
  else if (aOk && p.transA && p.m % 4 === 0 && !variant.startsWith('subgroup')) a = 'vecM';
  let b: MatmulLayout['b'] = 'strided';
  if (bOk && !p.transB && p.n % 4 === 0) b = 'vecN';
  else if (bOk && p.transB && p.k % 4 === 0 && p.k > 0) b = 'vecK';
  return { a, b, out: p.n % 4 === 0 };
}

/** A compact name of a layout for kernel names and tuning keys, e.g. 'aK.bN.o4'. */
export function layoutName(l: MatmulLayout): string {
  const a = l.a === 'strided' ? 'aS' : l.a === 'vecK' ? 'aK' : 'aM';
  const b = l.b === 'strided' ? 'bS' : l.b === 'vecN' ? 'bN' : 'bK';
  return `${a}.${b}.${l.out ? 'o4' : 'o1'}`;
}

/**
 * Default variant: the static rule, deterministic (the autotuner in
 * backends/webgpu/matmulTuner.ts may pick another). Measured on lavapipe (2 cores, best of 5
 * interleaved, GFLOP/s, idle machine, bench/abMatmul.ts):
 *
 *   shape (m×n×k)        register4x8  subgroup8x4  subgroup8x4w16  subgroup8x8
 *   256³                       8.6         16.4          16.4          16.1
 *   512³                       8.8         17.1          17.2          17.6
 *   1024³                      9.7         18.1          18.9          20.6
 *   1024×4096×128 transB       9.4         18.2          17.6          16.9
 *   128×4096×1024 transA       9.0         17.1          15.1          17.3
 *
 * (an earlier run under load also had register4x4 and register8x4 at about register4x8's rate)
 * so on a software adapter with subgroups subgroup8x8 for large squarish products and
 * subgroup8x4 (the best all-rounder) otherwise; without subgroups register4x8.
 *
 * On an NVIDIA H100 (Dawn's Vulkan backend, best of 5, TFLOP/s, bench/device/gpu-run.sh):
 *
 *   shape (m×n×k)        tile128x128  tile128x64  tile64x64  tiled64  register4x4  subgroup8x8
 *   4096³                      34.6        34.3       28.1     14.7       23.9        22.4
 *   2048³                      32.0        31.2       26.1     14.0       19.9        17.7
 *   1024³                      12.5        16.6       20.3     11.9       13.7        13.1
 *   512³                        2.7         3.5        5.1      3.6        3.3         2.9
 *   1024×4096×128 transB       16.0        16.9       14.1      7.7        5.9         6.6
 *   128×4096×1024 transA        2.5         3.7        6.2      4.5        2.0         1.6
 *
 * so the biggest tile whose workgroups still fill the GPU (HARDWARE_MIN_GROUPS), else 64×64.
 */
export function chooseMatmulVariant(p: MatmulParams, adapterIsSoftware: boolean, hasSubgroups = false): MatmulVariant {
  if (adapterIsSoftware) {
    if (!hasSubgroups) return p.n >= 8 ? 'register4x8' : 'register4x4';
    return p.m >= 512 && p.n >= 512 && p.k >= 512 ? 'subgroup8x8' : 'subgroup8x4';
  }
  // Hardware: the largest workgroup-memory tile that still gives the GPU enough workgroups.
  if (p.m < 32 || p.n < 32) return 'register4x4';
  const batch = p.batchShape.reduce((s, d) => s * d, 1);
  const groups = (bm: number, bn: number) => Math.ceil(p.m / bm) * Math.ceil(p.n / bn) * batch;
  if (groups(128, 128) >= HARDWARE_MIN_GROUPS) return 'tile128x128';
  if (groups(128, 64) >= HARDWARE_MIN_GROUPS) return 'tile128x64';
  return 'tile64x64';
}

/**
 * Workgroups a big tile must fill before it beats a smaller one (about two per SM on an H100's
 * 132: at 1024³, 64 tiles of 128×128 ran at 12.5 TFLOP/s and 256 tiles of 64×64 at 20.3).
 */
const HARDWARE_MIN_GROUPS = 256;

/** The variants worth timing on an adapter with the given features (the tuner's candidates). */
export function matmulCandidates(adapterIsSoftware: boolean, features: ReadonlySet<string>, maxWorkgroupBytes = 16384): MatmulVariant[] {
  const tiles: MatmulVariant[] = ['tiled64', 'tile64x64', 'tile128x64', 'tile128x128', 'tile128x128k16'];
  const base: MatmulVariant[] = adapterIsSoftware ? ['register4x4', 'register4x8', 'register8x4'] : [...tiles, 'register4x4', 'register8x4'];
  const sub: MatmulVariant[] = features.has('subgroups') ? ['subgroup8x4', 'subgroup8x8', 'subgroup8x4w16'] : [];
  return [...base, ...sub].filter((v) => matmulWorkgroupBytes(v) <= maxWorkgroupBytes);
}

interface Spec {
  tm: number;
  tn: number;
  wgX: number;
  wgY: number;
  subgroup: boolean;
}

type TileVariant = 'tile64x64' | 'tile128x64' | 'tile128x128' | 'tile128x128k16';
type RegisterVariant = Exclude<MatmulVariant, 'tiled64' | TileVariant>;

const TILES: Record<TileVariant, TileSpec> = {
  tile64x64: { bm: 64, bn: 64, bk: 16, tm: 4, tn: 4 },
  tile128x64: { bm: 128, bn: 64, bk: 8, tm: 8, tn: 8 },
  tile128x128: { bm: 128, bn: 128, bk: 8, tm: 8, tn: 8 },
  tile128x128k16: { bm: 128, bn: 128, bk: 16, tm: 8, tn: 8 },
};

const isTile = (v: MatmulVariant): v is TileVariant => v in TILES;

/** Workgroup memory a variant needs (bytes); candidates over the device's limit are skipped. */
export function matmulWorkgroupBytes(variant: MatmulVariant): number {
  if (variant === 'tiled64') return 2 * 1024 * 4;
  return isTile(variant) ? tileWorkgroupBytes(TILES[variant]) : 0;
}

const SPECS: Record<RegisterVariant, Spec> = {
  register4x4: { tm: 4, tn: 4, wgX: 8, wgY: 8, subgroup: false },
  register4x8: { tm: 4, tn: 8, wgX: 8, wgY: 8, subgroup: false },
  register8x4: { tm: 8, tn: 4, wgX: 8, wgY: 8, subgroup: false },
  subgroup8x4: { tm: 8, tn: 4, wgX: 8, wgY: 8, subgroup: true },
  subgroup8x8: { tm: 8, tn: 8, wgX: 8, wgY: 8, subgroup: true },
  subgroup8x4w16: { tm: 8, tn: 4, wgX: 8, wgY: 16, subgroup: true },
};

interface Geometry {
  /** Output rows and columns covered by one workgroup. */
  rowsPerGroup: number;
  colsPerGroup: number;
}

function geometry(variant: MatmulVariant): Geometry {
  if (variant === 'tiled64') return { rowsPerGroup: 64, colsPerGroup: 64 };
  if (isTile(variant)) return { rowsPerGroup: TILES[variant].bm, colsPerGroup: TILES[variant].bn };
  const s = SPECS[variant];
  return { rowsPerGroup: s.tm * s.wgY, colsPerGroup: s.tn * s.wgX };
}

const UNIFORMS_WGSL = /* wgsl */ `
// Element (i, k) of a is a[aBase + i * aRow + k * aCol]; (k, j) of b is b[bBase + k * bRow + j * bCol].
struct Uniforms {
  M: u32, N: u32, K: u32, batch: u32,
  aRow: u32, aCol: u32, bRow: u32, bCol: u32,
  rowGroups: u32, biasStride: u32, pad1: u32, pad2: u32,
  shape0: u32, shape1: u32, shape2: u32, shape3: u32,
  aBatch0: u32, aBatch1: u32, aBatch2: u32, aBatch3: u32,
  bBatch0: u32, bBatch1: u32, bBatch2: u32, bBatch3: u32,
}

@group(0) @binding(0) var<uniform> u: Uniforms;

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

const SCALAR_BINDINGS_WGSL = /* wgsl */ `
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
`;

/** The bias epilogue's binding: n f32 values, one per output column (per batch element at u.biasStride). */
const BIAS_BINDING_WGSL = '@group(0) @binding(4) var<storage, read> bias: array<f32>;\n';

/**
 * The epilogue bindings after out: bias (binding 4), then the store epilogue's (residual or pre,
 * elements outElem like out's, and its activation functions), or the sums (binding 4, or 5 after
 * a bias): [batch, n] f32 for 'colsOfB', [batch, m] for 'rowsOfA'.
 */
function epilogueBindingsWGSL(bias: boolean, sums: MatmulSums | null, store: MatmulStoreEpilogue = {}, outElem = 'f32'): string {
  const sumsBinding = sums ? `@group(0) @binding(${bias ? 5 : 4}) var<storage, read_write> sums: array<f32>; // ${sums}\n` : '';
  return (bias ? BIAS_BINDING_WGSL : '') + storeEpilogueWGSL(store, bias ? 5 : 4, outElem) + sumsBinding;
}

/** WGSL adding the components of a vec4 (the sums of 4 k-steps loaded as one vec4). */
const hsum = (v: string) => `((${v}.x + ${v}.y) + (${v}.z + ${v}.w))`;

const lanes = ['x', 'y', 'z', 'w'];

/**
 * TM×TN outputs per invocation, operands read straight from storage: no barriers at all. Row and
 * column indices past the edge are clamped for the loads (always in bounds, no branches in the k
 * loop) and skipped at the store.
 */
function registerBlockedWGSL(s: Spec, L: MatmulLayout, t: MatmulOperandType, bias: boolean, sums: MatmulSums | null, store: MatmulStoreEpilogue): string {
  const { tm, tn, wgX, wgY, subgroup } = s;
  const vecs = tn / 4;
  const S = t; // storage scalar type of the operands
  const wide = (x: string, vec: boolean) => (t === 'f32' ? x : vec ? `vec4<f32>(${x})` : `f32(${x})`);
  const kVec = L.a === 'vecK' || L.b === 'vecK';
  const R = (i: number) => `${i}u`;
  const pre: string[] = []; // before the k loop
  const k4Loads: string[] = []; // once per 4 k-steps (vecK operands)
  const acc = (i: number, v: number) => `acc${i}_${v}`;
  for (let i = 0; i < tm; i++) for (let v = 0; v < vecs; v++) pre.push(`  var ${acc(i, v)} = vec4<f32>(0.0);`);

  // ---- a: per-step scalar a_i (row i) ----
  const aStep: string[] = []; // loads for one k-step (non-vecK forms), then the a_i names
  let aVal: (i: number, kk: number) => string;
  if (subgroup) {
    // This lane loads row row0 + lid.x; row i comes from the lane of this row group with lid.x = i.
    pre.push(`  let myRow = min(row0 + lid.x, u.M - 1u);`);
    pre.push(`  let lane0 = sid - lid.x;`);
    if (L.a === 'vecK') {
      pre.push(`  let raMine = (offs.x + myRow * u.K) / 4u;`);
      k4Loads.push(`    let avMine = ${wide(`a[raMine + k4]`, true)};`);
      for (let i = 0; i < tm; i++) k4Loads.push(`    let av${i} = subgroupShuffle(avMine, lane0 + ${R(i)});`);
      aVal = (i, kk) => `av${i}.${lanes[kk]}`;
    } else {
      pre.push(`  let raMine = offs.x + myRow * u.aRow;`, '  var ka = 0u;');
      aStep.push(`    let aMine = ${wide(`a[raMine + ka]`, false)};`);
      for (let i = 0; i < tm; i++) aStep.push(`    let a${i} = subgroupShuffle(aMine, lane0 + ${R(i)});`);
      aStep.push('    ka = ka + u.aCol;');
      aVal = (i) => `a${i}`;
    }
  } else if (L.a === 'vecK') {
    for (let i = 0; i < tm; i++) pre.push(`  let ra${i} = (offs.x + min(row0 + ${R(i)}, u.M - 1u) * u.K) / 4u;`);
    for (let i = 0; i < tm; i++) k4Loads.push(`    let av${i} = ${wide(`a[ra${i} + k4]`, true)};`);
    aVal = (i, kk) => `av${i}.${lanes[kk]}`;
  } else if (L.a === 'vecM') {
    for (let g = 0; g < tm / 4; g++) pre.push(`  let rq${g} = min(row0 / 4u + ${R(g)}, u.M / 4u - 1u);`);
    pre.push('  var ka = offs.x / 4u;', '  let aStride = u.M / 4u;');
    for (let g = 0; g < tm / 4; g++) aStep.push(`    let aq${g} = ${wide(`a[ka + rq${g}]`, true)};`);
    aStep.push('    ka = ka + aStride;');
    aVal = (i) => `aq${Math.floor(i / 4)}.${lanes[i % 4]}`;
  } else {
    for (let i = 0; i < tm; i++) pre.push(`  let ra${i} = offs.x + min(row0 + ${R(i)}, u.M - 1u) * u.aRow;`);
    pre.push('  var ka = 0u;');
    for (let i = 0; i < tm; i++) aStep.push(`    let a${i} = ${wide(`a[ra${i} + ka]`, false)};`);
    aStep.push('    ka = ka + u.aCol;');
    aVal = (i) => `a${i}`;
  }

  // ---- b: per-step vec4 of columns bvec_v ----
  const bStep: string[] = [];
  let bVal: (v: number, kk: number) => string;
  if (L.b === 'vecK') {
    for (let j = 0; j < tn; j++) pre.push(`  let cb${j} = (offs.y + min(col0 + ${R(j)}, u.N - 1u) * u.K) / 4u;`);
    for (let j = 0; j < tn; j++) k4Loads.push(`    let bv${j} = ${wide(`b[cb${j} + k4]`, true)};`);
    bVal = (v, kk) => `vec4<f32>(${[0, 1, 2, 3].map((j) => `bv${4 * v + j}.${lanes[kk]}`).join(', ')})`;
  } else if (L.b === 'vecN') {
    for (let v = 0; v < vecs; v++) pre.push(`  let cq${v} = min(col0 / 4u + ${R(v)}, u.N / 4u - 1u);`);
    pre.push('  var kb = offs.y / 4u;', '  let bStride = u.N / 4u;');
    for (let v = 0; v < vecs; v++) bStep.push(`    let b${v} = ${wide(`b[kb + cq${v}]`, true)};`);
    bStep.push('    kb = kb + bStride;');
    bVal = (v) => `b${v}`;
  } else {
    for (let v = 0; v < vecs; v++) {
      pre.push(`  let cb${v} = offs.y + min(vec4<u32>(col0 + ${R(v * 4)}) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(u.N - 1u)) * u.bCol;`);
    }
    pre.push('  var kb = 0u;');
    for (let v = 0; v < vecs; v++) {
      bStep.push(`    let b${v} = vec4<f32>(${[0, 1, 2, 3].map((j) => wide(`b[cb${v}.${lanes[j]} + kb]`, false)).join(', ')});`);
    }
    bStep.push('    kb = kb + u.bRow;');
    bVal = (v) => `b${v}`;
  }

  // ---- the sums epilogue: accumulators of the values loaded above, and the writes ----
  const sumStep: string[] = []; // once per k-step, after its loads
  const sumStores: string[] = [];
  if (sums === 'colsOfB') {
    // Column j's sum; written by the first row block (row0 = 0).
    let col: (j: number) => string;
    if (L.b === 'vecK') {
      for (let j = 0; j < tn; j++) pre.push(`  var sumB${j} = vec4<f32>(0.0);`);
      for (let j = 0; j < tn; j++) k4Loads.push(`    sumB${j} = sumB${j} + bv${j};`);
      col = (j) => hsum(`sumB${j}`);
    } else {
      for (let v = 0; v < vecs; v++) pre.push(`  var sumB${v} = vec4<f32>(0.0);`);
      for (let v = 0; v < vecs; v++) sumStep.push(`    sumB${v} = sumB${v} + b${v};`);
      col = (j) => `sumB${Math.floor(j / 4)}.${lanes[j % 4]}`;
    }
    sumStores.push('  if (row0 == 0u) {');
    for (let j = 0; j < tn; j++) sumStores.push(`    if (col0 + ${R(j)} < u.N) { sums[batch * u.N + col0 + ${R(j)}] = ${col(j)}; }`);
    sumStores.push('  }');
  } else if (sums === 'rowsOfA') {
    if (subgroup) {
      // Each lane sums the row it loads (row0 + lid.x, tm = wgX); the first column block writes.
      if (tm !== wgX) throw new Error(`matmul: the subgroup sums need tm = wgX (got ${tm}, ${wgX})`);
      if (L.a === 'vecK') {
        pre.push('  var sumA = vec4<f32>(0.0);');
        k4Loads.push('    sumA = sumA + avMine;');
      } else {
        pre.push('  var sumA = 0.0;');
        aStep.push('    sumA = sumA + aMine;');
      }
      sumStores.push(`  if (wid.x == 0u && row0 + lid.x < u.M) { sums[batch * u.M + row0 + lid.x] = ${L.a === 'vecK' ? hsum('sumA') : 'sumA'}; }`);
    } else {
      // Row i's sum; written by the first column block (col0 = 0).
      let row: (i: number) => string;
      if (L.a === 'vecK') {
        for (let i = 0; i < tm; i++) pre.push(`  var sumA${i} = vec4<f32>(0.0);`);
        for (let i = 0; i < tm; i++) k4Loads.push(`    sumA${i} = sumA${i} + av${i};`);
        row = (i) => hsum(`sumA${i}`);
      } else if (L.a === 'vecM') {
        for (let g = 0; g < tm / 4; g++) pre.push(`  var sumA${g} = vec4<f32>(0.0);`);
        for (let g = 0; g < tm / 4; g++) sumStep.push(`    sumA${g} = sumA${g} + aq${g};`);
        row = (i) => `sumA${Math.floor(i / 4)}.${lanes[i % 4]}`;
      } else {
        for (let i = 0; i < tm; i++) pre.push(`  var sumA${i} = 0.0;`);
        for (let i = 0; i < tm; i++) sumStep.push(`    sumA${i} = sumA${i} + a${i};`);
        row = (i) => `sumA${i}`;
      }
      sumStores.push('  if (col0 == 0u) {');
      for (let i = 0; i < tm; i++) sumStores.push(`    if (row0 + ${R(i)} < u.M) { sums[batch * u.M + row0 + ${R(i)}] = ${row(i)}; }`);
      sumStores.push('  }');
    }
  }

  const step = (kk: number): string[] => {
    const out = ['    {', ...aStep.map((l) => `  ${l}`), ...bStep.map((l) => `  ${l}`), ...sumStep.map((l) => `  ${l}`)];
    for (let v = 0; v < vecs; v++) {
      if (L.b === 'vecK') out.push(`      let bw${v} = ${bVal(v, kk)};`);
    }
    for (let i = 0; i < tm; i++) {
      for (let v = 0; v < vecs; v++) {
        const bv = L.b === 'vecK' ? `bw${v}` : bVal(v, kk);
        out.push(`      ${acc(i, v)} = fma(vec4<f32>(${aVal(i, kk)}), ${bv}, ${acc(i, v)});`);
      }
    }
    out.push('    }');
    return out;
  };

  let loop: string;
  if (kVec) {
    loop = `  for (var k4 = 0u; k4 < u.K / 4u; k4 = k4 + 1u) {\n${k4Loads.join('\n')}\n${[0, 1, 2, 3].flatMap(step).join('\n')}\n  }`;
  } else {
    // Unrolled by 4, then the remainder.
    loop = `  var k = 0u;\n  for (; k + 4u <= u.K; k = k + 4u) {\n${[0, 1, 2, 3].flatMap(step).join('\n')}\n  }\n` +
      `  for (; k < u.K; k = k + 1u) {\n${step(0).join('\n')}\n  }`;
  }

  // The bias epilogue: bias[batch·biasStride + col] added to every row (columns past N are clamped for the load and
  // never stored), read once per invocation before the stores.
  const stores: string[] = [];
  if (bias) {
    for (let v = 0; v < vecs; v++) {
      const cols = [0, 1, 2, 3].map((j) => `bias[batch * u.biasStride + min(col0 + ${R(4 * v + j)}, u.N - 1u)]`).join(', ');
      stores.push(`  let bias${v} = vec4<f32>(${cols});`);
    }
  }
  const plus = (v: number) => (bias ? ` + bias${v}` : '');
  for (let i = 0; i < tm; i++) {
    stores.push(`  if (row0 + ${R(i)} < u.M) {`);
    if (L.out) {
      stores.push(`    let o = (outBase + (row0 + ${R(i)}) * u.N + col0) / 4u;`);
      for (let v = 0; v < vecs; v++) stores.push(`    if (col0 + ${R(4 * v)} < u.N) { ${storeWGSL(store, `o + ${R(v)}`, `${acc(i, v)}${plus(v)}`, true)} }`);
    } else {
      stores.push(`    let o = outBase + (row0 + ${R(i)}) * u.N;`);
      for (let j = 0; j < tn; j++) {
        const v = Math.floor(j / 4);
        const value = `${acc(i, v)}.${lanes[j % 4]}${bias ? ` + bias${v}.${lanes[j % 4]}` : ''}`;
        stores.push(`    if (col0 + ${R(j)} < u.N) { ${storeWGSL(store, `o + col0 + ${R(j)}`, value, false)} }`);
      }
    }
    stores.push('  }');
  }
  stores.push(...sumStores);
  const elem = (vec: boolean) => (vec ? `vec4<${S}>` : S);
  const enables = [t === 'f16' ? 'enable f16;' : '', subgroup ? 'enable subgroups;\ndiagnostic(off, subgroup_uniformity);' : ''].filter(Boolean).join('\n');
  // The subgroup variant keeps every lane of a row group alive until the end (lanes past the last
  // column still load rows for their neighbours), so only the batch check returns early.
  const exit = subgroup ? 'batch >= u.batch' : 'batch >= u.batch || row0 >= u.M || col0 >= u.N';
  return /* wgsl */ `${enables}
${UNIFORMS_WGSL}
@group(0) @binding(1) var<storage, read> a: array<${elem(L.a !== 'strided')}>;
@group(0) @binding(2) var<storage, read> b: array<${elem(L.b !== 'strided')}>;
@group(0) @binding(3) var<storage, read_write> out: array<${L.out ? 'vec4<f32>' : 'f32'}>;
${epilogueBindingsWGSL(bias, sums, store, L.out ? 'vec4<f32>' : 'f32')}
// Each invocation of a ${wgX}x${wgY} workgroup computes a ${tm}x${tn} block of the output (layout ${layoutName(L)}, ${t} operands).
@compute @workgroup_size(${wgX}, ${wgY})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>${subgroup ? ', @builtin(subgroup_invocation_id) sid: u32' : ''}) {
  let batch = (wid.y / u.rowGroups) * nwg.z + wid.z;
  let row0 = ((wid.y % u.rowGroups) * ${R(wgY)} + lid.y) * ${R(tm)};
  let col0 = (wid.x * ${R(wgX)} + lid.x) * ${R(tn)};
  if (${exit}) { return; }
  let offs = batchOffsets(batch);
${pre.join('\n')}
${loop}
  let outBase = batch * u.M * u.N;
${stores.join('\n')}
}
`;
}

/**
 * 64x64 output tile per 16x16 workgroup, 4x4 per invocation at rows ty + 16i and columns tx + 16j
 * (strided so neighbouring invocations read neighbouring shared words), k in steps of 16. The sums
 * add the tile values an invocation multiplies (zero past k's end).
 */
function tiledWGSL(bias: boolean, sums: MatmulSums | null, store: MatmulStoreEpilogue): string {
  const sumDecl = sums === 'colsOfB' ? '\n  var sumB = vec4<f32>(0.0);' : sums === 'rowsOfA' ? '\n  var sumA = vec4<f32>(0.0);' : '';
  const sumB = sums === 'colsOfB' ? '\n      sumB = sumB + bv;' : '';
  const sumA = sums === 'rowsOfA' ? '\n        sumA[i] = sumA[i] + aTile[base + lid.y + 16u * i];' : '';
  let sumStores = '';
  if (sums === 'colsOfB') {
    sumStores = `
  if (tileRow == 0u && lid.y == 0u) {
    for (var j = 0u; j < 4u; j = j + 1u) {
      let col = tileCol + lid.x + 16u * j;
      if (col < u.N) { sums[batch * u.N + col] = sumB[j]; }
    }
  }`;
  } else if (sums === 'rowsOfA') {
    sumStores = `
  if (tileCol == 0u && lid.x == 0u) {
    for (var i = 0u; i < 4u; i = i + 1u) {
      let row = tileRow + lid.y + 16u * i;
      if (row < u.M) { sums[batch * u.M + row] = sumA[i]; }
    }
  }`;
  }
  const value = `acc[i][j]${bias ? ' + bias[batch * u.biasStride + col]' : ''}`;
  return /* wgsl */ `${UNIFORMS_WGSL}${SCALAR_BINDINGS_WGSL}${epilogueBindingsWGSL(bias, sums, store)}
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
  var acc: array<vec4<f32>, 4>;${sumDecl}
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
      let bv = vec4<f32>(bTile[base + lid.x], bTile[base + lid.x + 16u], bTile[base + lid.x + 32u], bTile[base + lid.x + 48u]);${sumB}
      for (var i = 0u; i < 4u; i = i + 1u) {
        acc[i] = fma(vec4<f32>(aTile[base + lid.y + 16u * i]), bv, acc[i]);${sumA}
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
      if (col < u.N) { ${storeWGSL(store, 'outBase + row * u.N + col', value, false)} }
    }
  }${sumStores}
}
`;
}

const sources = new Map<string, string>();

const MATMUL_STORAGE: readonly StorageAccess[] = ['read', 'read', 'read_write'];

/**
 * The WGSL of one (variant, layout, operand type, bias epilogue, sums epilogue: f32 operands only,
 * store epilogue: not with sums); cached: each compiles into one pipeline.
 */
export function matmulSource(variant: MatmulVariant, layout: MatmulLayout, type: MatmulOperandType = 'f32', bias = false, sums: MatmulSums | null = null,
  store: MatmulStoreEpilogue = {}): string {
  const storeTag = storeEpilogueTag(store, '/');
  if (storeTag) {
    checkStoreEpilogue(store);
    if (sums) throw new Error('matmul: the sums epilogue has no store epilogue (activation or residual)');
  } else if (store.keepPre) {
    throw new Error('matmul: keepPre needs an activation');
  }
  const key = `${variant}/${layoutName(layout)}/${type}${bias ? '/bias' : ''}${sums ? `/${sums}` : ''}${storeTag}`;
  let code = sources.get(key);
  if (code === undefined) {
    // A bias gradient from f16-rounded values would lose precision the unfused reduce keeps.
    if (sums && type !== 'f32') throw new Error(`matmul: the sums epilogue needs f32 operands (got ${type})`);
    if (variant === 'tiled64') {
      if (type !== 'f32') throw new Error('matmul: tiled64 has no f16 form');
      code = tiledWGSL(bias, sums, store);
    } else if (isTile(variant)) {
      const prelude = UNIFORMS_WGSL + epilogueBindingsWGSL(bias, sums, store, layout.out ? 'vec4<f32>' : 'f32');
      code = tileWGSL(TILES[variant], layout, type, bias, prelude, sums, store);
    } else {
      code = registerBlockedWGSL(SPECS[variant], layout, type, bias, sums, store);
    }
    sources.set(key, code);
  }
  return code;
}

/** Variants that can run f16 operands (the register family). */
export function supportsOperandType(variant: MatmulVariant, type: MatmulOperandType): boolean {
  return type === 'f32' || variant !== 'tiled64';
}

/**
 * Launch for out [batch..., m, n] = op(a) · op(b); storage [a: read, b: read, out: read_write].
 * With type 'f16', a and b hold f16 values (two per 32-bit word, element offsets as for f32).
 * With bias, a fourth binding [bias: read, n f32 values] is added to every output row (the
 * epilogue of a linear layer: no separate broadcast add over the output); with p.biasBatchStride
 * = n, batch element i adds its own bias at i·n (stacked linear layers).
 * With sums (f32 operands only), one more binding [sums: read_write, f32 [batch, n] for 'colsOfB',
 * [batch, m] for 'rowsOfA'] receives, per batch element, Σ_k op(b)[k, j] or Σ_k op(a)[i, k]. The
 * product is the same with or without sums.
 * With a store epilogue (not with sums; see matmulEpilogue.ts): out = act(v) for v the value
 * stored without it, and with keepPre one more binding [pre: read_write, like out] receiving v;
 * or out = residual + v, one more binding [residual: read, like out].
 */
export function matmulLaunch(p: MatmulParams, variant: MatmulVariant = chooseMatmulVariant(p, true), type: MatmulOperandType = 'f32', bias = false, sums: MatmulSums | null = null,
  store: MatmulStoreEpilogue = {}): Launch {
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
  const g = geometry(variant);
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
    ['u32', rowGroups], ['u32', p.biasBatchStride ?? 0], ['u32', 0], ['u32', 0],
    ...shape.map((d): UniformField => ['u32', d]),
    ...aBatch.map((s): UniformField => ['u32', s]),
    ...bBatch.map((s): UniformField => ['u32', s]),
  ];
  // Empty outputs still dispatch one harmless workgroup: every invocation exits at the bounds check.
  const empty = m === 0 || n === 0 || batch === 0;
  const layout = matmulLayout(p, variant);
  const suffix = variant === 'tiled64' ? '' : ` ${layoutName(layout)}`;
  return {
    kernel: {
      name: `matmul[${variant}${suffix}${type === 'f16' ? ' f16' : ''}${bias ? ' +bias' : ''}${sums ? ` +${sums}` : ''}${storeEpilogueTag(store, ' +')}]`,
      code: matmulSource(variant, layout, type, bias, sums, store),
      storage: [...MATMUL_STORAGE, ...(bias ? ['read' as const] : []), ...storeEpilogueStorage(store), ...(sums ? ['read_write' as const] : [])],
    },
    uniforms: packUniforms(empty ? fields.map(([t], i) => [t, i < 4 ? 0 : 1] as UniformField) : fields),
    workgroups: [colGroups, y, z],
  };
}

/**
 * Packs n f32 values into f16 pairs (pack2x16float, core WGSL: no feature needed to write them)
 * for the f16-operand matmul: storage [x: read f32, out: read_write u32 with ceil(n / 2) words].
 */
export function packF16Launch(n: number, maxGroups: number): Launch {
  const pairs = Math.ceil(n / 2);
  return {
    kernel: {
      name: 'matmul[packF16]',
      code: /* wgsl */ `
struct Uniforms { n: u32, pairs: u32, pad0: u32, pad1: u32 }
@group(0) @binding(0) var<uniform> u: Uniforms;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<u32>;
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(num_workgroups) nwg: vec3<u32>) {
  ${gridStrideLoopWGSL(64, 'u.pairs')} {
    let j = 2u * i;
    var hi = 0.0;
    if (j + 1u < u.n) { hi = x[j + 1u]; }
    out[i] = pack2x16float(vec2<f32>(x[j], hi));
  }
}
`,
      storage: ['read', 'read_write'],
    },
    uniforms: packUniforms([['u32', n], ['u32', pairs], ['u32', 0], ['u32', 0]]),
    workgroups: gridStride(pairs, 64, maxGroups),
  };
}
