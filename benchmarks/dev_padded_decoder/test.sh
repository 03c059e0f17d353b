#!/bin/bash
# Step 2 of RULE.md (test, once per training run): decoder A2 at 4, 8, 16, 24, 32 tokens at the step-1 guidances.
# Two queues side by side, one thread each:  bash benchmarks/dev_padded_decoder/test.sh A & bash benchmarks/dev_padded_decoder/test.sh B
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
DECODER=${DECODER:-benchmarks/checkpoints/decoder_a2}  # the fp16 export of runs/dec_pad
MODEL=(src/dediffusion/assets/checkpoints/encoder benchmarks/checkpoints/encoder_seed1 benchmarks/checkpoints/encoder_seed2)
one() {  # run K
  local g
  g=$(python3 -c "import json; print(json.load(open('benchmarks/dev_padded_decoder/summary.json'))['K$2']['guidance'])") || exit 1
  [ -f "benchmarks/tokens_test_padded/run$1/K$2/report.json" ] && return
  .venv/bin/dediffusion eval --split test --n 500 --steps 25 --guidance "$g" --cfg "$g" --sources dediffusion \
    --features probe --batch-size 100 --pairs '' --tokens "$2" --decoder "$DECODER" --model "${MODEL[$1]}" \
    --report "benchmarks/tokens_test_padded/run$1/K$2" > /dev/null 2>&1
}
if [ "$1" = A ]; then
  for k in 32 24 16 8 4; do one 0 $k; done; one 1 32; one 1 24
else
  for k in 32 24 16 8 4; do one 2 $k; done; one 1 16; one 1 8; one 1 4
fi
