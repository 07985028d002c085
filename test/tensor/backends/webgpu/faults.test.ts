// Device faults become clear exceptions: a tensor larger than the device's largest buffer is
// refused by name with advice, and the backend keeps working afterwards.
import { expect, test } from 'vitest';
import { describeGpu, gpu } from '../../../helpers/webgpu.js';
import { zeros, tensor } from '../../../../src/index.js';

describeGpu('WebGPU allocation faults', () => {
  test('an allocation beyond the largest buffer fails with a message suggesting a smaller batch', async () => {
    const max = Math.min(gpu.device.limits.maxBufferSize, gpu.device.limits.maxStorageBufferBindingSize);
    const n = Math.ceil(max / 4) + 1024;
    expect(() => zeros([n], { backend: gpu })).toThrow(/exceeds the device's largest buffer.*smaller batch/);
    const t = tensor([1, 2, 3], [3], { backend: gpu }).mul(2);
    expect([...(await t.data())]).toEqual([2, 4, 6]);
  });
});
