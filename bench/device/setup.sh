#!/usr/bin/env bash
# Sourced by the lent-GPU runs (gpu-run.sh, or a one-off command): unpacks the carried Node.js,
# node_modules, Vulkan loader and GL vendor-neutral libraries (.devcarry: the shared prepare-carry
# script plus `apt-get download libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2`; NVIDIA's
# Vulkan driver lives in libGLX_nvidia, which needs them) and stops unless Dawn sees a hardware
# adapter. Defines quiet() (drops Dawn's two harmless limit warnings).
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
for f in .devcarry/*.deb; do dpkg -x "$f" /; done; ldconfig
xz -dc .devcarry/node.xz > /usr/local/bin/node; chmod +x /usr/local/bin/node
tar -xJf .devcarry/modules.tar.xz
export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,memory.total --format=csv 2>&1 | tee "$OUT/machine.txt"
quiet() { grep -v artificially; }
# Stop at once (no device time wasted) unless Dawn finds a hardware adapter.
node --input-type=module -e "
import { openDevice } from './dist/src/tensor/backends/webgpu/device.js';
const d = await openDevice(); console.log('adapter:', d.adapterInfo, 'software:', d.isSoftware, 'limits: wg bytes', d.device.limits.maxComputeWorkgroupStorageSize, 'subgroups', d.hasSubgroups, 'f16', d.hasF16);
process.exit(d.isSoftware ? 1 : 0);" 2>&1 | quiet | tee -a "$OUT/machine.txt"
[ "${PIPESTATUS[0]}" = 0 ] || { echo 'no hardware adapter: stopping'; exit 1; }
