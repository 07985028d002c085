// Element types: f32 for compute, i32 for indices, f64 (CPU backend only) for gradient checks.

export type DType = 'f32' | 'f64' | 'i32';
export type TypedArray = Float32Array | Float64Array | Int32Array;

export function arrayFor(dtype: DType, n: number): TypedArray {
  switch (dtype) {
    case 'f32':
      return new Float32Array(n);
    case 'f64':
      return new Float64Array(n);
    case 'i32':
      return new Int32Array(n);
  }
}

export function bytesPerElement(dtype: DType): number {
  return dtype === 'f64' ? 8 : 4;
}

export function isFloat(dtype: DType): boolean {
  return dtype !== 'i32';
}
