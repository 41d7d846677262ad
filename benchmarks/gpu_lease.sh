#!/usr/bin/env bash
# Everything archgen checks and measures on a lent GPU, as one command that fits a short lease (3-5 min on an
# H200): the kernel and fused-model tests compiled for the GPU; the host's time per launch and ResNet-50
# passes with and without RepeatedLaunch (launch_overhead.py); ResNet-50 end to end (e2e_bench.py runs 1 and
# 2); a latency model on CUDA (calibrated here, or LATENCY_MODEL=FILE to reuse one) read back by profile and
# by a search whose front is measured (--verify); and triton.autotune's choices for the bf16 stage ends the
# heuristic serves worst (kernel_bench.py --tune). Each step has its own time limit, so a slow or failing
# step costs only itself; results are packed into $OUT/results.tar.gz after every step.
#
#   bash ../shared/tools/device-wheels.sh lightgbm==4.7.0     # here: the wheels the GPU image lacks
#   (device tool) run  command: bash benchmarks/gpu_lease.sh  carry: [".whl"]  timeout_s: 450
#
# Commit what comes back under benchmarks/results/ (each JSON names the device, driver and versions).
set -u
OUT=${OUT:-/tmp/gpu-lease-out}
RES=/tmp/gpu-lease-results
mkdir -p "$OUT" "$RES"
export PYTHONUNBUFFERED=1 CI=true
step() { echo; echo "== $(date -u +%H:%M:%S) $*"; }
pack() { tar czf "$OUT/results.tar.gz" -C "$RES" . 2>/dev/null; }

step environment
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv
python3 -c "import torch, triton; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'triton',
triton.__version__, torch.cuda.get_device_name(0))"

step install
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  && export PYTHONPATH=/tmp/site || exit 3
python3 -m pip install -q --no-deps --no-build-isolation -e . || export PYTHONPATH=$PYTHONPATH:$PWD
if ! command -v archgen >/dev/null; then  # the venv's bin/ is not on PATH: the same entry point by hand
  mkdir -p /tmp/bin && printf '#!/bin/sh\nexec python3 -c "from archgen.cli.app import main; main()" "$@"\n' \
    > /tmp/bin/archgen && chmod +x /tmp/bin/archgen && export PATH=/tmp/bin:$PATH
fi
archgen --help >/dev/null && echo "archgen: $(command -v archgen)"

step "tests on the GPU (kernels, fused models, bench)"
timeout 120 python3 -m pytest -q -n 8 -p no:cacheprovider --timeout 110 -rfEs \
  tests/test_kernels.py tests/test_fuse.py tests/test_bench.py 2>&1 | tee "$RES/pytest-gpu.log" | tail -15
pack

step "launch_overhead: host time per launch, ResNet-50 passes with and without RepeatedLaunch"
timeout 50 python3 benchmarks/launch_overhead.py --output "$RES/launch-overhead.json" 2>&1 | tee "$RES/launch.txt"
pack

step "e2e_bench: ResNet-50 bf16 channels_last, b64 and b1 with CUDA graphs"
timeout 100 python3 benchmarks/e2e_bench.py --only 1,2 --results-dir "$RES" 2>&1 | tee "$RES/e2e.txt" | tail -24
pack

step "latency model on CUDA: profile, and a search whose front is measured"
MODEL=${LATENCY_MODEL:-$RES/cuda-eager.device.json}
if [ -z "${LATENCY_MODEL:-}" ]; then
  timeout 60 archgen calibrate --backend eager --device cuda --minutes 0.75 --space regnetx_400mf -o "$MODEL" \
    > "$RES/calibrate.txt" 2>&1; echo "calibrate rc $?"; tail -4 "$RES/calibrate.txt"
fi
timeout 15 archgen profile resnet50 --latency "$MODEL" --format json > "$RES/profile.json" 2> "$RES/profile.err"
echo "profile rc $?"; grep -o '"predicted_ms": [0-9.]*' "$RES/profile.json" | tail -1
timeout 20 archgen bench resnet50 --gpu --batch-sizes 1 --backends eager --dtype float32 \
  --output "$RES/bench-resnet50-fp32-b1.json" > "$RES/bench.txt" 2>&1; echo "bench rc $?"; tail -6 "$RES/bench.txt"
timeout 50 archgen search regnetx_400mf --latency "$MODEL" --minimize latency --minimize params --budget 1000 \
  --verify 8 > "$RES/verify.txt" 2>&1; echo "search --verify rc $?"; tail -4 "$RES/verify.txt"
pack

step "kernel_bench --tune: bf16 channels_last stage ends, heuristic against autotune"
timeout 60 python3 benchmarks/kernel_bench.py --tune --batches 256 --dtypes bfloat16 --layouts channels_last \
  --stages layer3,layer4 --output "$RES/kernel-bench-tune.json" > "$RES/kernel-bench-tune.txt" 2>&1
echo "rc $?"; tail -4 "$RES/kernel-bench-tune.txt"
pack
step done
ls -la "$RES"
