#!/usr/bin/env bash
# One time-bounded GPU lease (issue 13, item 3): encoder stage 11, three runs (seeds 0-2) at batch 256
# from the stage-10 exports, side by side (preset world_encoder_gpu; configs/world_encoder_stretch.py).
# The shipped run (commit 5eacf8d's version) also trained a second built-in decoder beside them, which
# failed its gate and was dropped (benchmarks/RESULTS.md, section 7).
#
#   OUT=/tmp/gpu_out BUDGET=480 bash scripts/gpu_stretch.sh    # on one H200 (16 CPU cores); needs diffusers
#   OUT=/tmp/gpu_out BUDGET=120 DEVICE=cpu WORKERS=1 bash scripts/gpu_stretch.sh   # dry run on a CPU
#
# Each run first trains 150 steps (the learning rates differ from a full-length run's by under 0.1%),
# the step rate of the runs side by side sets the number of steps that ends within BUDGET seconds
# of the start, and each run resumes with that length (cosine decay to 0 at its end). A run still going
# past the deadline is stopped and exported from its last checkpoint (every 500 steps).
# Back under $OUT: encoders.tgz (three exports + curves), logs.tgz, plan.json.
set -u
OUT=${OUT:?set OUT}; BUDGET=${BUDGET:-470}; DEVICE=${DEVICE:-cuda}; WORKERS=${WORKERS:-3}
BATCH=${BATCH:-256}; PROBE=${PROBE:-150}  # smaller only for a dry run
T0=$(date +%s); DEADLINE=$((T0 + BUDGET))
W=${WORK:-/tmp/gpu_work}; rm -rf "$W"; mkdir -p "$W" "$OUT"
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 TQDM_MININTERVAL=30
PY=${PYTHON:-python3}; CLI="$PY -m dediffusion.cli"
(nvidia-smi; $PY -c "import torch; print(torch.__version__, torch.cuda.is_available())") > "$W/machine.log" 2>&1

# Stage 11 started from the stage-10 exports; `git checkout 26f6972 -- benchmarks/checkpoints/bigram2_stage10_seed0`
# (and _seed1, _seed2) restores them. A further stretch: copy the three runs' exports to PREFIX0..PREFIX2 (the
# shipped encoder is run 0, benchmarks/checkpoints/encoder_seed{1,2} runs 1 and 2), set INIT=PREFIX and a new DATA_SEED.
INIT=${INIT:-benchmarks/checkpoints/bigram2_stage10_seed}; DATA_SEED=${DATA_SEED:-109}
enc_sets() {  # the world_encoder_bigram2 recipe at batch 256 (stage 11: data seed 109, from stage 10)
  echo --preset world_encoder_bigram2 --set init_from=$INIT$1 \
    --set seed=$1 --set data_seed=$DATA_SEED --set batch_size=$BATCH --set device=$DEVICE --set data.workers=$WORKERS \
    --set checkpoint_every=500 --set steps=$2
}
launch() {  # $1: steps, $2: extra flags (--stop-at N or --resume)
  for s in 0 1 2; do
    $CLI train $(enc_sets $s $1) --out "$W/enc$s" $2 >> "$W/enc$s.log" 2>&1 &
  done
}
stop_at_deadline() {  # wait for the runs; at the deadline stop those still going
  while [ -n "$(jobs -rp)" ] && [ "$(date +%s)" -lt "$1" ]; do sleep 2; done
  for p in $(jobs -rp); do kill "$p"; done; wait
}

launch 100000 "--stop-at $PROBE"
stop_at_deadline $((T0 + BUDGET / 2))
STEPS=$($PY - "$W" "$DEADLINE" "$PROBE" <<'EOF'
import json, pathlib, sys, time
w, deadline, probe = pathlib.Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
rate = []
for run in ("enc0", "enc1", "enc2"):
    rows = {r["step"]: r["seconds"] for r in map(json.loads, (w / run / "metrics.jsonl").read_text().splitlines())}
    rate.append((rows[probe] - rows[50]) / (probe - 50))
left = deadline - time.time() - 25  # a resumed run's start-up
steps = probe + int(0.9 * left / max(rate))  # one length for the three runs
json.dump({"seconds_per_step": rate, "seconds_left": left, "steps": steps}, open(w / "plan.json", "w"))
print(steps)
EOF
) || { echo "probe failed"; STEPS=0; }
cp "$W/plan.json" "$OUT/" 2>/dev/null
if [ "$STEPS" -gt "$PROBE" ]; then
  launch "$STEPS" --resume
  stop_at_deadline "$DEADLINE"
fi
for s in 0 1 2; do
  $CLI export encoder "$W/enc$s" "$W/export_seed$s" --decoder-ref shipped:decoder >> "$W/enc$s.log" 2>&1
  cp "$W/enc$s/metrics.jsonl" "$W/export_seed$s/" 2>/dev/null
done
tar czf "$OUT/encoders.tgz" -C "$W" export_seed0 export_seed1 export_seed2
tar czf "$OUT/logs.tgz" -C "$W" enc0.log enc1.log enc2.log machine.log
echo "done in $(( $(date +%s) - T0 )) s; steps $STEPS"
