#!/usr/bin/env bash
# The benchmark run on a lent NVIDIA machine (see bench/README.md, "On a real GPU"): unpacks the
# carried Node.js, node_modules and Vulkan loader (.devcarry, made by the shared prepare-carry
# script), prints the adapter, then times the matmul variants, the ceilings and the full bench.
# Writes everything under $OUT. Usage there: bash bench/device/gpu-run.sh [quick]
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
for f in .devcarry/*.deb; do dpkg -x "$f" /; done; ldconfig
xz -dc .devcarry/node.xz > /usr/local/bin/node; chmod +x /usr/local/bin/node
tar -xJf .devcarry/modules.tar.xz
export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,memory.total --format=csv 2>&1 | tee "$OUT/nvidia-smi.txt"
# The practical FP32 and copy ceilings through PyTorch (cuBLAS SGEMM with TF32 off), for reference.
timeout 120 python3 - <<'PY' 2>&1 | tee "$OUT/torch.txt"
import torch, time
torch.backends.cuda.matmul.allow_tf32 = False
for n in (4096, 8192):
    a = torch.randn(n, n, device='cuda'); b = torch.randn(n, n, device='cuda')
    for _ in range(3): a @ b
    torch.cuda.synchronize(); s = torch.cuda.Event(enable_timing=True); e = torch.cuda.Event(enable_timing=True)
    s.record(); [a @ b for _ in range(10)]; e.record(); torch.cuda.synchronize()
    ms = s.elapsed_time(e) / 10; print(f'torch_sgemm n={n} {ms:.3f} ms {2*n**3/ms/1e9:.1f} TFLOP/s')
x = torch.empty(2**26, device='cuda'); y = torch.empty_like(x)
for _ in range(3): y.copy_(x)
torch.cuda.synchronize(); s = torch.cuda.Event(enable_timing=True); e = torch.cuda.Event(enable_timing=True)
s.record(); [y.copy_(x) for _ in range(20)]; e.record(); torch.cuda.synchronize()
ms = s.elapsed_time(e) / 20; print(f'torch_copy 256MiB {ms:.3f} ms {2*x.numel()*4/ms/1e6:.0f} GB/s')
PY
cd "$(dirname "$0")/../.." || exit 1
node dist/bench/gpuCeilings.js --json "$OUT/ceilings.json" --peak-tflops 67 --peak-gbps 3350 2>&1 | grep -v artificially | tee "$OUT/ceilings.log"
ROUNDS=5 timeout 240 node dist/bench/abMatmul.js 4096x4096x4096 2048x2048x2048 1024x1024x1024 512x512x512 1024x4096x128tB 128x4096x1024tA 1024x128x512 2>&1 | grep -v artificially | tee "$OUT/ab.log"
GANPO_DAWN_FLAGS='enable-dawn-features=allow_unsafe_apis,disable_robustness' ROUNDS=5 VARIANTS=tiled64,tile64x64,tile128x64,tile128x128,tile128x128k16 \
  timeout 120 node dist/bench/abMatmul.js 4096x4096x4096 2>&1 | grep -v artificially | sed 's/^/[no robustness] /' | tee "$OUT/ab-norobust.log"
[ "${1:-}" = quick ] && exit 0
timeout 420 node dist/bench/run.js --json "$OUT/results.json" 2>&1 | grep -v artificially | tee "$OUT/bench.log"
