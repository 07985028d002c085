// The workgroup-memory matmul family for GPUs ('tileBMxBN[kBK]'): each workgroup stages a BM×BK
// tile of a and a BK×BN tile of b in workgroup memory, double-buffered (one barrier per k-tile:
// the next tile is fetched into registers while the current one is multiplied, then stored into
// the other buffer), and each invocation accumulates a TM×TN block in vec4 registers.
//
// Why this shape: a GPU's FP32 rate needs many FMAs per workgroup-memory load; here each k-step
// an invocation reads TM/4 + TN/4 vec4 and issues TM·TN/4 vec4 FMAs (16 per 4 loads at 8×8). An
// invocation's rows are TM/4 groups of 4 consecutive rows spaced 4·(BM/TM) apart (columns
// likewise), so the lanes of a quarter-warp read consecutive 16-byte words of a k-row: no bank
// conflicts on the vec4 reads. Tiles of a are stored k-major (aTile[k][m]) so a k-step reads its
// rows as vec4, whatever a's own layout.
//
// Global loads use the operand layout of src/shaders/matmul.ts: vec4 along the tile's m or n
// (stored straight in), vec4 along k (written transposed, one scalar per component), or scalars
// through the uniform strides. Rows and columns past the edge are clamped (their outputs are not
// stored), k past the end reads zero.
//
// The sums epilogue (see matmul.ts) adds up the workgroup-memory vec4 of b (of a) that each k-step
// reads anyway; the invocations of the first row tile with lid.y = 0 (of the first column tile
// with lid.x = 0) write them. The store epilogues (activation, residual) are matmulEpilogue.ts's.

import type { MatmulSums } from '../tensor/backend.js';
import type { MatmulLayout, MatmulOperandType } from './matmul.js';
import { storeWGSL, type MatmulStoreEpilogue } from './matmulEpilogue.js';

export interface TileSpec {
  /** Output rows and columns per workgroup, k per staged tile. */
  bm: number;
  bn: number;
  bk: number;
  /** Output rows and columns per invocation (multiples of 4). */
  tm: number;
  tn: number;
}

/** Invocations per workgroup along x (columns) and y (rows). */
export function tileThreads(s: TileSpec): { x: number; y: number } {
  return { x: s.bn / s.tn, y: s.bm / s.tm };
}

/** Bytes of workgroup memory the variant uses (both tiles, both buffers). */
export function tileWorkgroupBytes(s: TileSpec): number {
  return 2 * s.bk * (s.bm + s.bn) * 4;
}

const lanes = ['x', 'y', 'z', 'w'];
const R = (i: number) => `${i}u`;

/** One operand's staging: the register declarations, the global loads of k-tile k0, and the workgroup stores. */
interface Stage {
  decls: string[];
  load: string[];
  store: string[];
}

/**
 * Staging for one operand tile. `side` 'a' is the BM×BK tile of a (rows m), 'b' the BK×BN tile of
 * b (columns n); `extent` is BM or BN. The tile is stored k-major: tile[k * extent/4 + x/4][x % 4].
 */
