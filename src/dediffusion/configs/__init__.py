"""Presets: the recipes. Each is a small Python file whose docstring gives the commands, cost and result.

``dediffusion train --preset NAME`` (encoders), ``pretrain-decoder --preset NAME`` (built-in decoders) and
``train-probe --preset NAME`` (probes) start from ``PRESETS[NAME]()``; ``--set`` overrides apply on top.
Every shipped checkpoint has one (tests/test_presets.py checks each against the config it recorded):

    encoder   world_encoder (1), world_encoder_stretch (2), _stretch2..4 (3-5),  train
              world_encoder_bigram (6), _bigram2 (7), _bigram3 (8), _bigram4 (9),
              _bigram5 (10), world_encoder_gpu (11, one GPU);
              _stretch5 is stage 6 without the prior (v9, an ablation)
    decoder   world_decoder_phase1, _phase2, _phase3, world_decoder (4)    pretrain-decoder
    probe     world_probe                                                  train-probe
    backbone  world_backbone                                               train-probe

``paper_sd21`` is the paper's recipe with Stable Diffusion 2.1-base (not run here).
"""
from __future__ import annotations

import pathlib

from dediffusion.configs import paper_sd21, world_backbone, world_decoder, world_encoder, world_encoder_stretch, \
    world_probe
from dediffusion.train.fit_decoder import DecoderTrainConfig
from dediffusion.train.fit_encoder import EncoderTrainConfig
from dediffusion.train.fit_probe import ProbeTrainConfig

PRESETS = {
    "world_encoder": world_encoder.config,
    "world_encoder_stretch": world_encoder_stretch.config,
    "world_encoder_stretch2": world_encoder_stretch.stage3,
    "world_encoder_stretch3": world_encoder_stretch.stage4,
    "world_encoder_stretch4": world_encoder_stretch.stage5,
    "world_encoder_stretch5": world_encoder_stretch.stage6,
    "world_encoder_bigram": world_encoder_stretch.bigram,
    "world_encoder_bigram2": world_encoder_stretch.bigram2,
    "world_encoder_bigram3": world_encoder_stretch.bigram3,
    "world_encoder_bigram4": world_encoder_stretch.bigram4,
    "world_encoder_bigram5": world_encoder_stretch.bigram5,
    "world_encoder_gpu": world_encoder_stretch.gpu,
    "world_decoder_phase1": world_decoder.phase1,
    "world_decoder_phase2": world_decoder.phase2,
    "world_decoder_phase3": world_decoder.phase3,
    "world_decoder": world_decoder.config,
    "world_probe": world_probe.config,
    "world_backbone": world_backbone.config,
    "paper_sd21": paper_sd21.config,
}

COMMANDS = {EncoderTrainConfig: "train", DecoderTrainConfig: "pretrain-decoder", ProbeTrainConfig: "train-probe"}


def command_of(name: str) -> str:
    """The subcommand that preset ``name`` configures: train, pretrain-decoder or train-probe."""
    return COMMANDS[type(PRESETS[name]())]


def source_file(name: str) -> str:
    """Where preset ``name`` is written down (its docstring is the recipe), relative to the package."""
    module = PRESETS[name].__module__.rsplit(".", 1)[-1]
    return f"dediffusion/configs/{module}.py"


def preset(name: str, command: str | None = None):
    """``PRESETS[name]()``; with ``command`` (the subcommand asking), a preset for another one is an error."""
    if name not in PRESETS:
        known = [n for n in PRESETS if command is None or command_of(n) == command]
        raise ValueError(f"unknown preset {name!r} (known{f' for {command}' if command else ''}: {', '.join(known)})")
    cfg = PRESETS[name]()
    right = COMMANDS[type(cfg)]
    if command is not None and right != command:
        raise ValueError(f"preset {name!r} configures `dediffusion {right}`, not `{command}`: "
                         f"run `dediffusion {right} --preset {name} --out DIR`")
    return cfg


def missing_start(name: str, cfg) -> str | None:
    """An error line when ``cfg`` starts from a folder (``init_from``) that does not exist, else None."""
    start = getattr(cfg, "init_from", "") or ""
    if not start or start.startswith("shipped:") or pathlib.Path(start).exists():
        return None
    return (f"init_from={start} does not exist: preset {name!r} continues an earlier stage; run that first "
            f"(the commands are in {source_file(name)}) or give another start with --set init_from=DIR")
