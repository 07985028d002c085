// Fused scaled dot-product attention (FlashAttention-2 style): the forward streams over the keys
// with an online softmax and saves only the row log-sum-exp; the backward recomputes each
// probability from it, in one pass over keys per query (dq) and one over queries per key (dk, dv),
// so no tq×tk matrix is ever stored and nothing needs atomics.
//
// Dispatch geometry: one workgroup per block of g·rpi consecutive rows of ONE head: query rows
// (forward, dq) or key rows (dk/dv). Each invocation holds rpi of them (rows lid, lid + g, …) in
// registers, with their accumulators. The other operand's rows are walked by a loop whose index
// depends only on the workgroup, so every invocation reads the same key (or query) at the same
// address, and each row loaded serves rpi rows per invocation. On lavapipe (invocations are SIMD
// lanes) every storage load costs about the same whether its address is uniform or not, so loads
// per useful FMA are what counts: rpi = 4 cut the B=8 H=4 T=128 D=32 forward + backward 2.4x
// against rpi = 1. On a GPU the uniform address is a broadcast from cache. The head dim D is baked
// into the source (one pipeline per D) and the per-row loops are unrolled into vec4 operations
// when D % 4 == 0 (bindings as array<vec4<f32>>), scalars otherwise (about 3x slower on lavapipe:
// four times the loads); D <= ATTENTION_MAX_D. Workgroups take their head's blocks last-first, so
// under a causal mask the longest rows start first and the tail is short.
//
// Gradients are laid out like their inputs (rowAt): with the packed layout dq, dk and dv go straight
// into one dqkv buffer shaped like the projection, the dq kernel writing part 0 and the dk/dv kernel
// parts 1 and 2 through one read_write binding (a buffer written at one binding may not be bound at
// another in the same dispatch). Between them they write every element, so nothing is cleared.
//
// Scores are ((q·k)·scale + causalBias) + keyBias, the composed op's biases: −1e9 where causally
// masked, (mask − 1)·1e9 for a key mask (values in [0, 1], 1 = keep). With no key mask the q
// buffer is bound in its place.
//
// Causally hidden keys are skipped: the forward and dq loop over the keys visible to the block's
// last row only, dk/dv over the queries that see the block's first key. That is exact: where a row
// keeps at least one key its max score is a plain q·k·scale, far above any hidden key's score, so
// each hidden key's exp(score − max) is exactly 0 in f32. A row that keeps no key (all its visible
// keys masked out, or none visible when tq > tk) has every score near −1e9; there the composed op
// averages over all keys, hidden ones included, so such rows (max or lse below FULLY_MASKED) go on
// over the rest of the keys, and dk/dv add their hidden-query terms, exactly as without skipping.

import type { AttentionParams } from '../tensor/backend.js';
import { MAX_WORKGROUPS_PER_DIM, packUniforms, type Launch } from './kernel.js';
import { LOWEST_F32 } from './rows.js';

/** Largest head dim with a fused kernel (the backend composes beyond it). */
export const ATTENTION_MAX_D = 128;

/**
 * The software-adapter variant. Measured with bench/abAttention.ts on lavapipe (2 cores, 8-wide
 * SIMD; B=8 H=4 T=128 D=32 causal, forward + dq + dk/dv, best of 5, one process): g×rpi 16×1
 * 88 ms, 8×2 54, 8×4 37, 16×4 50, 8×8 32 — but 8×8 doubles the already long pipeline compile of
 * the unrolled D=32 code for a few percent. g = 8 is one SIMD chunk, so the causal bound of each
 * block is tight.
 */
export const ATTENTION_VARIANT: AttentionVariant = { g: 8, rpi: 4 };

