// Counter-based random numbers (Philox4x32-10) and the element-level generator contract that the
// CPU backend (this file) and the GPU backend (src/shaders/philox.ts) both implement.
//
// Why counter-based: element i of a random op is a pure function of (key, offset + i), so the
// result does not depend on which backend runs the op, on thread order, or on how a run was
// split by checkpoints.
//
// The contract (both backends):
//   - key = [seedLo, seedHi]: the low and high 32 bits of a 64-bit seed (`seedToKey`).
//   - A random op reserves n counters from a `Generator` and receives its base `offset`
//     (an integer, 0 <= offset and offset + n <= 2^53).
//   - Element i uses counter c = offset + i as the Philox counter [lo32(c), hi32(c), 0, 0] and the
//     four output words w = philox4x32(counter, key). One counter per element keeps GPU indexing
//     trivial (invocation i reads counter offset + i, with a carry into the high word); it spends
//     4 words where uniform needs 1 and normal needs 2, which is cheap next to most kernels
//     (dropout masks, where the rounds dominate, use all four: see the end).
//   - uniform(i)   = (w0 >>> 8) * 2^-24, in [0, 1). 24 bits so the value is exact in f32: the GPU
//     and CPU agree bit for bit.
//   - bernoulli(i) = uniform(i) < p, computed as the integer test (w0 >>> 8) < ceil(p * 2^24)
//     (`bernoulliThreshold`), which is the same predicate for every real p and needs no float
//     compare on the GPU: masks are bit-identical.
//   - normal(i)    = sqrt(-2 ln u1) * cos(2 pi u2) (Box-Muller, one output per counter) with
//     u1 = ((w0 >>> 8) + 1) * 2^-24 in (0, 1] and u2 = (w1 >>> 8) * 2^-24 in [0, 1). The inputs are
//     exact f32 values on both backends; the CPU evaluates log/sqrt/cos in f64 and rounds once, the
//     GPU in f32, so normals agree to |gpu - cpu| <= 1e-6 * (1 + |z|), not bit for bit
//     (absolute plus relative: near z = 0 a purely relative bound is meaningless). |normal| <= sqrt(48 ln 2) ~ 5.77, a tail cut at probability ~8e-9.
//
// Dropout masks (and only they) use all four words of a block, as the Philox rounds dominate a
// dropout kernel's cost. Stream positions stay element positions (a mask of n elements reserves n
// positions), but position c draws lane c mod 4 of block b = floor(c / 4):
//   - w = philox4x32([lo32(b), hi32(b), 1, 0], key); word 2 = 1 (`DROPOUT_DOMAIN`) marks the dropout
//     domain, so a dropout block never coincides with a block another random op (word 2 = 0) draws.
//   - dropoutUniform(c) = (w[c mod 4] >>> 8) * 2^-24, exact in f32 as above; a mask keeps position
//     c where dropoutUniform(c) < 1 - p (`fillDropoutUniform`, src/shaders/dropout.ts on the GPU).

/** Philox4x32 multipliers and Weyl key increments (Salmon et al. 2011, Random123). */
export const PHILOX_M0 = 0xd2511f53;
export const PHILOX_M1 = 0xcd9e8d57;
export const PHILOX_W0 = 0x9e3779b9;
export const PHILOX_W1 = 0xbb67ae85;
export const PHILOX_ROUNDS = 10;

/** Counters (offset + i) stay exact JavaScript integers. */
export const MAX_OFFSET = 2 ** 53;

const TWO_POW_32 = 2 ** 32;
const TWO_POW_24 = 2 ** 24;
const TWO_POW_MINUS_24 = 2 ** -24;

export type PhiloxKey = [number, number];
export type PhiloxBlock = [number, number, number, number];

/**
 * High 32 bits of the exact 64-bit product of two u32 values. Math.imul only gives the low word,
 * and a * b in f64 loses bits above 2^53, so multiply 16-bit halves: each partial product is
 * below 2^32 and every sum below stays under 2^34, exact in f64 (and, in the same order, in u32
 * on the GPU).
 */
