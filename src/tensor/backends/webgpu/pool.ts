/// <reference types="@webgpu/types" preserve="true" />
// Size-bucketed reuse of GPU storage buffers. Creating a buffer per op costs more than the op on
// small tensors, and a training step frees and reallocates the same sizes every step.
//
// Buffers freed while the pending (unsubmitted) command encoder may still use them wait in a
// 'pending free' list until that work is submitted: handing them out earlier would let a
// queue.writeBuffer (an upload), which runs before the pending commands, overwrite data they read.

import type { MemoryStats } from '../../backend.js';

const MIN_BYTES = 16;

/** Bucket size: powers of two up to 1 MiB, then multiples of 1/8 of the power of two below (≤12.5% waste). */
export function bucketBytes(bytes: number): number {
  const b = Math.max(MIN_BYTES, bytes);
  const pow = 2 ** Math.ceil(Math.log2(b));
  if (pow <= 1 << 20) return pow;
  const step = pow / 16;
  return Math.ceil(b / step) * step;
}

export class BufferPool {
  private free = new Map<number, GPUBuffer[]>();
  private pendingFree: GPUBuffer[] = [];
  private live = 0;
  private liveBytes = 0;
  private pooledBytes = 0;
  private peak = 0;
  private readonly ids = new WeakMap<GPUBuffer, number>();
  private nextId = 0;

  constructor(private readonly device: GPUDevice, private readonly usage: GPUBufferUsageFlags) {}

  acquire(bytes: number): GPUBuffer {
    const size = bucketBytes(bytes);
    const list = this.free.get(size);
    // Lowest id first (lists are kept sorted, highest id first): which buffer a request gets then
    // depends only on which buffers are free, not on the order they were freed in, so a training
    // step that repeats its allocations gets the same buffers every step and the runtime's cached
    // bind groups hit (a LIFO stack permutes its buffers from step to step).
    let buf = list?.pop();
    if (buf) this.pooledBytes -= size;
    else {
      // Fail here, by name, rather than later with a validation error from an invalid buffer.
      const max = Math.min(this.device.limits.maxBufferSize, this.device.limits.maxStorageBufferBindingSize);
      if (size > max) {
        throw new RangeError(`WebGPU: a tensor of ${(bytes / 2 ** 20).toFixed(1)} MiB exceeds the device's largest buffer (${(max / 2 ** 20).toFixed(0)} MiB). Try a smaller batch (--batch), shorter sequences or a smaller model.`);
      }
      buf = this.device.createBuffer({ size, usage: this.usage });
      this.ids.set(buf, this.nextId++);
    }
    this.live++;
    this.liveBytes += size;
    this.peak = Math.max(this.peak, this.liveBytes + this.pooledBytes);
    return buf;
  }

  /** Returns a buffer; it becomes reusable after the next submit (see afterSubmit). */
  release(buf: GPUBuffer): void {
    this.live--;
    this.liveBytes -= buf.size;
    this.pooledBytes += buf.size;
    this.pendingFree.push(buf);
  }

  /** Called once the pending encoder was submitted: later queue writes are ordered after its work. */
  afterSubmit(): void {
    for (const buf of this.pendingFree) {
      let list = this.free.get(buf.size);
      if (!list) this.free.set(buf.size, (list = []));
      // Insert keeping the list sorted by id, highest first: binary search for the first entry
      // whose id is below this one (a training step frees hundreds of buffers per submit, many of
      // one size, so a linear scan per insert was a visible share of the host's time).
      const id = this.ids.get(buf)!;
      let lo = 0;
      let hi = list.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (this.ids.get(list[mid]!)! > id) lo = mid + 1;
        else hi = mid;
      }
      list.splice(lo, 0, buf);
    }
    this.pendingFree = [];
  }

  /** Destroys every pooled buffer (not the live ones, nor those still pending). */
  releasePool(): void {
    for (const list of this.free.values()) {
      for (const buf of list) {
        this.pooledBytes -= buf.size;
        buf.destroy();
      }
    }
    this.free.clear();
  }

  stats(): MemoryStats {
    return { liveBuffers: this.live, liveBytes: this.liveBytes, pooledBytes: this.pooledBytes, peakBytes: this.peak };
  }
}
