"""Stage 1 of the shipped world encoder (v14): the ``train`` defaults, 2,000 steps at batch 32 (64,000 scenes).

The shipped encoder is eleven stretches of training; this is the first (shipped alone as v4), and
``world_encoder_stretch.py`` holds the other ten (its docstring has the whole sequence), each
from the previous stage's fp16 export:

    dediffusion train --preset world_encoder --out runs/world_encoder
    dediffusion export encoder runs/world_encoder runs/world_encoder_v4 --decoder-ref shipped:decoder

``dediffusion train --out DIR`` with no preset is the same run. ``--set seed=N`` in every stage for
another training run (the shipped one is seed 0; ``benchmarks/checkpoints/encoder_seed{1,2}`` are
seeds 1 and 2).

Recipe (``world_model_config`` in ``train/fit_encoder.py``): the frozen built-in decoder, a
from-scratch scene CNN under a 3-block pooler, 32 tokens from the decoder's 23 words, straight-through
Gumbel with tau 2.0 -> 0.3 and noise 0.3 annealed with it, logits x4, batch-diversity loss 0.1,
TailDrop 0.5; AdamW lr 1e-3 (100 warm-up steps, cosine), noise levels t in [200, 999], scene seed 0.

Cost: about 26 min on one CPU thread (0.77 s per step).

Result: dev split (seed 1, n = 300), probe accuracy raw / strict at guidance 1.5: 0.510 / 0.462,
decoder loss 0.0557 (seed 0; ``benchmarks/RESULTS.md``, section 3). Stage 2 lifts these to
0.587 / 0.556 and 0.0430.
"""
from __future__ import annotations

from dediffusion.train.fit_encoder import EncoderTrainConfig


def config() -> EncoderTrainConfig:
    return EncoderTrainConfig()