function mulhi32(a: number, b: number): number {
  const al = a & 0xffff;
  const ah = a >>> 16;
  const bl = b & 0xffff;
  const bh = b >>> 16;
  const ll = al * bl;
  const lh = al * bh;
  const hl = ah * bl;
  const mid = (ll >>> 16) + (lh & 0xffff) + (hl & 0xffff);
  return (ah * bh + (lh >>> 16) + (hl >>> 16) + (mid >>> 16)) >>> 0;
}

/** Exact 32x32 -> 64-bit multiply of two u32 values, as [hi, lo] words. */
export function mulhilo32(a: number, b: number): [hi: number, lo: number] {
  return [mulhi32(a >>> 0, b >>> 0), Math.imul(a, b) >>> 0];
}

/**
 * Philox4x32-10 on one block, written into `out` to avoid an allocation per element in the fills.
 * Round: (c0, c1, c2, c3) -> (hi(M1*c2) ^ c1 ^ k0, lo(M1*c2), hi(M0*c0) ^ c3 ^ k1, lo(M0*c0));
 * the key is bumped by (W0, W1) between rounds.
 */
function philoxInto(
  c0: number, c1: number, c2: number, c3: number,
  k0: number, k1: number,
  out: Uint32Array,
): void {
  for (let round = 0; round < PHILOX_ROUNDS; round++) {
    if (round > 0) {
      k0 = (k0 + PHILOX_W0) >>> 0;
      k1 = (k1 + PHILOX_W1) >>> 0;
    }
    const hi0 = mulhi32(PHILOX_M0, c0);
    const lo0 = Math.imul(PHILOX_M0, c0) >>> 0;
    const hi1 = mulhi32(PHILOX_M1, c2);
    const lo1 = Math.imul(PHILOX_M1, c2) >>> 0;
    c0 = (hi1 ^ c1 ^ k0) >>> 0;
    c1 = lo1;
    c2 = (hi0 ^ c3 ^ k1) >>> 0;
    c3 = lo0;
  }
  out[0] = c0;
  out[1] = c1;
  out[2] = c2;
  out[3] = c3;
}

/** Philox4x32-10: four u32 output words for a four-word counter and a two-word key. */
export function philox4x32(counter: PhiloxBlock, key: PhiloxKey): PhiloxBlock {
  const out = new Uint32Array(4);
  philoxInto(
    counter[0] >>> 0, counter[1] >>> 0, counter[2] >>> 0, counter[3] >>> 0,
    key[0] >>> 0, key[1] >>> 0,
    out,
  );
  return [out[0]!, out[1]!, out[2]!, out[3]!];
}

/** Split a 64-bit seed (a safe non-negative integer or a bigint in [0, 2^64)) into [lo, hi]. */
export function seedToKey(seed: number | bigint): PhiloxKey {
  const s = seedToBigInt(seed);
  return [Number(s & 0xffffffffn), Number(s >> 32n)];
}

function seedToBigInt(seed: number | bigint): bigint {
  if (typeof seed === 'number') {
    if (!Number.isSafeInteger(seed) || seed < 0) {
      throw new RangeError(`philox seed: expected a non-negative safe integer or a bigint, got ${seed}`);
    }
    return BigInt(seed);
  }
  if (seed < 0n || seed >= 1n << 64n) {
    throw new RangeError(`philox seed: bigint seed must be in [0, 2^64), got ${seed}`);
  }
  return seed;
}

/** Low and high u32 words of a stream offset, as the GPU kernels take them. */
export function splitOffset(offset: number): [lo: number, hi: number] {
  return [offset >>> 0, Math.floor(offset / TWO_POW_32)];
}

