#!/bin/bash
# RULE.md: 8 parts of 128 test scenes (seed 7), two queues side by side on one thread each.
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
if [ "$1" = A ]; then starts="0 256 512 768"; else starts="128 384 640 896"; fi
for s in $starts; do
  out=benchmarks/inversion_test/part$(printf %04d "$s")
  [ -f "$out/quality_vs_budget.json" ] && continue
  .venv/bin/python benchmarks/quality_vs_budget.py --seed 7 --start "$s" --n 128 --refine '' --budgets 300 \
    --encoders benchmarks/checkpoints/encoder_seed1,benchmarks/checkpoints/encoder_seed2 --out "$out"
done
