"""Presets: small Python files whose docstring gives the command, cost and expected result.

``dediffusion train --preset NAME`` starts from ``PRESETS[NAME]()``; ``--set`` overrides apply on top.
"""
from __future__ import annotations

from dediffusion.configs import paper_sd21, world_encoder_stretch

PRESETS = {"paper_sd21": paper_sd21.config, "world_encoder_stretch": world_encoder_stretch.config}


def preset(name: str):
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r} (known: {', '.join(PRESETS)})")
    return PRESETS[name]()
