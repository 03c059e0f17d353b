#!/bin/bash
# Step 2 of RULE.md (test, once per training run): adaptive budgets at the step-1 guidance (24, 32 tokens:
# summary.json; 8 and 16: the fixed budgets' dev choice, 2, RULE.md addendum).
# Two queues side by side, one thread each:  bash benchmarks/dev_adaptive/test.sh A & bash benchmarks/dev_adaptive/test.sh B
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
MODEL=(src/dediffusion/assets/checkpoints/encoder benchmarks/checkpoints/encoder_seed1 benchmarks/checkpoints/encoder_seed2)
guidance() {  # K
  case $1 in
    8|16) echo 2.0 ;;
    *) python3 -c "import json; print(json.load(open('benchmarks/dev_adaptive/summary.json'))['K$1']['adaptive_guidance'])" ;;
  esac
}
one() {  # run K
  local g; g=$(guidance "$2") || exit 1
  [ -f "benchmarks/tokens_test_adaptive/run$1/K$2/report.json" ] && return
  .venv/bin/dediffusion eval --split test --n 500 --steps 25 --guidance "$g" --cfg "$g" --sources dediffusion \
    --features probe --batch-size 100 --pairs '' --tokens "$2" --adaptive-length --model "${MODEL[$1]}" \
    --report "benchmarks/tokens_test_adaptive/run$1/K$2"
}
if [ "$1" = A ]; then
  one 0 32; one 0 24; one 1 32; one 0 16; one 0 8
else
  one 2 16; one 1 16; one 2 32; one 2 24; one 1 24; one 1 8; one 2 8
fi