/** Integer form of "uniform < p": keep iff (w0 >>> 8) < threshold. Clamped to [0, 2^24]. */
export function bernoulliThreshold(p: number): number {
  if (Number.isNaN(p)) throw new RangeError('bernoulli: keep probability is NaN');
  return Math.min(TWO_POW_24, Math.max(0, Math.ceil(p * TWO_POW_24)));
}

function checkRange(op: string, offset: number, n: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0 || n > MAX_OFFSET - offset) {
    throw new RangeError(`${op}: offset ${offset} with ${n} elements leaves [0, 2^53)`);
  }
}

// One scratch block for all the element functions: JavaScript is single-threaded and none of
// them re-enter, so sharing it is safe and saves an allocation per element.
const scratch = new Uint32Array(4);

function blockAt(key: PhiloxKey, counter: number): Uint32Array {
  philoxInto(counter >>> 0, Math.floor(counter / TWO_POW_32), 0, 0, key[0], key[1], scratch);
  return scratch;
}

/** Element i of a uniform op with base `offset`: (w0 >>> 8) * 2^-24 in [0, 1), exact in f32. */
export function uniformAt(key: PhiloxKey, offset: number, i: number): number {
  return (blockAt(key, offset + i)[0]! >>> 8) * TWO_POW_MINUS_24;
}

/** Element i of a standard normal op, in f64; the caller rounds to its dtype. */
export function normalAt(key: PhiloxKey, offset: number, i: number): number {
  const w = blockAt(key, offset + i);
  const u1 = ((w[0]! >>> 8) + 1) * TWO_POW_MINUS_24;
  const u2 = (w[1]! >>> 8) * TWO_POW_MINUS_24;
  return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
}

/** Fill `out` with uniforms for elements 0..out.length-1 of a stream at `offset`. */
export function fillUniform(out: Float32Array | Float64Array, key: PhiloxKey, offset: number): void {
  checkRange('fillUniform', offset, out.length);
  for (let i = 0; i < out.length; i++) out[i] = uniformAt(key, offset, i);
}

/** Fill `out` with standard normals; a Float32Array rounds each f64 value once. */
export function fillNormal(out: Float32Array | Float64Array, key: PhiloxKey, offset: number): void {
  checkRange('fillNormal', offset, out.length);
  for (let i = 0; i < out.length; i++) out[i] = normalAt(key, offset, i);
}

/** Word 2 of a dropout block's counter: the dropout domain, apart from every other op's blocks (word 2 = 0). */
export const DROPOUT_DOMAIN = 1;

/** The dropout uniform at stream position c: lane c mod 4 of block floor(c / 4) in the dropout domain. */
export function dropoutUniformAt(key: PhiloxKey, c: number): number {
  checkRange('dropoutUniformAt', c, 1);
  const b = Math.floor(c / 4);
  philoxInto(b >>> 0, Math.floor(b / TWO_POW_32), DROPOUT_DOMAIN, 0, key[0], key[1], scratch);
  return (scratch[c % 4]! >>> 8) * TWO_POW_MINUS_24;
}

/**
 * Fill `out` with the dropout uniforms of positions offset .. offset + out.length - 1, each block
 * computed once for the (up to) four positions it holds; a partial first or last block writes only
 * its positions inside the range.
 */
export function fillDropoutUniform(out: Float32Array | Float64Array, key: PhiloxKey, offset: number): void {
  checkRange('fillDropoutUniform', offset, out.length);
  const end = offset + out.length;
  for (let b = Math.floor(offset / 4); b * 4 < end; b++) {
    philoxInto(b >>> 0, Math.floor(b / TWO_POW_32), DROPOUT_DOMAIN, 0, key[0], key[1], scratch);
    const first = Math.max(offset, b * 4);
    const last = Math.min(end, b * 4 + 4);
    for (let c = first; c < last; c++) out[c - offset] = (scratch[c - b * 4]! >>> 8) * TWO_POW_MINUS_24;
  }
}

