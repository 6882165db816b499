#!/usr/bin/env bash
# The prepared device check: one command on a GPU machine (planned for one H200, under 8 minutes), printing
# tables to paste into the readme's "On a GPU" section. Each step has its own time limit, so one that hangs
# cannot eat the others' time; each step's output is also kept in $OUT (or ./device_check_out).
#
#   bash bench/device_check.sh                 # on the GPU machine
#   DEVICE=cpu QUICK=1 bash bench/device_check.sh   # the same steps on the CPU, tiny (what tests/test_bench.py runs)
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
device=${DEVICE:-cuda}
out=${OUT:-device_check_out}
mkdir -p "$out"
failed=0

step() {  # step NAME SECONDS COMMAND...: run it under a time limit, tee its output, remember a failure
    local name=$1 limit=$2
    shift 2
    echo
    echo "## $name (limit ${limit} s): $*"
    timeout "$limit" "$@" 2>&1 | tee "$out/$name.txt"
    local code=${PIPESTATUS[0]}
    [ "$code" -eq 0 ] || { echo "($name exited $code)"; failed=1; }
}

python -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available() and torch.cuda.get_device_name(0))"
if [ -n "${QUICK:-}" ]; then
    step startup 120 python bench/startup.py --device "$device" --repeat 1 --tools rvm
    step steady 300 python bench/steady_state.py --device "$device" --size 48 64 --cameras 2 --frames 4 --unique 2 \
        --model_frames 2 --tools rvm
    step graphs_100 300 python bench/steady_state.py --device "$device" --size 48 64 --cameras 1 --frames 6 \
        --unique 2 --commands_only --eager_command --tools rvm
    step shards 300 python bench/shard_equality.py --device "$device" --size 48 64 --cameras 2 --frames 2 --tools rvm
    step tunings 300 python bench/graph_tunings.py --device "$device" --size 48 64 --frames 2 --passes 1 --tools rvm
    exit $failed
fi
step startup 40 python bench/startup.py --device "$device" --repeat 3                  # time to the first mask
step steady_1080p 140 python bench/steady_state.py --device "$device"                  # 8 cameras x 400 frames
step steady_4k 45 python bench/steady_state.py --device "$device" --size 2160 3840 --cameras 4 --frames 24 \
    --unique 24 --model_frames 8 --tools rvm bgmv2
step graphs_100 50 python bench/steady_state.py --device "$device" --cameras 1 --frames 100 --commands_only \
    --eager_command                                                                     # do CUDA graphs pay?
step tunings 45 python bench/graph_tunings.py --device "$device"   # graphs, channels-last, TF32, fp16, bf16
step shards 40 python bench/shard_equality.py --device "$device"                       # same bytes, one run vs shards
step cuda_check 90 python bench/cuda_check.py --device "$device" --sizes 1080p --frames 6  # vs the CPU, back-off
step mask_check 30 python bench/check.py --frames 24 --no-rvm                           # the check on CPU and CUDA
echo
[ $failed -eq 0 ] && echo "device check: every step passed" || echo "device check: a step FAILED (see above)"
exit $failed
