"""The shipped built-in decoder (v4): four phases, one preset each; ``world_decoder`` is the last.

    dediffusion pretrain-decoder --preset world_decoder_phase1 --out runs/world_decoder_phase1
    cp -r runs/world_decoder_phase1 runs/world_decoder_phase2
    dediffusion pretrain-decoder --preset world_decoder_phase2 --out runs/world_decoder_phase2 --resume --stop-at 10500
    dediffusion pretrain-decoder --preset world_decoder_phase3 --out runs/world_decoder_phase3      # one GPU
    dediffusion export decoder runs/world_decoder_phase3 runs/world_decoder_v3
    dediffusion pretrain-decoder --preset world_decoder --out runs/world_decoder
    dediffusion export decoder runs/world_decoder my_decoder

Every phase trains the UNet with the text -> layout readout (``decoder.layout_channels=8``) on
web-like captions of scene seed 0 and draws 30% of each batch (40% in phase 3) from the noise levels
t >= 900, where only the text can tell the layout. ``pretrain-decoder`` with no preset is the plain
UNet (no layout readout, uniform noise levels, lr 1e-3, 8,000 steps): it does not learn position
words in a CPU budget and is not any shipped phase.

1. ``world_decoder_phase1``: 6,000 steps at batch 32, lr 3e-4 (200 warm-up steps, cosine).
   Cost: 38.5 min on 2 CPU threads.
2. ``world_decoder_phase2``: phase 1's run resumed (optimizer and EMA state included) with its cosine
   stretched to 14,000 steps and stopped at step 10,500 (``--resume --stop-at 10500`` in a copy of
   phase 1's folder). Cost: 43 min on one CPU thread.
3. ``world_decoder_phase3``: a fresh run from phase 2's raw (non-EMA) parameters at step 10,500
   (``init_from`` a training folder reads those): 3,572 steps at batch 256, lr 6e-4, on a GPU with 6
   batch-building workers (``--set device=cpu --set workers=0`` trains on the same batches without a
   GPU; not timed). Cost: 260 s on one H200 beside a second run. The shipped run read an fp16-rounded
   copy of phase 2's parameters, so this phase is not bit-exact. Its fp16 export is the
   v3 decoder: gate (probe accuracy of images decoded from full captions, 500 dev scenes, guidance 3)
   0.932. (The v3 checkpoint's recorded config, equal to this preset: ``git show
   b3a8959:src/dediffusion/assets/checkpoints/decoder/train_config.json``.)
4. ``world_decoder``: the v3 export continued on captions of which half are encoder-like
   (``noisy_captions=0.5``: tag lists without function words, words dropped, repeated and stray
   vocabulary words inserted): 1,500 steps at batch 32, lr 2e-4, 50 warm-up steps. Cost: 40 min on one
   CPU thread of a busy 2-core machine.

Result (the shipped v4; ``benchmarks/RESULTS.md``, section 2): fixed-noise decoder loss on 256 dev
scenes given a tag list 0.0544 -> 0.0261 and given an encoder-like noised caption 0.0440 -> 0.0288
(v3 -> v4), given the full caption 0.0169; gate 0.928 (500 dev scenes). ``train_config.json`` beside
the shipped weights records phase 4's config and every phase's command.
"""
from __future__ import annotations

from dataclasses import replace

from dediffusion.model.decoders.builtin import BuiltinDecoderConfig
from dediffusion.train.fit_decoder import DecoderTrainConfig

PHASE_2 = "runs/world_decoder_phase2"  # training folder: phase 3 starts from its raw parameters
V3_EXPORT = "runs/world_decoder_v3"  # dediffusion export decoder runs/world_decoder_phase3 runs/world_decoder_v3


def _layout(**kw) -> DecoderTrainConfig:
    return DecoderTrainConfig(decoder=BuiltinDecoderConfig(layout_channels=8), high_noise_fraction=0.3,
                              high_noise_from=900, **kw)


def phase1() -> DecoderTrainConfig:
    """6,000 steps at batch 32 from scratch (38.5 min on 2 CPU threads)."""
    return _layout(lr=3e-4, steps=6000)


def phase2() -> DecoderTrainConfig:
    """Phase 1 resumed under a 14,000-step cosine; run with ``--resume --stop-at 10500`` (43 min, 1 thread)."""
    return replace(phase1(), steps=14000)


def phase3() -> DecoderTrainConfig:
    """Batch 256 on a GPU from phase 2's raw parameters (260 s on one H200); exported, the v3 decoder."""
    return replace(_layout(lr=6e-4, steps=3572, batch_size=256, checkpoint_every=1000, device="cuda", workers=6,
                           init_from=PHASE_2), high_noise_fraction=0.4)


def config() -> DecoderTrainConfig:
    """Phase 4, the shipped v4: v3 continued on half encoder-like captions (40 min on one CPU thread)."""
    return _layout(init_from=V3_EXPORT, noisy_captions=0.5, steps=1500, lr=2e-4, warmup=50, checkpoint_every=250)
