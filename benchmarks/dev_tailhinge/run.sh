#!/bin/bash
# Stage 13 (RULE.md): train one run with the tail hinge and evaluate it on dev at 16 / 24 / 32 tokens.
#   bash benchmarks/dev_tailhinge/run.sh S [b]   (S = 0, 1, 2: the training run; b: stage 13b, at commit
#   d701d26 the same script trained stage 13, whose reports are s0-s2)
set -e
S=$1
B=${2:-}
case $S in 0) INIT=src/dediffusion/assets/checkpoints/encoder ;; *) INIT=benchmarks/checkpoints/encoder_seed$S ;; esac
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE PATH=$PWD/.venv/bin:$PATH
RUN=runs/st13${B}_s$S
dediffusion train --preset world_encoder_bigram2 --set init_from=$INIT --set seed=$S --set data_seed=110 \
    --set tail_hinge=2 --out $RUN > $RUN.log 2>&1
dediffusion export encoder $RUN ${RUN}_export --decoder-ref shipped:decoder
for KG in 16:2 24:1.5 32:1.5; do
    K=${KG%:*}; G=${KG#*:}
    dediffusion eval --split dev --n 300 --steps 25 --cfg $G --guidance $G --sources dediffusion --features probe \
        --batch-size 100 --pairs '' --model ${RUN}_export --tokens $K --report benchmarks/dev_tailhinge/${B:+${B}_}s$S/K$K \
        --json > /dev/null
done
echo "done $B $S $(date)" >> runs/st13_chain.log