/**
 * The hardware variant. On an NVIDIA H100 (same shape, 50 dispatches per submit, best of 5):
 * D=32 forward + dq + dk/dv 8×4 0.96 ms, 32×2 0.44, 8×1 … 128×1 0.36-0.38; D=64 8×4 2.46 ms,
 * 32×2 1.07, 32×1 0.49, 64×1 0.57, 8×1 0.69. Holding four rows (32 vec4 registers of
 * accumulators and operands at D=32) spills on a GPU; one row per invocation does not, and 32
 * invocations (one warp) keep the causal bound of each block tight.
 */
export const ATTENTION_VARIANT_HARDWARE: AttentionVariant = { g: 32, rpi: 1 };

/** The variant for an adapter: software (CPU driver) or a GPU. */
export function attentionVariantFor(adapterIsSoftware: boolean): AttentionVariant {
  return adapterIsSoftware ? ATTENTION_VARIANT : ATTENTION_VARIANT_HARDWARE;
}

/** A row whose max score (forward) or log-sum-exp (backward) is below this kept no key. */
const FULLY_MASKED = '-5e8';

/** How a row of D floats is held: n values of type ty, w floats each. */
interface RowLayout { n: number; w: 1 | 4; ty: string }

function layout(d: number): RowLayout {
  return d % 4 === 0 ? { n: d / 4, w: 4, ty: 'vec4<f32>' } : { n: d, w: 1, ty: 'f32' };
}

/** Names name0 … name(n−1). */
const names = (L: RowLayout, name: string) => Array.from({ length: L.n }, (_, c) => `${name}${c}`);

/** Row i of head bh of q (part 0), k (1) or v (2), wherever the layout puts it (see rowAtWGSL). */
function loadHeadRow(L: RowLayout, name: string, buf: 'q' | 'k' | 'v', bh: string, i: string): string {
  const [tlen, part] = buf === 'q' ? ['u.tq', 0] : ['u.tk', buf === 'k' ? 1 : 2];
  return `let ${name}at = rowAt(${bh}, ${i}, ${tlen}, ${part}u); ${names(L, name).map((x, c) => `let ${x} = ${buf}[${name}at + ${c}u];`).join(' ')}`;
}

/**
 * WGSL rowAt(bh, i, tlen, part): where row i of head bh starts (in binding elements). Separate
 * [batch·heads, tlen, D] buffers, or with \`packed\` one [batch, T, 3, heads, D] projection whose
 * part 0, 1, 2 are q, k, v (the division by heads is per row, not per element). The gradients
 * dq, dk, dv (or the packed dqkv) share their inputs' layout: each row is stored where its input
 * row was read.
 */
function rowAtWGSL(L: RowLayout, packed: boolean): string {
  const body = packed
    ? `return (((bh / u.heads) * tlen + i) * 3u * u.heads + part * u.heads + bh % u.heads) * ${L.n}u;`
    : `return (bh * tlen + i) * ${L.n}u;`;
  // out and dout: [batch·heads, tq, D], or with \`packed\` heads merged, [batch, tq, heads, D].
  const outBody = packed
    ? `return (((bh / u.heads) * u.tq + i) * u.heads + bh % u.heads) * ${L.n}u;`
    : `return (bh * u.tq + i) * ${L.n}u;`;
  return `fn rowAt(bh: u32, i: u32, tlen: u32, part: u32) -> u32 { ${body} }
fn outAt(bh: u32, i: u32) -> u32 { ${outBody} }`;
}

/** Query row i of head bh of out or dout (see outAt in rowAtWGSL). */
function loadOutRow(L: RowLayout, name: string, buf: 'out' | 'dout', bh: string, i: string): string {
  return `let ${name}at = outAt(${bh}, ${i}); ${names(L, name).map((x, c) => `let ${x} = ${buf}[${name}at + ${c}u];`).join(' ')}`;
}

/**
 * The dot product of two rows given as part expressions. With vec4 parts the products are summed
 * as vec4 (four independent chains) and the lanes added at the end.
 */
