#!/usr/bin/env bash
# The GPU check: run on a machine with a CUDA GPU (about 10 minutes), after the README's
# test install plus `pip install "agentgym[vllm]"`. CI never runs it.
#
#   bash bench/gpu_check.sh            # writes bench/results/gpu_check/*.log and prints a summary
#
# 1. the vLLM tests that skip on CPUs (real engine: generation, log-probs, weight sync, sleep;
#    the weight sync goes through collective_rpc into vLLM's worker processes, as found on
#    vLLM's CPU build: bench/vllm_cpu_setup.sh and tests/test_vllm_cpu.py, its CPU stage);
# 2. one bf16-mixed GRPO step of the default model with transformers generation, with
#    vLLM generation, and through a vLLM generation server (time split: generate / train,
#    from the run's metrics.jsonl);
# 3. the 2-process distributed tests on NCCL (needs 2 GPUs: NCCL refuses two ranks on one),
#    then 2 ranks with one vLLM engine each (vLLM's torchrun mode).
set -u
cd "$(dirname "$0")/.."
OUT=bench/results/gpu_check
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
NGPU=$(nvidia-smi -L | wc -l)
status=0

echo "== 1. vLLM tests"
timeout 240 python -m pytest -q -rs tests/test_vllm_policy.py 2>&1 | tee "$OUT/vllm_tests.log" | tail -5 || status=1

step() {  # $1: name, rest: overrides
  local name=$1; shift
  rm -rf "runs/gpu-check-$name"
  timeout 240 agentgym train configs/quickstart.yaml run_dir="runs/gpu-check-$name" train.steps=2 \
    train.eval_tasks=8 train.device=cuda train.precision=bf16-mixed "$@" > "$OUT/step_$name.log" 2>&1 || status=1
  python - "$name" <<'PY'
import json, sys
name = sys.argv[1]
rows = [json.loads(x) for x in open(f"runs/gpu-check-{name}/metrics.jsonl") if '"kind": "train"' in x]
for r in rows:
    print(f"{name:<13} step {r['step']}: {r['time/step_s']:.2f} s (generate {r['time/generate_s']:.2f}, "
          f"train {r['time/train_s']:.2f}), reward {r['reward/mean']:.2f}, grad_norm {r.get('grad_norm', 0):.3f}")
PY
}
echo "== 2. bf16 GRPO steps of the default model"
step transformers model.backend=transformers
step vllm model.backend=vllm

echo "== 2b. the same step through a vLLM generation server (model.backend=remote)"
export AGENTGYM_SERVER_TOKEN="gpu-check-$RANDOM$RANDOM$RANDOM"  # the server and the trainer share it
agentgym generate-server smollm2-135m --backend vllm --port 8011 --gpu-memory-utilization 0.3 \
  > "$OUT/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 120); do curl -sf -H "Authorization: Bearer $AGENTGYM_SERVER_TOKEN" http://127.0.0.1:8011/health > /dev/null && break; sleep 1; done
step remote model.backend=remote model.remote.url=http://127.0.0.1:8011
kill "$SERVER" 2>/dev/null; wait "$SERVER" 2>/dev/null

echo "== 3. distributed test on NCCL"
if [ "$NGPU" -ge 2 ]; then
  AGENTGYM_TEST_DEVICE=cuda timeout 300 python -m pytest -q tests/test_distributed.py 2>&1 | tee "$OUT/dist.log" | tail -3 || status=1
  rm -rf runs/gpu-check-vllm-ranks
  timeout 300 torchrun --standalone --nproc-per-node 2 -m agentgym train configs/quickstart.yaml \
    run_dir=runs/gpu-check-vllm-ranks train.steps=2 train.eval_tasks=8 train.device=cuda \
    model.backend=vllm > "$OUT/vllm_ranks.log" 2>&1 && echo "vllm per rank: ok" || { echo "vllm per rank: FAILED"; status=1; }
else
  echo "one GPU: NCCL needs a GPU per rank, skipped (the gloo version runs in the CPU suite)" | tee "$OUT/dist.log"
fi
exit $status
