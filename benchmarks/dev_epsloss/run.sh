#!/bin/bash
# Stage 14 (RULE.md): train one run on the eps-space loss and evaluate it on dev at 16 / 24 / 32 tokens.
#   bash benchmarks/dev_epsloss/run.sh S [--eval-only]      (S = 0, 1, 2: the training run)
set -e
S=$1
case $S in 0) INIT=src/dediffusion/assets/checkpoints/encoder ;; *) INIT=benchmarks/checkpoints/encoder_seed$S ;; esac
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE PATH=$PWD/.venv/bin:$PATH
RUN=runs/st14_s$S
if [ "$2" != "--eval-only" ]; then
    dediffusion train --preset world_encoder_bigram2 --set init_from=$INIT --set seed=$S --set data_seed=110 \
        --set loss_weighting=epsilon --out $RUN > $RUN.log 2>&1
fi
dediffusion export encoder $RUN ${RUN}_export --decoder-ref shipped:decoder
for KG in 16:2 24:1.5 32:1.5; do
    K=${KG%:*}; G=${KG#*:}
    dediffusion eval --split dev --n 300 --steps 25 --cfg $G --guidance $G --sources dediffusion --features probe \
        --batch-size 100 --pairs '' --model ${RUN}_export --tokens $K --report benchmarks/dev_epsloss/s$S/K$K \
        --json > /dev/null
done
python benchmarks/dev_tailhinge/content_errors.py --model ${RUN}_export --out benchmarks/dev_epsloss/content_errors_s$S.json
echo "done $S $(date)" >> runs/st14_chain.log
