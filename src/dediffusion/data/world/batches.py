"""Batches of the embedded world as tensors, for training and evaluation."""
from __future__ import annotations

import numpy as np
import torch

from dediffusion.data.world.scenes import RESOLUTION, Scene, render, sample_scene


def scenes(seed: int, start: int, count: int) -> list[Scene]:
    return [sample_scene(seed, i) for i in range(start, start + count)]


def images_tensor(batch: list[Scene], resolution: int = RESOLUTION) -> torch.Tensor:
    """Scenes -> (B, 3, H, W) float32 in [0, 1]."""
    arr = np.stack([render(s, resolution) for s in batch])  # (B,H,W,3) uint8
    return torch.from_numpy(arr).permute(0, 3, 1, 2).float() / 255.0