function stage(side: 'a' | 'b', form: 'alongX' | 'alongK' | 'scalar', extent: number, bk: number, threads: number, type: MatmulOperandType): Stage {
  const tile = side === 'a' ? 'aTile' : 'bTile';
  const src = side;
  const X = side === 'a' ? 'M' : 'N';
  const origin = side === 'a' ? 'tileRow' : 'tileCol';
  const off = side === 'a' ? 'offs.x' : 'offs.y';
  const w4 = extent / 4;
  const wideV = (x: string) => (type === 'f32' ? x : `vec4<f32>(${x})`);
  const wideS = (x: string) => (type === 'f32' ? x : `f32(${x})`);
  const decls: string[] = [];
  const load: string[] = [];
  const store: string[] = [];
  const reg = (l: number) => `${side}r${l}`;
  if (form === 'alongX') {
    // vec4 units (k, x4): bk × extent/4 of them; consecutive invocations read consecutive x4 (coalesced).
    const units = bk * w4;
    for (let l = 0; l < units / threads; l++) {
      decls.push(`  let ${side}k${l} = (li + ${R(l * threads)}) / ${R(w4)};`);
      decls.push(`  let ${side}x${l} = (li + ${R(l * threads)}) % ${R(w4)};`);
      decls.push(`  let ${side}q${l} = min(${origin} / 4u + ${side}x${l}, u.${X} / 4u - 1u);`);
      decls.push(`  var ${reg(l)} = vec4<f32>(0.0);`);
      load.push(`    { let k = k0 + ${side}k${l}; ${reg(l)} = vec4<f32>(0.0); if (k < u.K) { ${reg(l)} = ${wideV(`${src}[${off} / 4u + k * (u.${X} / 4u) + ${side}q${l}]`)}; } }`);
      store.push(`    ${tile}[buf * ${R(bk * w4)} + ${side}k${l} * ${R(w4)} + ${side}x${l}] = ${reg(l)};`);
    }
  } else if (form === 'alongK') {
    // vec4 units (x, k4): extent × bk/4; written transposed, one component per k.
    const k4s = bk / 4;
    const units = extent * k4s;
    for (let l = 0; l < units / threads; l++) {
      decls.push(`  let ${side}x${l} = (li + ${R(l * threads)}) / ${R(k4s)};`);
      decls.push(`  let ${side}k${l} = (li + ${R(l * threads)}) % ${R(k4s)};`);
      decls.push(`  let ${side}o${l} = (${off} + min(${origin} + ${side}x${l}, u.${X} - 1u) * u.K) / 4u;`);
      decls.push(`  var ${reg(l)} = vec4<f32>(0.0);`);
      load.push(`    { let k = k0 + 4u * ${side}k${l}; ${reg(l)} = vec4<f32>(0.0); if (k < u.K) { ${reg(l)} = ${wideV(`${src}[${side}o${l} + k / 4u]`)}; } }`);
      for (let c = 0; c < 4; c++) {
        store.push(`    ${tile}[buf * ${R(bk * w4)} + (4u * ${side}k${l} + ${R(c)}) * ${R(w4)} + ${side}x${l} / 4u][${side}x${l} % 4u] = ${reg(l)}.${lanes[c]};`);
      }
    }
  } else {
    // Scalar units (k, x): consecutive invocations take consecutive x.
    const units = bk * extent;
    const [xStride, kStride] = side === 'a' ? ['u.aRow', 'u.aCol'] : ['u.bCol', 'u.bRow'];
    for (let l = 0; l < units / threads; l++) {
      decls.push(`  let ${side}k${l} = (li + ${R(l * threads)}) / ${R(extent)};`);
      decls.push(`  let ${side}x${l} = (li + ${R(l * threads)}) % ${R(extent)};`);
      decls.push(`  let ${side}o${l} = ${off} + min(${origin} + ${side}x${l}, u.${X} - 1u) * ${xStride};`);
      decls.push(`  var ${reg(l)} = 0.0;`);
      load.push(`    { let k = k0 + ${side}k${l}; ${reg(l)} = 0.0; if (k < u.K) { ${reg(l)} = ${wideS(`${src}[${side}o${l} + k * ${kStride}]`)}; } }`);
      store.push(`    ${tile}[buf * ${R(bk * w4)} + ${side}k${l} * ${R(w4)} + ${side}x${l} / 4u][${side}x${l} % 4u] = ${reg(l)};`);
    }
  }
  return { decls, load, store };
}

/**
 * WGSL of one tile variant. `prelude` is the shared uniforms struct with batchOffsets() and the
 * epilogue bindings (bias when `bias`, sums when `sums`, those of `store`; src/shaders/matmul.ts).
 * Dispatch: x = column tiles, y = row tiles × batch folds, z = batch.
 */
