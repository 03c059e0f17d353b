"""The shipped scene-CNN backbone (``shipped:backbone``): a second, shorter attribute-probe run.

    dediffusion train-probe --preset world_backbone --out runs/world_backbone

An encoder with ``--set model.encoder.backbone=attribute_cnn`` reads images through this network's
features, frozen (``backbone=shipped:backbone`` in ``EncoderTrainConfig``); the shipped encoder does not
(its ``cnn`` backbone trains from scratch). Same network and trainer as the judge (``world_probe.py``),
apart from it: 800 steps at batch 128 from scene seed 200, lr 2e-3, init seed 1, tested on seed 201.

Cost: about 3 min on one CPU thread.

Result: 100% on every attribute on 500 held-out scenes of seed 201 (``probe.json`` records it).
"""
from __future__ import annotations

from dediffusion.train.fit_probe import ProbeTrainConfig


def config() -> ProbeTrainConfig:
    return ProbeTrainConfig(steps=800, data_seed=200, seed=1, test_seed=201, test_n=500)
