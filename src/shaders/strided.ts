// Strided indexing shared by the elementwise, movement and reduce kernels: shapes and strides
// travel in the uniform buffer (never baked into the source), so one pipeline serves every shape.
//
// Uniform layout (32-bit words): a 4-word header, then MAX_RANK-word blocks for the shape, for the
// f32 reciprocals of the shape (see divBySize), and for each operand's strides. WGSL sees each block
// as array<vec4<…>, 2>, whose memory layout is the same as 8 consecutive scalars, so packing stays
// "4-byte scalars in order" as in kernel.ts.
//
// Why reciprocals: lavapipe runs each invocation lane on a CPU SIMD unit, which has no vector integer
// division, so `i / size` by a uniform is scalarized and dominated the cost of every strided kernel
// (a rank-5 permute copied about 5M elements/s). An f32 multiply by 1/size and one correction step is
// exact below 2^24 and stays vectorized; larger tensors use the integer-division variant.

export const MAX_RANK = 8;
export const STRIDED_WG = 256;

/** Element counts below this index with the f32-reciprocal division (exact there, see divBySize). */
export const FAST_DIV_LIMIT = 1 << 24;

/** Whether a launch over n elements needs the integer-division variant of a strided kernel. */
export function needsExactDiv(n: number): boolean {
  return n >= FAST_DIV_LIMIT;
}

/** Drops size-1 dims and merges neighbours that are contiguous in every stride set (fewer divisions per element). */
export function collapseDims(shape: readonly number[], strides: readonly (readonly number[])[]): { shape: number[]; strides: number[][] } {
  const outShape: number[] = [];
  const outStrides: number[][] = strides.map(() => []);
  for (let d = 0; d < shape.length; d++) {
    if (shape[d] === 1) continue;
    const last = outShape.length - 1;
    if (last >= 0 && strides.every((s, k) => outStrides[k][last] === s[d] * shape[d])) {
      outShape[last] *= shape[d];
      strides.forEach((s, k) => (outStrides[k][last] = s[d]));
    } else {
      outShape.push(shape[d]);
      strides.forEach((s, k) => outStrides[k].push(s[d]));
    }
  }
  return { shape: outShape, strides: outStrides };
}

/** Header [h0..h3] followed by the shape, its reciprocals and the stride blocks, each padded to MAX_RANK words. */
export function packStrided(header: readonly number[], shape: readonly number[], strides: readonly (readonly number[])[]): Uint32Array {
  if (shape.length > MAX_RANK) throw new RangeError(`strided kernels support rank <= ${MAX_RANK} after merging contiguous dims, got ${shape.length}`);
  const words = new Uint32Array(4 + MAX_RANK * (2 + strides.length));
  const inv = new Float32Array(words.buffer, (4 + MAX_RANK) * 4, MAX_RANK);
  header.forEach((v, i) => (words[i] = v >>> 0));
  shape.forEach((v, i) => {
    words[4 + i] = v;
    inv[i] = v > 0 ? 1 / v : 0;
  });
  strides.forEach((s, k) => s.forEach((v, i) => (words[4 + MAX_RANK * (k + 2) + i] = v)));
  return words;
}

/** The WGSL uniform struct for packStrided with the given header field names and stride blocks. */
export function stridedStructWGSL(header: readonly [string, string, string, string], strideNames: readonly string[]): string {
  const fields = [...header.map((h) => `${h}: u32`), 'shape: array<vec4<u32>, 2>', 'inv: array<vec4<f32>, 2>', ...strideNames.map((s) => `${s}: array<vec4<u32>, 2>`)];
  return `struct U { ${fields.join(', ')} }\n@group(0) @binding(0) var<uniform> u: U;`;
}

/**
 * WGSL `divBySize(n, size, inv)` = n / size for inv = f32(1 / size). The fast form is exact for
 * n < 2^24 and size >= 2: f32(n) is exact, the product is within one of n / size, and one step
 * corrects the truncated quotient. (Size-1 dims never reach it: collapseDims drops them.)
 */
export function divBySizeWGSL(exact: boolean): string {
  if (exact) return 'fn divBySize(n: u32, size: u32, inv: f32) -> u32 { return n / size; }';
  return `fn divBySize(n: u32, size: u32, inv: f32) -> u32 {
  var q = u32(f32(n) * inv);
  let p = q * size;
  q = select(q, q - 1u, p > n);
  return select(q, q + 1u, p <= n && n - p >= size);
}`;
}

/**
 * WGSL: `offsets(i)` maps a flat row-major index over u.shape to one offset per stride block,
 * innermost dim first: one divBySize per dim but the outermost, which needs none. The rank is baked
 * in and the loop unrolled, so every uniform index is a constant: the loop over a uniform rank with
 * dynamic indices ran 4-6x slower on lavapipe (a rank-5 permute of 393k floats: 20-28 ms vs 4-6).
 * One pipeline per (kernel, rank), at most MAX_RANK + 1 each.
 */
export function offsetsWGSL(strideNames: readonly string[], exact: boolean, rank: number): string {
  if (rank > MAX_RANK) throw new RangeError(`strided kernels support rank <= ${MAX_RANK} after merging contiguous dims, got ${rank}`);
  const n = strideNames.length;
  const ty = n === 1 ? 'u32' : `vec${n}<u32>`;
  const at = (d: number): string => `[${d >> 2}][${d & 3}]`;
  const strideVec = (d: number): string => (n === 1 ? `u.${strideNames[0]}${at(d)}` : `${ty}(${strideNames.map((s) => `u.${s}${at(d)}`).join(', ')})`);
  const lines: string[] = [];
  for (let d = rank - 1; d > 0; d--) {
    lines.push(`  let q${d} = divBySize(rem, u.shape${at(d)}, u.inv${at(d)});`);
    lines.push(`  off = off + (rem - q${d} * u.shape${at(d)}) * ${strideVec(d)};`);
    lines.push(`  rem = q${d};`);
  }
  if (rank > 0) lines.push(`  off = off + rem * ${strideVec(0)};`);
  return `${divBySizeWGSL(exact)}
fn offsets(flat: u32) -> ${ty} {
  var rem = flat;
  var off = ${ty}(0u);
${lines.join('\n')}
  return off;
}`;
}