export function tileWGSL(s: TileSpec, L: MatmulLayout, type: MatmulOperandType, bias: boolean, prelude: string, sums: MatmulSums | null = null,
  store: MatmulStoreEpilogue = {}): string {
  const { bm, bn, bk, tm, tn } = s;
  const th = tileThreads(s);
  const threads = th.x * th.y;
  if (tm % 4 || tn % 4 || bk % 4 || (bk * bm) % (4 * threads) || (bk * bn) % (4 * threads)) {
    throw new Error(`matmul tile spec ${JSON.stringify(s)}: sizes must split evenly over ${threads} invocations`);
  }
  const aForm = L.a === 'vecM' ? 'alongX' : L.a === 'vecK' ? 'alongK' : 'scalar';
  const bForm = L.b === 'vecN' ? 'alongX' : L.b === 'vecK' ? 'alongK' : 'scalar';
  const A = stage('a', aForm, bm, bk, threads, type);
  const B = stage('b', bForm, bn, bk, threads, type);
  const gm = tm / 4;
  const gn = tn / 4;
  const acc = (i: number, v: number) => `acc${i}_${v}`;
  const accDecls: string[] = [];
  for (let i = 0; i < tm; i++) for (let v = 0; v < gn; v++) accDecls.push(`  var ${acc(i, v)} = vec4<f32>(0.0);`);
  // Invocation rows: tileRow + 4·(g·th.y + lid.y) + c for the c-th lane of a's g-th vec4 (columns likewise).
  const rowOf = (g: number) => `tileRow + ${R(g * 4 * th.y)} + 4u * lid.y`;
  const colOf = (v: number) => `tileCol + ${R(v * 4 * th.x)} + 4u * lid.x`;
  const [sumOf, sumCount] = sums === 'colsOfB' ? ['b', gn] : ['a', gm];
  const sum = (g: number) => `sum${sumOf.toUpperCase()}${g}`;
  if (sums) for (let g = 0; g < sumCount; g++) accDecls.push(`  var ${sum(g)} = vec4<f32>(0.0);`);
  // One k-step: TM/4 + TN/4 vec4 reads of the current buffer, TM·TN/4 vec4 FMAs.
  const kStep = (kk: number): string[] => {
    const out: string[] = ['    {'];
    for (let g = 0; g < gm; g++) out.push(`      let a${g} = aTile[aBuf + ${R(kk * (bm / 4) + g * th.y)} + lid.y];`);
    for (let v = 0; v < gn; v++) out.push(`      let b${v} = bTile[bBuf + ${R(kk * (bn / 4) + v * th.x)} + lid.x];`);
    if (sums) for (let g = 0; g < sumCount; g++) out.push(`      ${sum(g)} = ${sum(g)} + ${sumOf}${g};`);
    for (let i = 0; i < tm; i++) {
      for (let v = 0; v < gn; v++) out.push(`      ${acc(i, v)} = fma(vec4<f32>(a${Math.floor(i / 4)}.${lanes[i % 4]}), b${v}, ${acc(i, v)});`);
    }
    out.push('    }');
    return out;
  };
  const compute: string[] = [];
  for (let kk = 0; kk < bk; kk++) compute.push(...kStep(kk));

  const stores: string[] = [];
  if (bias) {
    for (let v = 0; v < gn; v++) {
      const col0 = colOf(v);
      stores.push(`  let bias${v} = vec4<f32>(${[0, 1, 2, 3].map((c) => `bias[batch * u.biasStride + min(${col0} + ${R(c)}, u.N - 1u)]`).join(', ')});`);
    }
  }
  const plus = (v: number) => (bias ? ` + bias${v}` : '');
  for (let i = 0; i < tm; i++) {
    const row = `tileRow + ${R(Math.floor(i / 4) * 4 * th.y + (i % 4))} + 4u * lid.y`;
    stores.push(`  { let row = ${row};`, '    if (row < u.M) {');
    for (let v = 0; v < gn; v++) {
      const col = colOf(v);
      if (L.out) {
        stores.push(`      { let col = ${col}; if (col < u.N) { ${storeWGSL(store, '(outBase + row * u.N + col) / 4u', `${acc(i, v)}${plus(v)}`, true)} } }`);
      } else {
        stores.push(`      { let col = ${col}; let o = outBase + row * u.N + col; let r = ${acc(i, v)}${plus(v)};`);
        for (let c = 0; c < 4; c++) stores.push(`        if (col + ${R(c)} < u.N) { ${storeWGSL(store, `o + ${R(c)}`, `r.${lanes[c]}`, false)} }`);
        stores.push('      }');
      }
    }
    stores.push('    }', '  }');
  }
  if (sums) {
    const [first, X, at] = sums === 'colsOfB' ? ['tileRow == 0u && lid.y == 0u', 'N', colOf] : ['tileCol == 0u && lid.x == 0u', 'M', rowOf];
    stores.push(`  if (${first}) {`);
    for (let g = 0; g < sumCount; g++) {
      stores.push(`    { let x = ${at(g)};`);
      for (let c = 0; c < 4; c++) stores.push(`      if (x + ${R(c)} < u.${X}) { sums[batch * u.${X} + x + ${R(c)}] = ${sum(g)}.${lanes[c]}; }`);
      stores.push('    }');
    }
    stores.push('  }');
  }
  const elem = (vec: boolean) => (vec ? `vec4<${type}>` : type);
  return /* wgsl */ `${type === 'f16' ? 'enable f16;\n' : ''}${prelude}
@group(0) @binding(1) var<storage, read> a: array<${elem(L.a !== 'strided')}>;
@group(0) @binding(2) var<storage, read> b: array<${elem(L.b !== 'strided')}>;
@group(0) @binding(3) var<storage, read_write> out: array<${L.out ? 'vec4<f32>' : 'f32'}>;

// Two buffers of a's tile [k][m/4] and b's tile [k][n/4] (vec4 words).
var<workgroup> aTile: array<vec4<f32>, ${2 * bk * (bm / 4)}>;
var<workgroup> bTile: array<vec4<f32>, ${2 * bk * (bn / 4)}>;

// A ${th.x}x${th.y} workgroup computes a ${bm}x${bn} output tile, ${tm}x${tn} per invocation, k in tiles of ${bk} (layout a ${L.a}, b ${L.b}, ${type} operands).
@compute @workgroup_size(${th.x}, ${th.y})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) li: u32, @builtin(num_workgroups) nwg: vec3<u32>) {
  // The batch is uniform across the workgroup, so this return cannot split a barrier.
  let batch = (wid.y / u.rowGroups) * nwg.z + wid.z;
  if (batch >= u.batch) { return; }
  let offs = batchOffsets(batch);
  let tileRow = (wid.y % u.rowGroups) * ${R(bm)};
  let tileCol = wid.x * ${R(bn)};
${A.decls.join('\n')}
${B.decls.join('\n')}
${accDecls.join('\n')}
  let tiles = (u.K + ${R(bk - 1)}) / ${R(bk)};
  {
    let k0 = 0u;
    let buf = 0u;
${A.load.join('\n')}
${B.load.join('\n')}
${A.store.join('\n')}
${B.store.join('\n')}
  }
  workgroupBarrier();
  for (var t = 0u; t < tiles; t = t + 1u) {
    let more = t + 1u < tiles;
    if (more) {
      let k0 = (t + 1u) * ${R(bk)};
${A.load.join('\n')}
${B.load.join('\n')}
    }
    let aBuf = (t % 2u) * ${R(bk * (bm / 4))};
    let bBuf = (t % 2u) * ${R(bk * (bn / 4))};
${compute.join('\n')}
    if (more) {
      let buf = 1u - t % 2u;
${A.store.join('\n')}
${B.store.join('\n')}
    }
    workgroupBarrier();
  }
  let outBase = batch * u.M * u.N;
${stores.join('\n')}
}
`;
}
