#!/usr/bin/env bash
# The GPU checks of issue #11 in one run (under 8 minutes on one H100 or H200), printing every
# figure that docs/PERFORMANCE.md ("Probe overhead on a GPU") records:
#
#   1. tests that need CUDA: the Triton kernels compiled against the float64 reference
#      (tests/probe/test_cuda_kernel.py), and zero host syncs under
#      torch.cuda.set_sync_debug_mode("error"): statistics with gradients, the attention lens,
#      the routing lens, log_metrics, and the overhead governor (event pairs, decisions);
#   2. bench/bench_kernel_cuda.py: GPU time of one site (8 x 1024 x 2048 bf16 and others)
#      against x.sum() of the same tensor (aim <= 2x, <= 40 us);
#   3. bench/bench_probe_overhead_cuda.py, 0.94B model, activations then --grads: step ratio of
#      every-step (aim <= 1.01 / <= 1.02) and of the default budget (aim <= 1.005);
#   4. bench/bench_demo_overhead.py --device cuda --preset 1b --batch 4: plain, all (default
#      budget), every (no budget).
#
# Run from the repository root on the GPU machine, with python3 holding torch and triton:
#     bash bench/gpu_check.sh
# The machine has no network. What the image lacks (cffi, mcap, zstandard, lz4) travels as
# wheels in .whl/, and the native extensions as built here (abi3, x86-64). Prepare once on the
# development machine (also x86-64), from the repository root:
#     bash bench/gpu_check.sh --prepare
# then run it there with carry [".whl", "native/synapse_native/_native.abi3.so",
# "native/synapse_native/_stats.abi3.so"]. Without the .so files it builds them (needs cffi
# and a C compiler there).
set -u -o pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
WHEELS=(cffi pycparser mcap zstandard lz4)

if [ "${1:-}" = "--prepare" ]; then
    mkdir -p .git/info && grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo /.whl/ >>.git/info/exclude
    for name in "${WHEELS[@]}"; do
        python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
            --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
            --platform manylinux2014_x86_64 --platform any -d .whl "$name" || exit 1
    done
    ls -l .whl native/synapse_native/*.so
    exit 0
fi

start=$(date +%s)
section() { echo; echo "=== $1 ($(($(date +%s) - start)) s) ==="; }

if ls .whl/*.whl >/dev/null 2>&1; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD/native:$PWD/probe:$PWD/bench${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
for ext in _native _stats; do
    if ! ls native/synapse_native/$ext.*so >/dev/null 2>&1; then
        script=native/_cffi_build.py
        [ $ext = _stats ] && script=native/_cffi_stats_build.py
        $PY $script || echo "could not build $ext"
    fi
done

section "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
$PY -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"

section "1. CUDA tests: kernels against float64, no host sync anywhere"
$PY -m pytest -q -p no:cacheprovider -o addopts="" --timeout 300 \
    tests/probe/test_cuda_kernel.py \
    tests/probe/test_training.py::test_no_host_sync_on_cuda \
    tests/probe/test_attention_lens.py::test_no_host_sync_with_the_attention_lens_on_cuda \
    tests/probe/test_routing_lens.py::test_cuda_routing_leaves_the_device_without_a_sync \
    tests/probe/test_metrics.py::test_cuda_values_leave_the_device_without_a_sync \
    tests/probe/test_probe_budget.py::test_the_governor_never_syncs_and_counts_gpu_time_on_cuda \
    2>&1 | tail -25

section "2. one site: fused kernel vs x.sum() (bench/bench_kernel_cuda.py)"
timeout 120 $PY bench/bench_kernel_cuda.py

section "3a. 0.94B model, activations (bench/bench_probe_overhead_cuda.py --seconds 45)"
timeout 150 $PY bench/bench_probe_overhead_cuda.py --seconds 45

section "3b. 0.94B model, grads=True"
timeout 150 $PY bench/bench_probe_overhead_cuda.py --grads --seconds 45

section "4. demo model, preset 1b (bench/bench_demo_overhead.py)"
timeout 150 $PY bench/bench_demo_overhead.py --device cuda --preset 1b --batch 4 \
    --variants plain,all,every --seconds 45

section "done"
