// The shape of a WGSL kernel as the WebGPU backend runs it: the source, its storage bindings, and
// per-launch uniforms and workgroup counts. Every kernel builder in src/shaders returns these.
//
// Binding convention (group 0): binding 0 is a uniform buffer `u` (a struct of 4-byte scalars
// only: u32, i32, f32, in the order packUniforms receives them); bindings 1.. are the storage
// buffers in the order of `Kernel.storage`. Entry point: `main`.

export type StorageAccess = 'read' | 'read_write';

export interface Kernel {
  /** Name used in error messages and statistics, e.g. 'matmul[transB]'. */
  readonly name: string;
  /** WGSL source; the pipeline cache is keyed by it. */
  readonly code: string;
  /** Access mode of storage bindings 1, 2, ... */
  readonly storage: readonly StorageAccess[];
}

export interface Launch {
  readonly kernel: Kernel;
  /** Raw 32-bit words of the uniform struct (see packUniforms). */
  readonly uniforms: Uint32Array;
  readonly workgroups: readonly [number, number, number];
}

const built = new Map<string, Kernel>();

/**
 * The kernel of `key`, built on first use: builders are pure functions of their arguments, and
 * rebuilding a source of a few kilobytes per dispatch (then hashing it for the pipeline cache)
 * cost more host time than the dispatch itself. Callers must not mutate the result.
 */
export function cachedKernel(key: string, build: () => Kernel): Kernel {
  let k = built.get(key);
  if (k === undefined) built.set(key, (k = build()));
  return k;
}

export type UniformField = readonly ['u32' | 'i32' | 'f32', number];

/** Packs scalar uniform fields into 32-bit words (padded to 16 bytes, as uniform buffers need). */
export function packUniforms(fields: readonly UniformField[]): Uint32Array {
  const words = new Uint32Array(Math.max(4, Math.ceil(fields.length / 4) * 4));
  const view = new DataView(words.buffer);
  fields.forEach(([type, v], i) => {
    if (type === 'f32') view.setFloat32(i * 4, v, true);
    else if (type === 'i32') view.setInt32(i * 4, v, true);
    else view.setUint32(i * 4, v >>> 0, true);
  });
  return words;
}

/** Largest workgroup count per dimension guaranteed by WebGPU. */
export const MAX_WORKGROUPS_PER_DIM = 65535;

/**
 * Workgroup counts for n flat work items of wgSize each, spread over x and y when x alone would
 * exceed the per-dimension limit. Kernels recover the flat index with `flatIndexWGSL`.
 */
export function grid1d(n: number, wgSize: number): [number, number, number] {
  const groups = Math.max(1, Math.ceil(n / wgSize));
  if (groups <= MAX_WORKGROUPS_PER_DIM) return [groups, 1, 1];
  const y = Math.ceil(groups / MAX_WORKGROUPS_PER_DIM);
  return [Math.ceil(groups / y), y, 1];
}

/**
 * WGSL helper: the flat invocation index for a grid1d dispatch. Use with
 * `@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
 *  @builtin(local_invocation_index) lid: u32`.
 */
export function flatIndexWGSL(wgSize: number): string {
  return `fn flatIndex(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 { return (wid.y * nwg.x + wid.x) * ${wgSize}u + lid; }`;
}

/**
 * Workgroups for a grid-stride kernel over n items: at most maxGroups, each invocation looping
 * (see gridStrideLoopWGSL). On lavapipe every workgroup costs a few microseconds of scheduling, so
 * a few fat workgroups per core copy 393k floats about 6x faster than one invocation per element;
 * on hardware a large cap keeps the GPU full.
 */
export function gridStride(n: number, wgSize: number, maxGroups: number): [number, number, number] {
  return [Math.max(1, Math.min(Math.ceil(n / wgSize), maxGroups, MAX_WORKGROUPS_PER_DIM)), 1, 1];
}

/** Grid-stride cap for hardware adapters (software ones use a few per CPU core, chosen by the backend). */
export const HARDWARE_MAX_GROUPS = 4096;

/** WGSL loop header for a gridStride dispatch: `i` visits every index < n owned by this invocation. */
export function gridStrideLoopWGSL(wgSize: number, n = 'u.n'): string {
  return `for (var i = wid.x * ${wgSize}u + lid; i < ${n}; i = i + nwg.x * ${wgSize}u)`;
}
