#!/usr/bin/env bash
# The benchmark run on a lent NVIDIA machine (see bench/README.md, "On a real GPU"): unpacks the
# carried Node.js, node_modules, Vulkan loader and GL vendor-neutral libraries (.devcarry, made by
# the shared prepare-carry script plus `apt-get download libegl1 libglvnd0 libopengl0 libgl1
# libglx0 libgles2`: NVIDIA's Vulkan driver lives in libGLX_nvidia, which needs them), checks that
# Dawn sees the GPU, then times the matmul variants, the ceilings and the full bench.
# Writes everything under $OUT. Usage there: bash bench/device/gpu-run.sh [torch]
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
for f in .devcarry/*.deb; do dpkg -x "$f" /; done; ldconfig
xz -dc .devcarry/node.xz > /usr/local/bin/node; chmod +x /usr/local/bin/node
tar -xJf .devcarry/modules.tar.xz
export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,memory.total --format=csv 2>&1 | tee "$OUT/nvidia-smi.txt"
quiet() { grep -v artificially; }
# Stop at once (no device time wasted) unless Dawn finds a hardware adapter.
node --input-type=module -e "
import { openDevice } from './dist/src/tensor/backends/webgpu/device.js';
const d = await openDevice(); console.log('adapter:', d.adapterInfo, 'software:', d.isSoftware, 'limits: wg bytes', d.device.limits.maxComputeWorkgroupStorageSize, 'subgroups', d.hasSubgroups, 'f16', d.hasF16);
process.exit(d.isSoftware ? 1 : 0);" 2>&1 | quiet | tee "$OUT/adapter.txt"
[ "${PIPESTATUS[0]}" = 0 ] || { echo 'no hardware adapter: stopping'; exit 1; }
if [ "${1:-}" = torch ]; then
  # The practical FP32 and copy ceilings through PyTorch (cuBLAS SGEMM with TF32 off).
  timeout 120 python3 bench/device/torchCeilings.py 2>&1 | tee "$OUT/torch.txt"
fi
ROUNDS=5 timeout 150 node dist/bench/abMatmul.js 4096x4096x4096 2048x2048x2048 1024x1024x1024 512x512x512 1024x4096x128tB 128x4096x1024tA 1024x128x512 2>&1 | quiet | tee "$OUT/ab.log"
timeout 90 node dist/bench/gpuCeilings.js --json "$OUT/ceilings.json" --peak-tflops 67 --peak-gbps 3350 2>&1 | quiet | tee "$OUT/ceilings.log"
timeout 240 node dist/bench/run.js --json "$OUT/results.json" 2>&1 | quiet | tee "$OUT/bench.log"
GANPO_DAWN_FLAGS='enable-dawn-features=allow_unsafe_apis,disable_robustness' ROUNDS=5 VARIANTS=tiled64,tile64x64,tile128x64,tile128x128,tile128x128k16 \
  timeout 60 node dist/bench/abMatmul.js 4096x4096x4096 2>&1 | quiet | sed 's/^/[no robustness] /' | tee "$OUT/ab-norobust.log"
