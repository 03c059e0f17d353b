"""The attribute CNN: a small network that reads every attribute of a world scene image.

Trained on rendered scenes only (``train/fit_probe.py``), it serves twice: as the judging probe
of every reconstruction (``eval/probe.py`` scores what it reads) and, with its own weights, as the
pretrained backbone of the world encoder (``model/encoder.py``).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from dediffusion.checkpoint import load_state, load_tensors, read_json, safe_child, save_tensors, write_json
from dediffusion.config import from_dict, to_dict
from dediffusion.data.world.scenes import BACKGROUNDS, CELLS, COLOURS, SHAPES, SIZES

CONTENTS = ("empty",) + SHAPES
HEADS = {"content": len(CONTENTS), "colour": len(COLOURS), "size": len(SIZES)}


@dataclass(frozen=True)
class ProbeConfig:
    width: int = 64
    resolution: int = 16


def conv_stack(width: int, final_gelu: bool) -> nn.Sequential:
    """Four 3x3 convolutions, the third with stride 2: (B,3,H,W) in [-1,1] -> (B,width,H/2,W/2).

    The attribute probe's body (``final_gelu``) and the from-scratch ``cnn`` backbone (``model/encoder.py``);
    the layer indices are the state-dict keys of the shipped checkpoints."""
    layers = [nn.Conv2d(3, width, 3, padding=1), nn.GELU(), nn.Conv2d(width, width, 3, padding=1), nn.GELU(),
              nn.Conv2d(width, width, 3, stride=2, padding=1), nn.GELU(), nn.Conv2d(width, width, 3, padding=1)]
    return nn.Sequential(*layers, *([nn.GELU()] if final_gelu else []))


class Probe(nn.Module):
    """(B,3,H,W) images in [0,1] -> logits per attribute; ``features`` is the penultimate layer."""

    def __init__(self, cfg: ProbeConfig = ProbeConfig()):
        super().__init__()
        self.cfg = cfg
        w = cfg.width
        self.body = conv_stack(w, final_gelu=True)  # (B,w,H/2,W/2)
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
    save_tensors(safe_child(folder, "probe.safetensors"), probe.state_dict(), dtype=dtype)
    write_json(safe_child(folder, "probe.json"), {"config": to_dict(probe.cfg), **(extra or {})})


def load_probe(folder) -> Probe:
    meta = read_json(safe_child(folder, "probe.json"))
    probe = Probe(from_dict(ProbeConfig, meta.get("config", {}), where=f"{folder}/probe.json:config"))
    weights = safe_child(folder, "probe.safetensors")
    load_state(probe, load_tensors(weights), weights)
    return probe.eval()