function dotRows(L: RowLayout, a: string[], b: string[]): string {
  const sum = a.map((x, c) => `${x} * ${b[c]}`).join(' + ');
  return L.w === 4 ? `dot(${sum}, vec4<f32>(1.0))` : `(${sum})`;
}

const HEADER = (L: RowLayout, g: number, rpi = 1) => `const G = ${g}u;
const BLOCK = ${g * rpi}u; // rows per workgroup
struct U { groups: u32, blocks: u32, heads: u32, tq: u32, tk: u32, scale: f32, causal: u32, hasMask: u32 }
@group(0) @binding(0) var<uniform> u: U;`;

/** WGSL shared by the kernels (they declare `mask`). */
const COMMON_WGSL = `
const FULLY_MASKED = ${FULLY_MASKED};

/** The biased score of query i against key j, given q·k and the key's mask bias. */
fn score(dot: f32, i: u32, j: u32, keyBias: f32) -> f32 {
  var s = dot * u.scale;
  if (u.causal != 0u && i32(j) - i32(i) > i32(u.tk) - i32(u.tq)) { s = s - 1e9; }
  return s + keyBias;
}

fn keyBias(b: u32, j: u32) -> f32 {
  if (u.hasMask == 0u) { return 0.0; }
  return (mask[b * u.tk + j] - 1.0) * 1e9;
}

/** Keys [0, visibleKeys(n)) include every key causally visible to queries [0, n). */
fn visibleKeys(n: u32) -> u32 {
  if (u.causal == 0u) { return u.tk; }
  return u32(clamp(i32(n) + i32(u.tk) - i32(u.tq), 0, i32(u.tk)));
}

/** The first query that causally sees key j (tq when none does). */
fn firstQuery(j: u32) -> u32 {
  if (u.causal == 0u) { return 0u; }
  return u32(clamp(i32(j) + i32(u.tq) - i32(u.tk), 0, i32(u.tq)));
}

struct Block { bh: u32, first: u32 }

/** Workgroup g's head and first row: blocks of a head in reverse, the longest causal rows first. */
fn blockOf(g: u32) -> Block {
  let bh = g / u.blocks;
  let blk = u.blocks - 1u - g % u.blocks;
  return Block(bh, blk * BLOCK);
}`;

const MAIN = (g: number) => `@compute @workgroup_size(${g})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let g = wid.y * nwg.x + wid.x;
  if (g >= u.groups) { return; }`;

/**
 * Kernel shape: g invocations per workgroup, each holding rpi rows (rows lid, lid + g, …, of the
 * workgroup's block of g·rpi rows), so every key (or query) loaded serves rpi rows per invocation.
 */
export interface AttentionVariant { g: number; rpi: number }

const range = (n: number) => Array.from({ length: n }, (_, t) => t);

/**
 * WGSL declaring each row this invocation holds: index `${ix}${ρ}` within its head (clamped, so
 * lanes past the end redo the last row and store nothing) and, given rx, flat row `${rx}${ρ}`.
 */
function rowsHeld(rpi: number, ix: string, rx: string | null, count: string): string {
  return range(rpi).map((t) => `let ${ix}${t} = min(blk.first + lid + ${t}u * G, ${count} - 1u);${rx ? ` let ${rx}${t} = blk.bh * ${count} + ${ix}${t};` : ''}`).join('\n  ');
}

/** WGSL storing a held row when it exists: body(ρ) for each ρ. */
function storeRows(rpi: number, count: string, body: (t: number) => string): string {
  return range(rpi).map((t) => `if (blk.first + lid + ${t}u * G < ${count}) { ${body(t)} }`).join('\n  ');
}

/** The smallest of the expressions (WGSL's min takes two). */
const minOf = (xs: string[]) => xs.reduce((e, x) => `min(${e}, ${x})`);

const zeros = (L: RowLayout, xs: string[]) => xs.map((a) => `var ${a} = ${L.ty}(0.0);`).join(' ');

