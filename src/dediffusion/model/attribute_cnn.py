"""The attribute CNN: a small network that reads every attribute of a world scene image.

Trained on rendered scenes only (``train/fit_probe.py``), it serves twice: as the judging probe
of every reconstruction (``eval/probe.py`` scores what it reads) and, with its own weights, as the
pretrained backbone of the world encoder (``model/encoder.py``).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from dediffusion.data.world.scenes import BACKGROUNDS, CELLS, COLOURS, SHAPES, SIZES

CONTENTS = ("empty",) + SHAPES
HEADS = {"content": len(CONTENTS), "colour": len(COLOURS), "size": len(SIZES)}


@dataclass(frozen=True)
class ProbeConfig:
    width: int = 64
    resolution: int = 16


class Probe(nn.Module):
    """(B,3,H,W) images in [0,1] -> logits per attribute; ``features`` is the penultimate layer."""

    def __init__(self, cfg: ProbeConfig = ProbeConfig()):
        super().__init__()
        self.cfg = cfg
        w = cfg.width
        self.body = nn.Sequential(
            nn.Conv2d(3, w, 3, padding=1), nn.GELU(),
            nn.Conv2d(w, w, 3, padding=1), nn.GELU(),
            nn.Conv2d(w, w, 3, stride=2, padding=1), nn.GELU(),  # H/2
            nn.Conv2d(w, w, 3, padding=1), nn.GELU(),
        )
        cells = len(CELLS)
        self.trunk = nn.Sequential(nn.Flatten(), nn.Linear(w * (cfg.resolution // 2) ** 2, 256), nn.GELU())
        self.background = nn.Linear(256, len(BACKGROUNDS))
        self.cells = nn.ModuleDict({k: nn.Linear(256, cells * n) for k, n in HEADS.items()})

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.trunk(self.body(images * 2 - 1))  # (B,256)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        f = self.features(images)
        out = {"background": self.background(f)}  # (B,3)
        for k, head in self.cells.items():
            out[k] = head(f).view(len(f), len(CELLS), HEADS[k])  # (B,4,n)
        return out


def save_probe(probe: Probe, folder, dtype=torch.float16, extra: dict | None = None) -> None:
    from dediffusion.checkpoint import safe_child, save_tensors, write_json
    from dediffusion.config import to_dict

    save_tensors(safe_child(folder, "probe.safetensors"), probe.state_dict(), dtype=dtype)
    write_json(safe_child(folder, "probe.json"), {"config": to_dict(probe.cfg), **(extra or {})})


def load_probe(folder) -> Probe:
    from dediffusion.checkpoint import load_state, load_tensors, read_json, safe_child
    from dediffusion.config import from_dict

    meta = read_json(safe_child(folder, "probe.json"))
    probe = Probe(from_dict(ProbeConfig, meta.get("config", {}), where=f"{folder}/probe.json:config"))
    weights = safe_child(folder, "probe.safetensors")
    load_state(probe, load_tensors(weights), weights)
    return probe.eval()
