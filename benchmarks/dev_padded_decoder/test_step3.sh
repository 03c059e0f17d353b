#!/bin/bash
# Step 3 of RULE.md on test (once per training run, if step 3 passes on dev): the encoders continued against
# decoder A2, decoded by A2, at 4, 8, 16, 24, 32 tokens; 16-32 at step 3's dev guidances
# (summary_step3.json), 4 and 8 at 2 (what dev chose for them with both decoders, steps 1 and dev_tokens).
#   bash benchmarks/dev_padded_decoder/test_step3.sh A & bash benchmarks/dev_padded_decoder/test_step3.sh B
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
guidance() {  # K
  case $1 in
    4|8) echo 2.0 ;;
    *) python3 -c "import json; print(json.load(open('benchmarks/dev_padded_decoder/summary_step3.json'))['K$1']['guidance'])" ;;
  esac
}
one() {  # run K
  local g; g=$(guidance "$2") || exit 1
  [ -f "benchmarks/tokens_test_padded_encoder/run$1/K$2/report.json" ] && return
  .venv/bin/dediffusion eval --split test --n 500 --steps 25 --guidance "$g" --cfg "$g" --sources dediffusion \
    --features probe --batch-size 100 --pairs '' --tokens "$2" --model "benchmarks/checkpoints/encoder_a2_seed$1" \
    --decoder benchmarks/checkpoints/decoder_a2 \
    --report "benchmarks/tokens_test_padded_encoder/run$1/K$2" > /dev/null 2>&1
}
if [ "$1" = A ]; then
  for k in 32 24 16 8 4; do one 0 $k; done; one 1 32; one 1 24
else
  for k in 32 24 16 8 4; do one 2 $k; done; one 1 16; one 1 8; one 1 4
fi
