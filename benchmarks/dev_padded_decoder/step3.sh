#!/bin/bash
# Needs commit c304a7e: decoder A2, its checkpoints and padded_captions left the code after (RULE.md, outcome).
# Step 3 of RULE.md (dev): the stage-12b control recipe continued against decoder A2, three runs, then their
# dev reports at 16, 24, 32 tokens (decoded by A2, the decoder they were trained against; --decoder, as a
# checkpoint's recorded decoder outside its folder is not read without it).
#   bash benchmarks/dev_padded_decoder/step3.sh train S      # S = 0, 1, 2, one thread each
#   bash benchmarks/dev_padded_decoder/step3.sh eval A|B     # two queues
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
A2=benchmarks/checkpoints/decoder_a2
HERE=benchmarks/dev_padded_decoder/step3
INIT=(src/dediffusion/assets/checkpoints/encoder benchmarks/checkpoints/encoder_seed1 benchmarks/checkpoints/encoder_seed2)
export_of() { echo "benchmarks/checkpoints/encoder_a2_seed$1"; }
if [ "$1" = train ]; then
  S=$2
  .venv/bin/dediffusion train --preset world_encoder_bigram2 --set "init_from=${INIT[$S]}" --set seed="$S" \
    --set data_seed=110 --set decoder=$A2 --out "runs/step3_s$S" --resume > "runs/step3_s$S.log" 2>&1 || exit 1
  .venv/bin/dediffusion export encoder "runs/step3_s$S" "$(export_of "$S")" --decoder-ref $A2
  mkdir -p $HERE && cp "runs/step3_s$S/metrics.jsonl" "$HERE/train_s$S.metrics.jsonl"
  exit
fi
one() {  # run K
  [ -f "$HERE/run$1/K$2/report.json" ] && return
  .venv/bin/dediffusion eval --split dev --n 300 --steps 25 --guidance 1.5,2 --cfg 1.5 --sources dediffusion \
    --features probe --batch-size 100 --pairs '' --tokens "$2" --model "$(export_of "$1")" --decoder $A2 \
    --report "$HERE/run$1/K$2" > /dev/null 2>&1
}
if [ "$2" = A ]; then
  one 0 32; one 0 24; one 0 16; one 1 32; one 1 24
else
  one 2 32; one 2 24; one 2 16; one 1 16
fi
