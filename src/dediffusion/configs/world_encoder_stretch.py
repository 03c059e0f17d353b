"""Stage 2 of the shipped world encoder (v5): 2,000 more steps (64,000 fresh scenes) from stage 1's export.

The shipped encoder is two stretches of one recipe, each 2,000 steps at batch 32; stage 1 is
``world_encoder.py`` (the ``train`` defaults):

    dediffusion train --preset world_encoder --out runs/world_encoder
    dediffusion export encoder runs/world_encoder runs/world_encoder_v4 --decoder-ref shipped:decoder
    dediffusion train --preset world_encoder_stretch --out runs/world_encoder_stretch
    dediffusion export encoder runs/world_encoder_stretch my_encoder --decoder-ref shipped:decoder

This preset starts from ``init_from=runs/world_encoder_v4``, stage 1's fp16 export, as the shipped run
did (it read the v4 checkpoint); ``--set init_from=DIR`` starts from another encoder folder. ``--set
seed=N`` in both stages for another training run (the shipped one is seed 0, the committed
``benchmarks/checkpoints/encoder_seed{1,2}`` are seeds 1 and 2).

Stage 2 holds the Gumbel temperature at stage 1's final 0.3 with stage 1's final noise scale
(0.3 x 0.3 / 2.0 = 0.045), restarts a shorter lr schedule (3e-4, 100 warm-up steps, cosine) and
draws new scenes (``data_seed=100``; the eval splits are seeds 1 and 7).

Cost: about 26 min per stage on one CPU thread (0.77 s per step), 128,000 images in all.

Result: dev split (seed 1, n = 300), probe accuracy raw / strict at guidance 1.5: 0.510 / 0.462 after
stage 1, 0.587 / 0.556 after stage 2 (seed 0; ``benchmarks/RESULTS.md``, section 3); test split
(seed 7, n = 1000) over three training runs: raw 0.562 +- 0.041, strict 0.520 +- 0.059 (section 1).
"""
from __future__ import annotations

from dataclasses import replace

from dediffusion.train.fit_encoder import EncoderTrainConfig, world_model_config

STAGE_1_EXPORT = "runs/world_encoder_v4"  # dediffusion export encoder runs/world_encoder runs/world_encoder_v4 ...


def config() -> EncoderTrainConfig:
    model = world_model_config()
    head = replace(model.head, tau_start=0.3, noise_scale=0.045)
    return EncoderTrainConfig(model=replace(model, head=head), steps=2000, lr=3e-4, data_seed=100,
                              checkpoint_every=500, init_from=STAGE_1_EXPORT)
