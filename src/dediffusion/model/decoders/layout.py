"""Text -> coarse spatial layout maps, concatenated to the denoiser's input channels.

Cross-attention and pooled-text embeddings share their weights across image
positions, so a small decoder must *discover* which text goes where; on two
CPU cores neither the UNet nor a DiT learned position words in thousands of
steps, and neither did attention pooling over the 77 text states
(``benchmarks/RESULTS.md``, "Removed options"). A per-pixel readout of the
first ``tokens`` text states learns them in a few hundred steps. This module
is that readout: the states are flattened, an MLP maps them to ``channels``
maps at the image resolution, and the denoiser sees the maps beside the noisy
image, the way Stable Diffusion's depth and inpainting variants take extra
input channels.
"""
from __future__ import annotations

import torch
from torch import nn


class TextLayout(nn.Module):
    def __init__(self, width: int, channels: int, resolution: int, tokens: int = 40, hidden: int = 512):
        super().__init__()
        self.channels, self.resolution, self.tokens = channels, resolution, tokens
        self.mlp = nn.Sequential(
            nn.Linear(tokens * width, hidden), nn.GELU(), nn.Linear(hidden, channels * resolution * resolution)
        )

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        """Text states (B,L,D), L >= tokens -> layout maps (B,channels,R,R).

        CLIP's causal text encoder gives state i a summary of tokens 0..i, so the
        first ``tokens`` states (SOS, the prompt, EOS and padding) cover prompts
        up to ``tokens - 2`` tokens long.
        """
        b = len(states)
        flat = states[:, : self.tokens].flatten(1)  # (B,tokens*D)
        return self.mlp(flat).view(b, self.channels, self.resolution, self.resolution)
