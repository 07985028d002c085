#!/usr/bin/env bash
# The benchmark run on a lent NVIDIA machine (see bench/README.md, "On a real GPU"): after
# setup.sh, times the matmul variants, the ceilings (gpuCeilings.ts; with `torch`, PyTorch's too)
# and the full bench. Writes everything under $OUT (at most 8 files come back: machine.txt, torch.txt,
# ab.log, ceilings.json, bench.log, results.json, ab-norobust.log). Usage there: bash bench/device/gpu-run.sh [torch]
source "$(dirname "$0")/setup.sh"
if [ "${1:-}" = torch ]; then
  # The practical FP32 and copy ceilings through PyTorch (cuBLAS SGEMM with TF32 off).
  timeout 120 python3 bench/device/torchCeilings.py 2>&1 | tee "$OUT/torch.txt"
fi
ROUNDS=5 timeout 150 node dist/bench/abMatmul.js 4096x4096x4096 2048x2048x2048 1024x1024x1024 512x512x512 1024x4096x128tB 128x4096x1024tA 1024x128x512 2>&1 | quiet | tee "$OUT/ab.log"
timeout 90 node dist/bench/gpuCeilings.js --json "$OUT/ceilings.json" --peak-tflops 67 --peak-gbps 3350 2>&1 | quiet
timeout 240 node dist/bench/run.js --json "$OUT/results.json" 2>&1 | quiet | tee "$OUT/bench.log"
GANPO_DAWN_FLAGS='enable-dawn-features=allow_unsafe_apis,disable_robustness' ROUNDS=5 VARIANTS=tiled64,tile64x64,tile128x64,tile128x128,tile128x128k16 \
  timeout 60 node dist/bench/abMatmul.js 4096x4096x4096 2>&1 | quiet | sed 's/^/[no robustness] /' | tee "$OUT/ab-norobust.log"