/** Fill `out` with a keep mask: 1 where uniform(i) < p, else 0 (the word-0 stream of uniform, not dropout's). */
export function bernoulliMask(
  out: Float32Array | Float64Array | Uint8Array | Uint32Array,
  p: number,
  key: PhiloxKey,
  offset: number,
): void {
  checkRange('bernoulliMask', offset, out.length);
  const threshold = bernoulliThreshold(p);
  for (let i = 0; i < out.length; i++) {
    out[i] = blockAt(key, offset + i)[0]! >>> 8 < threshold ? 1 : 0;
  }
}

/**
 * One category per row of a row-major [rows, cols] table of non-negative weights (they need not
 * sum to 1). Row r draws u = uniform(r) and picks the first index whose running sum exceeds
 * u * total. When rounding leaves u * total at or past the last running sum, it picks the last
 * index with nonzero weight, so a zero-weight category is never chosen. CPU only: a GPU version
 * would sum in a different order and could differ at bucket edges.
 */
export function multinomial(
  probs: Float32Array | Float64Array,
  rows: number,
  cols: number,
  key: PhiloxKey,
  offset: number,
): Int32Array {
  if (!Number.isInteger(rows) || !Number.isInteger(cols) || rows < 0 || cols < 1 || probs.length !== rows * cols) {
    throw new RangeError(`multinomial: probs of length ${probs.length} is not [rows=${rows}, cols=${cols}]`);
  }
  checkRange('multinomial', offset, rows);
  const out = new Int32Array(rows);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    let total = 0;
    let lastNonzero = -1;
    for (let c = 0; c < cols; c++) {
      const p = probs[base + c]!;
      if (!(p >= 0) || p === Infinity) {
        throw new RangeError(`multinomial: row ${r} col ${c} has weight ${p}; weights must be finite and >= 0`);
      }
      total += p;
      if (p > 0) lastNonzero = c;
    }
    if (lastNonzero < 0) throw new RangeError(`multinomial: row ${r} has all-zero weights`);
    const target = uniformAt(key, offset, r) * total;
    let pick = lastNonzero;
    let running = 0;
    for (let c = 0; c < lastNonzero; c++) {
      running += probs[base + c]!;
      if (running > target && probs[base + c]! > 0) {
        pick = c;
        break;
      }
    }
    out[r] = pick;
  }
  return out;
}

/** Serializable generator state: the seed as a decimal string (it may exceed 2^53). */
export interface GeneratorState {
  seed: string;
  offset: number;
}

/**
 * A seeded stream position. Each random op calls `next(n)` to reserve n counters and generates
 * from the returned base offset, so the numbers an op sees depend only on the seed and the order
 * of ops, never on the backend; saving `state()` in a checkpoint lets a resumed run continue exactly.
 */
export class Generator {
  readonly key: PhiloxKey;
  private readonly seed: bigint;
  private position: number;

  constructor(seed: number | bigint, offset = 0) {
    this.seed = seedToBigInt(seed);
    this.key = seedToKey(this.seed);
    checkRange('Generator', offset, 0);
    this.position = offset;
  }

  /** The next unreserved counter. */
  get offset(): number {
    return this.position;
  }

  /** Reserve n counters; returns the base offset of the reservation. */
  next(n: number): number {
    if (!Number.isSafeInteger(n) || n < 0) {
      throw new RangeError(`Generator.next: count must be a non-negative integer, got ${n}`);
    }
    checkRange('Generator.next', this.position, n);
    const base = this.position;
    this.position += n;
    return base;
  }

  /** Moves to a stream position (a resumed run continues from its saved offset). */
  seek(offset: number): void {
    checkRange('Generator.seek', offset, 0);
    this.position = offset;
  }

  state(): GeneratorState {
    return { seed: this.seed.toString(), offset: this.position };
  }

  static fromState(s: GeneratorState): Generator {
    if (!/^\d+$/.test(s.seed)) throw new RangeError(`Generator.fromState: bad seed string ${JSON.stringify(s.seed)}`);
    return new Generator(BigInt(s.seed), s.offset);
  }
}