function forwardCode(d: number, { g, rpi }: AttentionVariant, packed: boolean): string {
  const L = layout(d);
  const kj = names(L, 'kj');
  const step = `{
    let kb = keyBias(b, j);
    ${loadHeadRow(L, 'kj', 'k', 'blk.bh', 'j')}
    ${loadHeadRow(L, 'vj', 'v', 'blk.bh', 'j')}${range(rpi).map((t) => `
    {
      let s = score(${dotRows(L, names(L, `q${t}_`), kj)}, i${t}, j, kb);
      let mNew = max(m${t}, s);
      let corr = exp(m${t} - mNew);
      let p = exp(s - mNew);
      l${t} = l${t} * corr + p;
      ${names(L, `acc${t}_`).map((a, c) => `${a} = ${a} * corr + p * vj${c};`).join(' ')}
      m${t} = mNew;
    }`).join('')}
  }`;
  return `${HEADER(L, g, rpi)}
@group(0) @binding(1) var<storage, read> q: array<${L.ty}>;
@group(0) @binding(2) var<storage, read> k: array<${L.ty}>;
@group(0) @binding(3) var<storage, read> v: array<${L.ty}>;
@group(0) @binding(4) var<storage, read> mask: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<${L.ty}>;
@group(0) @binding(6) var<storage, read_write> lse: array<f32>;
${COMMON_WGSL}
${rowAtWGSL(L, packed)}
${MAIN(g)}
  let blk = blockOf(g);
  let b = blk.bh / u.heads;
  ${rowsHeld(rpi, 'i', 'r', 'u.tq')}
  ${range(rpi).map((t) => loadHeadRow(L, `q${t}_`, 'q', 'blk.bh', `i${t}`)).join('\n  ')}
  ${range(rpi).map((t) => zeros(L, names(L, `acc${t}_`))).join('\n  ')}
  // Online softmax: m is the running max, l the sum of exp(s - m); acc is rescaled when m grows.
  ${range(rpi).map((t) => `var m${t} = ${LOWEST_F32}; var l${t} = 0.0;`).join(' ')}
  let jEnd = visibleKeys(min(blk.first + BLOCK, u.tq));
  for (var j = 0u; j < jEnd; j++) ${step}
  // A row that kept no key averages the hidden keys too (see the file comment); usually no lane has
  // one. For the other rows held by such a lane these steps change nothing (weight exactly 0).
  let jStop = select(jEnd, u.tk, ${minOf(range(rpi).map((t) => `m${t}`))} < FULLY_MASKED);
  for (var j = jEnd; j < jStop; j++) ${step}
  ${storeRows(rpi, 'u.tq', (t) => `lse[r${t}] = m${t} + log(l${t}); let o${t} = outAt(blk.bh, i${t}); ${names(L, `acc${t}_`).map((a, c) => `out[o${t} + ${c}u] = ${a} / l${t};`).join(' ')}`)}
}`;
}

/** Per query row: stats[r] = (lse[r], dout[r]·out[r]), the softmax backward's row dot product. */
function statsCode(d: number, g: number, packed: boolean): string {
  const L = layout(d);
  return `${HEADER(L, g)}
@group(0) @binding(1) var<storage, read> out: array<${L.ty}>;
@group(0) @binding(2) var<storage, read> dout: array<${L.ty}>;
@group(0) @binding(3) var<storage, read> lse: array<f32>;
@group(0) @binding(4) var<storage, read_write> stats: array<vec2<f32>>;
${rowAtWGSL(L, packed)}
@compute @workgroup_size(${g})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  // A plain 1-D grid: here u.groups counts rows.
  let r = (wid.y * nwg.x + wid.x) * G + lid;
  if (r >= u.groups) { return; }
  ${loadOutRow(L, 'o', 'out', 'r / u.tq', 'r % u.tq')}
  ${loadOutRow(L, 'g', 'dout', 'r / u.tq', 'r % u.tq')}
  stats[r] = vec2<f32>(lse[r], ${dotRows(L, names(L, 'g'), names(L, 'o'))});
}`;
}

