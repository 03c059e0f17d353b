"""Training the attribute probe on real rendered scenes.

    dediffusion train-probe --preset world_probe --out runs/probe     # the shipped judge: the defaults

``configs/world_probe.py`` and ``configs/world_backbone.py`` (the shipped scene-CNN backbone) give the
commands, cost and result.
"""
from __future__ import annotations

import pathlib
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from dediffusion.data.world.batches import images_tensor, scenes
from dediffusion.model.attribute_cnn import Probe, ProbeConfig, save_probe
from dediffusion.eval.probe import attribute_hits, concat_hits, probe_loss, summarise, targets
from dediffusion.train.loop import lr_at, optimizer_step


@dataclass(frozen=True)
class ProbeTrainConfig:
    steps: int = 3000
    batch_size: int = 128
    lr: float = 2e-3
    data_seed: int = 100  # its own training stream
    test_seed: int = 101  # held-out scenes for the reported accuracy
    test_n: int = 2000
    seed: int = 0


def evaluate_probe(probe: Probe, seed: int, n: int, resolution: int, batch: int = 500) -> dict[str, float]:
    parts = []
    for start in range(0, n, batch):
        b = scenes(seed, start, min(batch, n - start))
        parts.append(attribute_hits(probe, images_tensor(b, resolution), b))
    return summarise(concat_hits(parts))


def train_probe(cfg: ProbeTrainConfig, out, probe_cfg: ProbeConfig = ProbeConfig(), progress: bool = True) -> dict:
    torch.manual_seed(cfg.seed)
    probe = Probe(probe_cfg)
    opt = torch.optim.AdamW(probe.parameters(), lr=cfg.lr, weight_decay=1e-4)
    bar = tqdm(range(cfg.steps), disable=not progress, desc="probe")
    for step in bar:  # no gradient clipping, unlike run_training
        b = scenes(cfg.data_seed, step * cfg.batch_size, cfg.batch_size)
        loss = probe_loss(probe(images_tensor(b, probe_cfg.resolution)), targets(b))
        optimizer_step(opt, loss, lr_at(step, cfg.lr, 100, cfg.steps))
        bar.set_postfix(loss=f"{loss.item():.4f}")
    probe.eval()
    acc = evaluate_probe(probe, cfg.test_seed, cfg.test_n, probe_cfg.resolution)
    save_probe(probe, pathlib.Path(out), extra={"test_accuracy": acc, "test_seed": cfg.test_seed, "test_n": cfg.test_n})
    return acc
