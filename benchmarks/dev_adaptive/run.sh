#!/bin/bash
# Step 1 of RULE.md: dev reports, adaptive (three runs) and fixed (runs 1 and 2; run 0's: dev_tokens/), 24 and
# 32 tokens (the adaptive 16-token dev runs were dropped for time before any was run: RULE.md, addendum).
# Two queues side by side, one thread each:  bash benchmarks/dev_adaptive/run.sh A & bash benchmarks/dev_adaptive/run.sh B
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
MODEL=(src/dediffusion/assets/checkpoints/encoder benchmarks/checkpoints/encoder_seed1 benchmarks/checkpoints/encoder_seed2)
one() {  # kind run K
  local flag=""; [ "$1" = adaptive ] && flag=--adaptive-length
  [ -f "benchmarks/dev_adaptive/$1/run$2/K$3/report.json" ] && return
  .venv/bin/dediffusion eval --split dev --n 300 --steps 25 --guidance 1.5,2 --cfg 1.5 --sources dediffusion \
    --features probe --batch-size 100 --pairs '' --tokens "$3" $flag --model "${MODEL[$2]}" \
    --report "benchmarks/dev_adaptive/$1/run$2/K$3"
}
if [ "$1" = A ]; then
  one adaptive 0 32; one adaptive 1 32; one adaptive 0 24; one adaptive 1 24; one fixed 1 32
else
  one adaptive 2 32; one fixed 2 32; one adaptive 2 24; one fixed 2 24; one fixed 1 24
fi
