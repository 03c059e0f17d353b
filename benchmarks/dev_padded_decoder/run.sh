#!/bin/bash
# Needs commit c304a7e: decoder A2, its checkpoints and padded_captions left the code after (RULE.md, outcome).
# Steps 0 and 1 of RULE.md (dev). Two queues side by side, one thread each:
#   bash benchmarks/dev_padded_decoder/run.sh A & bash benchmarks/dev_padded_decoder/run.sh B
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
DECODER=${DECODER:-runs/dec_pad}
HERE=benchmarks/dev_padded_decoder
MODEL=(src/dediffusion/assets/checkpoints/encoder benchmarks/checkpoints/encoder_seed1 benchmarks/checkpoints/encoder_seed2)
one() {  # run K
  [ -f "$HERE/run$1/K$2/report.json" ] && return
  .venv/bin/dediffusion eval --split dev --n 300 --steps 25 --guidance 1.5,2 --cfg 1.5 --sources dediffusion \
    --features probe --batch-size 100 --pairs '' --tokens "$2" --decoder "$DECODER" --model "${MODEL[$1]}" \
    --report "$HERE/run$1/K$2" > /dev/null 2>&1
}
if [ "$1" = A ]; then
  [ -f $HERE/robustness/robustness.json ] || .venv/bin/python benchmarks/decoder_robustness.py shipped:decoder \
    "$DECODER" --out $HERE/robustness 2> /dev/null
  for k in 32 24 16; do one 0 $k; one 1 $k; done; one 2 16
  [ -f $HERE/phantoms.json ] || .venv/bin/python benchmarks/dev_phantoms/phantoms.py --decoder "$DECODER" \
    --out $HERE/phantoms.json > /dev/null
else
  for k in 32 24; do one 2 $k; done; for k in 8 4; do one 0 $k; one 1 $k; one 2 $k; done
fi