/** Per query row: dq = scale · Σ_j p_ij (dout_i·v_j − dsum_i) k_j; packed, into part 0 of dqkv. */
function dqCode(d: number, { g, rpi }: AttentionVariant, packed: boolean): string {
  const L = layout(d);
  const dq = packed ? 'dqkv' : 'dq';
  const kj = names(L, 'kj');
  const vj = names(L, 'vj');
  const step = `{
    let kb = keyBias(b, j);
    ${loadHeadRow(L, 'kj', 'k', 'blk.bh', 'j')}
    ${loadHeadRow(L, 'vj', 'v', 'blk.bh', 'j')}${range(rpi).map((t) => `
    {
      let p = exp(score(${dotRows(L, names(L, `q${t}_`), kj)}, i${t}, j, kb) - st${t}.x);
      let ds = p * (${dotRows(L, names(L, `g${t}_`), vj)} - st${t}.y);
      ${names(L, `acc${t}_`).map((a, c) => `${a} += ds * kj${c};`).join(' ')}
    }`).join('')}
  }`;
  return `${HEADER(L, g, rpi)}
@group(0) @binding(1) var<storage, read> q: array<${L.ty}>;
@group(0) @binding(2) var<storage, read> k: array<${L.ty}>;
@group(0) @binding(3) var<storage, read> v: array<${L.ty}>;
@group(0) @binding(4) var<storage, read> mask: array<f32>;
@group(0) @binding(5) var<storage, read> stats: array<vec2<f32>>;
@group(0) @binding(6) var<storage, read> dout: array<${L.ty}>;
@group(0) @binding(7) var<storage, read_write> ${dq}: array<${L.ty}>;
${COMMON_WGSL}
${rowAtWGSL(L, packed)}
${MAIN(g)}
  let blk = blockOf(g);
  let b = blk.bh / u.heads;
  ${rowsHeld(rpi, 'i', 'r', 'u.tq')}
  ${range(rpi).map((t) => `let st${t} = stats[r${t}]; ${loadHeadRow(L, `q${t}_`, 'q', 'blk.bh', `i${t}`)} ${loadOutRow(L, `g${t}_`, 'dout', 'blk.bh', `i${t}`)}`).join('\n  ')}
  ${range(rpi).map((t) => zeros(L, names(L, `acc${t}_`))).join('\n  ')}
  let jEnd = visibleKeys(min(blk.first + BLOCK, u.tq));
  for (var j = 0u; j < jEnd; j++) ${step}
  // Rows that kept no key see the hidden keys too (for the lane's other rows p is exactly 0).
  let jStop = select(jEnd, u.tk, ${minOf(range(rpi).map((t) => `st${t}.x`))} < FULLY_MASKED);
  for (var j = jEnd; j < jStop; j++) ${step}
  // dq is laid out like q: each row goes where its q row was read.
  ${storeRows(rpi, 'u.tq', (t) => names(L, `acc${t}_`).map((a, c) => `${dq}[q${t}_at + ${c}u] = ${a} * u.scale;`).join(' '))}
}`;
}

/**
 * Per key row: dv = Σ_i p_ij dout_i; dk = scale · Σ_i p_ij (dout_i·v_j − dsum_i) q_i. Packed, both
 * into one binding, dqkv, at parts 1 and 2.
 */
