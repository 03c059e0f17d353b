"""Text -> images with a decoder adapter: DDIM sampling with classifier-free guidance."""
from __future__ import annotations

import torch

from . import diffusion


def sampling_scheduler(decoder):
    from diffusers import DDIMScheduler

    return DDIMScheduler.from_config(decoder.scheduler.config)


@torch.no_grad()
def generate(decoder, prompts: list[str], steps: int = 25, guidance: float = 3.0, seed: int = 0,
             progress=None) -> torch.Tensor:
    """Prompts -> images (B,3,H,W) in [0,1]. The same seed gives the same starting noise."""
    cond = decoder.text_states(prompts)
    uncond = decoder.text_states([""] * len(prompts)) if guidance != 1.0 else None
    gen = torch.Generator().manual_seed(seed)
    x = diffusion.sample(decoder.model_fn, sampling_scheduler(decoder), decoder.latent_shape(len(prompts)),
                         cond, uncond, steps, guidance, gen, progress)
    return decoder.from_model_space(x)
