// Strided indexing shared by the elementwise, movement and reduce kernels: shapes and strides
// travel in the uniform buffer (never baked into the source), so one pipeline serves every shape.
//
// Uniform layout (32-bit words): a 4-word header, then MAX_RANK-word blocks for the shape and for
// each operand's strides. WGSL sees each block as array<vec4<u32>, 2>, whose memory layout is the
// same as 8 consecutive u32 scalars, so packing stays "4-byte scalars in order" as in kernel.ts.

export const MAX_RANK = 8;
export const STRIDED_WG = 256;

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

/** Header [h0..h3] followed by the shape and the stride blocks, each padded to MAX_RANK words. */
export function packStrided(header: readonly number[], shape: readonly number[], strides: readonly (readonly number[])[]): Uint32Array {
  if (shape.length > MAX_RANK) throw new RangeError(`strided kernels support rank <= ${MAX_RANK} after merging contiguous dims, got ${shape.length}`);
  const words = new Uint32Array(4 + MAX_RANK * (1 + strides.length));
  header.forEach((v, i) => (words[i] = v >>> 0));
  shape.forEach((v, i) => (words[4 + i] = v));
  strides.forEach((s, k) => s.forEach((v, i) => (words[4 + MAX_RANK * (k + 1) + i] = v)));
  return words;
}

/** The WGSL uniform struct for packStrided with the given header field names and stride blocks. */
export function stridedStructWGSL(header: readonly [string, string, string, string], strideNames: readonly string[]): string {
  const fields = [...header.map((h) => `${h}: u32`), 'shape: array<vec4<u32>, 2>', ...strideNames.map((s) => `${s}: array<vec4<u32>, 2>`)];
  return `struct U { ${fields.join(', ')} }\n@group(0) @binding(0) var<uniform> u: U;`;
}

/**
 * WGSL: `offsets(i)` maps a flat row-major index over u.shape (rank u.rank) to one offset per stride
 * block, innermost dim first (one div/mod per dim).
 */
export function offsetsWGSL(strideNames: readonly string[]): string {
  const n = strideNames.length;
  const ty = n === 1 ? 'u32' : `vec${n}<u32>`;
  const strideVec = n === 1 ? `u.${strideNames[0]}[q][r]` : `${ty}(${strideNames.map((s) => `u.${s}[q][r]`).join(', ')})`;
  return `fn offsets(flat: u32) -> ${ty} {
  var rem = flat;
  var off = ${ty}(0u);
  for (var d = i32(u.rank) - 1; d >= 0; d = d - 1) {
    let q = u32(d) >> 2u;
    let r = u32(d) & 3u;
    let size = u.shape[q][r];
    off = off + (rem % size) * ${strideVec};
    rem = rem / size;
  }
  return off;
}`;
}