function dkvCode(d: number, { g, rpi }: AttentionVariant, packed: boolean): string {
  const L = layout(d);
  const [dk, dv] = packed ? ['dqkv', 'dqkv'] : ['dk', 'dv'];
  const qi = names(L, 'qi');
  const gi = names(L, 'gi');
  const step = `{
    let r = blk.bh * u.tq + i;
    let st = stats[r];
    ${loadHeadRow(L, 'qi', 'q', 'blk.bh', 'i')}
    ${loadOutRow(L, 'gi', 'dout', 'blk.bh', 'i')}${range(rpi).map((t) => `
    {
      let p = exp(score(${dotRows(L, qi, names(L, `k${t}_`))}, i, j${t}, bias${t}) - st.x);
      let ds = p * (${dotRows(L, gi, names(L, `v${t}_`))} - st.y);
      ${names(L, `dv${t}_`).map((a, c) => `${a} += p * gi${c};`).join(' ')}
      ${names(L, `dk${t}_`).map((a, c) => `${a} += ds * qi${c};`).join(' ')}
    }`).join('')}
  }`;
  return `${HEADER(L, g, rpi)}
@group(0) @binding(1) var<storage, read> q: array<${L.ty}>;
@group(0) @binding(2) var<storage, read> k: array<${L.ty}>;
@group(0) @binding(3) var<storage, read> v: array<${L.ty}>;
@group(0) @binding(4) var<storage, read> mask: array<f32>;
@group(0) @binding(5) var<storage, read> stats: array<vec2<f32>>;
@group(0) @binding(6) var<storage, read> dout: array<${L.ty}>;
${packed
    ? `@group(0) @binding(7) var<storage, read_write> dqkv: array<${L.ty}>;`
    : `@group(0) @binding(7) var<storage, read_write> dk: array<${L.ty}>;
@group(0) @binding(8) var<storage, read_write> dv: array<${L.ty}>;`}
${COMMON_WGSL}
${rowAtWGSL(L, packed)}
${MAIN(g)}
  let blk = blockOf(g);
  let b = blk.bh / u.heads;
  ${rowsHeld(rpi, 'j', null, 'u.tk')}
  ${range(rpi).map((t) => `let bias${t} = keyBias(b, j${t}); ${loadHeadRow(L, `k${t}_`, 'k', 'blk.bh', `j${t}`)} ${loadHeadRow(L, `v${t}_`, 'v', 'blk.bh', `j${t}`)}`).join('\n  ')}
  ${range(rpi).map((t) => `${zeros(L, names(L, `dk${t}_`))} ${zeros(L, names(L, `dv${t}_`))}`).join('\n  ')}
  // Queries before iStart see none of this block's keys: only rows that kept no key (lse near −1e9)
  // give them weight. A scan (one load per query, uniform across the workgroup) finds those.
  let iStart = firstQuery(blk.first);
  var i = 0u;
  loop {
    while (i < iStart && stats[blk.bh * u.tq + i].x >= FULLY_MASKED) { i++; }
    if (i >= iStart) { break; }
    ${step}
    i++;
  }
  for (i = iStart; i < u.tq; i++) ${step}
  // dk and dv are laid out like k and v: each row goes where its k and v rows were read.
  ${storeRows(rpi, 'u.tk', (t) => `${names(L, `dk${t}_`).map((a, c) => `${dk}[k${t}_at + ${c}u] = ${a} * u.scale;`).join(' ')} ${names(L, `dv${t}_`).map((a, c) => `${dv}[v${t}_at + ${c}u] = ${a};`).join(' ')}`)}
}`;
}

/** Uniforms and workgroups for blocks of g rows of each head (rows per head: tq or tk). */
function blocked(p: AttentionParams, rowsPerHead: number, hasMask: boolean, g: number): Pick<Launch, 'uniforms' | 'workgroups'> {
  const blocks = Math.max(1, Math.ceil(rowsPerHead / g));
  const groups = p.batch * p.heads * blocks;
  return { uniforms: uniforms(p, groups, blocks, hasMask), workgroups: grid(groups) };
}

function uniforms(p: AttentionParams, groups: number, blocks: number, hasMask: boolean): Uint32Array {
  return packUniforms([['u32', groups], ['u32', blocks], ['u32', p.heads], ['u32', p.tq], ['u32', p.tk], ['f32', p.scale],
    ['u32', p.causal ? 1 : 0], ['u32', hasMask ? 1 : 0]]);
}

