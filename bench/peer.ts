// The benchmark peer: TensorFlow.js on the same Dawn adapter (tfjs-backend-webgpu) in this process,
// or, when that backend cannot start in Node, tfjs on the CPU — and the table says which one ran.

import { register } from 'node:module';
import * as tf from '@tensorflow/tfjs-core';

export type PeerName = 'tfjs-webgpu' | 'tfjs-cpu';

export interface Peer {
  name: PeerName;
  tf: typeof tf;
  /** Waits until every op issued so far has run (submits tfjs's pending commands first). */
  sync(): Promise<void>;
  /** Why the WebGPU peer did not start, when it did not. */
  fallbackReason?: string;
}

/** The slice of tfjs-backend-webgpu's backend object that sync() needs. */
interface TfWebGPUBackend {
  device: GPUDevice;
  ensureCommandEncoderReady(): void;
  endComputePassEncoder(): void;
  submitQueue(): void;
}

/**
 * Registers tfjs's gradient functions (tf.grad, tf.variableGrads need them). They live only in
 * tfjs-core's ESM files; its registries are process-global, so the CJS bundle sees them.
 */
async function registerGradients(): Promise<void> {
  if (tf.getGradient('BatchMatMul') !== undefined) return;
  register('./tfjsGradientHook.js', import.meta.url);
  await import('@tensorflow/tfjs-core/dist/register_all_gradients.js' as string);
  if (tf.getGradient('BatchMatMul') === undefined) throw new Error('tfjs gradients did not register');
}

async function openWebGPUPeer(): Promise<Peer> {
  // tfjs-backend-webgpu registers itself at import time only when navigator.gpu exists, so the
  // navigator shim must come first. Its own Dawn instance; ours stays referenced by our backend.
  const { create, globals } = await import('webgpu');
  Object.assign(globalThis, globals);
  Object.defineProperty(globalThis, 'navigator', { value: { gpu: create([]) }, configurable: true, writable: true });
  await import('@tensorflow/tfjs-backend-webgpu');
  if (!(await tf.setBackend('webgpu')) || tf.getBackend() !== 'webgpu') throw new Error(`tf.setBackend('webgpu') did not take (backend is ${tf.getBackend()})`);
  const backend = tf.backend() as unknown as TfWebGPUBackend;
  // A first op proves the device works (setBackend succeeds before any kernel runs).
  const probe = tf.add(tf.scalar(1), tf.scalar(2));
  const value = (await probe.data())[0];
  probe.dispose();
  if (value !== 3) throw new Error(`tfjs webgpu probe computed 1 + 2 = ${value}`);
  return {
    name: 'tfjs-webgpu',
    tf,
    async sync() {
      // What tfjs does before a readback: close the open pass, submit the encoder.
      backend.ensureCommandEncoderReady();
      backend.endComputePassEncoder();
      backend.submitQueue();
      await backend.device.queue.onSubmittedWorkDone();
    },
  };
}

async function openCpuPeer(reason: string): Promise<Peer> {
  // tfjs-core ships no kernels; its CPU backend comes with tfjs-backend-webgpu (a dependency of it).
  await import('@tensorflow/tfjs-backend-cpu');
  if (!(await tf.setBackend('cpu'))) throw new Error('tfjs: neither the webgpu nor the cpu backend could start');
  return { name: 'tfjs-cpu', tf, sync: async () => {}, fallbackReason: reason };
}

/** The tfjs peer, on WebGPU when it starts and answers a probe, else on the CPU (saying why). */
export async function openPeer(): Promise<Peer> {
  tf.env().set('PROD', true); // no per-op NaN checks or debug logging
  await registerGradients();
  try {
    return await openWebGPUPeer();
  } catch (e) {
    const reason = e instanceof Error ? e.message : String(e);
    process.stderr.write(`bench: tfjs-backend-webgpu did not start (${reason}); the peer is tfjs on the CPU\n`);
    return openCpuPeer(reason);
  }
}
