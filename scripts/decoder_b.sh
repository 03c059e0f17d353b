#!/usr/bin/env bash
# Decoder B, the second built-in decoder for the transfer test (benchmarks/decoder_b/RULE.md): the shipped
# decoder's recipe (configs/world_decoder.py) with its own weight initialisation, scenes and captions.
# Phases 1-2 ran on a CPU (6,000 + 4,500 steps at batch 32, 23 + 22 min on one thread of an AMD EPYC):
#
#   dediffusion pretrain-decoder --preset world_decoder_phase1 --out runs/decB_phase1 $SETS
#   cp -r runs/decB_phase1 runs/decB_phase2
#   dediffusion pretrain-decoder --preset world_decoder_phase2 --out runs/decB_phase2 --resume --stop-at 10500 $SETS
#
# and phase 2's raw (non-EMA) parameters at step 10,500 are committed in fp16 as
# benchmarks/checkpoints/decoder_b_phase2 (the shipped phase 3 also read an fp16 copy). This script runs the
# rest: phase 3 (3,572 steps at batch 256; 260 s on one H200, 70 min on two threads of the AMD EPYC), its
# export, phase 4 (1,500 steps at batch 32 on noised captions, one CPU thread, 7 min), the export and the
# gate (0.950). The result is committed as benchmarks/checkpoints/decoder_b (RESULTS section 1).
#
#   OUT=/tmp/decb bash scripts/decoder_b.sh                         # on a GPU (needs ~6 CPU cores)
#   OUT=/tmp/decb DEVICE=cpu WORKERS=0 THREADS=2 bash scripts/decoder_b.sh   # on the 2-core CPU
#   OUT=/tmp/decb DEVICE=cpu WORKERS=0 STEPS3=4 STEPS4=4 NGATE=8 bash scripts/decoder_b.sh  # dry run
#
# Leaves $OUT/decoder_b (the decoder), $OUT/robustness (the gate) and $OUT/*.log.
set -eu
OUT=${OUT:?set OUT}; DEVICE=${DEVICE:-cuda}; WORKERS=${WORKERS:-6}; THREADS=${THREADS:-1}
START=${START:-benchmarks/checkpoints/decoder_b_phase2}
SETS="--set seed=1 --set data_seed=300 --set decoder.seed=1"
mkdir -p "$OUT"
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 OMP_WAIT_POLICY=PASSIVE TQDM_MININTERVAL=30
PY=${PYTHON:-python3}; CLI="$PY -m dediffusion.cli"
EXTRA3=${STEPS3:+--set steps=$STEPS3}; EXTRA4=${STEPS4:+--set steps=$STEPS4}

OMP_NUM_THREADS=$THREADS $CLI pretrain-decoder --preset world_decoder_phase3 --out "$OUT/phase3" $SETS \
  --set init_from="$START" --set device="$DEVICE" --set workers="$WORKERS" --set checkpoint_every=250 $EXTRA3 \
  > "$OUT/phase3.log" 2>&1
$CLI export decoder "$OUT/phase3" "$OUT/decoder_b_v3" >> "$OUT/phase3.log" 2>&1
OMP_NUM_THREADS=1 $CLI pretrain-decoder --preset world_decoder --out "$OUT/phase4" $SETS \
  --set init_from="$OUT/decoder_b_v3" $EXTRA4 > "$OUT/phase4.log" 2>&1
$CLI export decoder "$OUT/phase4" "$OUT/decoder_b" >> "$OUT/phase4.log" 2>&1
OMP_NUM_THREADS=1 $PY benchmarks/decoder_robustness.py "$OUT/decoder_b" --out "$OUT/robustness" \
  ${NGATE:+--n-gate $NGATE} > "$OUT/gate.log" 2>&1
grep -i "gate" "$OUT/robustness/robustness.md"