/** Workgroup counts for n groups, folded into y past the per-dimension limit (kernels skip g >= n). */
function grid(n: number): [number, number, number] {
  const y = Math.ceil(Math.max(1, n) / MAX_WORKGROUPS_PER_DIM);
  return [Math.ceil(Math.max(1, n) / y), y, 1];
}

const codes = new Map<string, string>();

/** A kernel's source, built once per (kind, d, variant, layout): the unrolled builders are costly per dispatch. */
function code(kind: string, d: number, v: AttentionVariant, build: () => string, packed = false): string {
  const key = `${kind}|${d}|${v.g}|${v.rpi}|${packed}`;
  let c = codes.get(key);
  if (c === undefined) codes.set(key, (c = build()));
  return c;
}

const packed = (p: AttentionParams) => (p.packedQKV ? ',packed' : '');

/** Storage [q, k, v, mask (or q): read; out, lse: read_write]; with p.packedQKV q, k and v are one buffer. */
export function attentionLaunch(p: AttentionParams, hasMask: boolean, v: AttentionVariant = ATTENTION_VARIANT): Launch {
  return {
    kernel: { name: `attention[d=${p.d},g=${v.g},rpi=${v.rpi}${packed(p)}]`, code: code('fwd', p.d, v, () => forwardCode(p.d, v, !!p.packedQKV), !!p.packedQKV), storage: ['read', 'read', 'read', 'read', 'read_write', 'read_write'] },
    ...blocked(p, p.tq, hasMask, v.g * v.rpi),
  };
}

/**
 * Three launches, in order: stats with storage [out, dout, lse: read; stats (vec2 per query row):
 * read_write]; dq with [q, k, v, mask, stats, dout: read; dq: read_write]; dk/dv with
 * [q, k, v, mask, stats, dout: read; dk, dv: read_write]. With p.packedQKV the dq and dk/dv
 * launches both end in one read_write dqkv instead (laid out like the packed q|k|v), which the
 * two write disjoint parts of: dq part 0, dk/dv parts 1 and 2.
 */
export function attentionBackwardLaunches(p: AttentionParams, hasMask: boolean, v: AttentionVariant = ATTENTION_VARIANT): { stats: Launch; dq: Launch; dkv: Launch } {
  const qRows = p.batch * p.heads * p.tq;
  const read6 = ['read', 'read', 'read', 'read', 'read', 'read'] as const;
  const statsGroups = Math.ceil(qRows / 64);
  return {
    stats: {
      kernel: { name: `attentionBackward[stats,d=${p.d}${packed(p)}]`, code: code('stats', p.d, { g: 64, rpi: 1 }, () => statsCode(p.d, 64, !!p.packedQKV), !!p.packedQKV), storage: ['read', 'read', 'read', 'read_write'] },
      uniforms: uniforms(p, qRows, 1, hasMask),
      workgroups: grid(statsGroups),
    },
    dq: {
      kernel: { name: `attentionBackward[dq,d=${p.d},g=${v.g},rpi=${v.rpi}${packed(p)}]`, code: code('dq', p.d, v, () => dqCode(p.d, v, !!p.packedQKV), !!p.packedQKV), storage: [...read6, 'read_write'] },
      ...blocked(p, p.tq, hasMask, v.g * v.rpi),
    },
    dkv: {
      kernel: { name: `attentionBackward[dk,dv,d=${p.d},g=${v.g},rpi=${v.rpi}${packed(p)}]`, code: code('dkv', p.d, v, () => dkvCode(p.d, v, !!p.packedQKV), !!p.packedQKV), storage: p.packedQKV ? [...read6, 'read_write'] : [...read6, 'read_write', 'read_write'] },
      ...blocked(p, p.tk, hasMask, v.g * v.rpi),
    },
  };
}
