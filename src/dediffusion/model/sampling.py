"""Text -> images with a decoder adapter: DDIM sampling with classifier-free guidance."""
from __future__ import annotations

import torch

from dediffusion.model import diffusion

DEFAULT_GUIDANCE = 3.0  # paper: best FID at CFG 3.0 (Table 6)
DEFAULT_STEPS = 25


def sampling_scheduler(decoder):
    from diffusers import DDIMScheduler

    return DDIMScheduler.from_config(decoder.scheduler.config)


@torch.no_grad()
def generate(decoder, prompts: list[str], steps: int = 25, guidance: float = 3.0, seed: int = 0,
             progress=None) -> torch.Tensor:
    """Prompts -> images (B,3,H,W) in [0,1]. The same seed gives the same starting noise."""
    return _sample(decoder, decoder.text_states(prompts), steps, guidance, seed, progress)


@torch.no_grad()
def generate_ids(decoder, ids: list[list[int]], steps: int = 25, guidance: float = 3.0, seed: int = 0,
                 same_noise: bool = False, progress=None) -> torch.Tensor:
    """Rows of content token ids (any lengths, no SOS/EOS) -> images (B,3,H,W) in [0,1], read exactly as
    given (no decode -> re-tokenise round trip). ``same_noise``: every row starts from the one noise
    draw that ``generate`` gives a single prompt with this seed."""
    return _sample(decoder, decoder.text_states_from_ids(ids), steps, guidance, seed, progress, same_noise)


def _sample(decoder, cond: torch.Tensor, steps: int, guidance: float, seed: int, progress,
            same_noise: bool = False) -> torch.Tensor:
    n = len(cond)
    uncond = decoder.text_states([""] * n) if guidance != 1.0 else None
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(decoder.latent_shape(1), generator=gen).repeat(n, 1, 1, 1) if same_noise else None
    x = diffusion.sample(decoder.model_fn, sampling_scheduler(decoder), decoder.latent_shape(n), cond, uncond, steps,
                         guidance, gen, progress, noise=noise)
    return decoder.from_model_space(x)
