"""Analysis by synthesis with the frozen decoder: of several candidate texts for an image, the one under which
the decoder denoises the image best.

Used at inference only, never in training: by the reader (``apps/reading.py``: how many objects, which
shape) and by ``--adaptive-length`` (``pick_lengths``: how long each image's text is). Candidates are scored
by the error of the implied noise estimate (``diffusion.epsilon_weight``) on noise levels evenly spaced over
``PICK_LEVELS``, one seeded noise each, the same for every image and candidate: the Diffusion Classifier's
score (Li et al., ICCV 2023). The training loss (v-prediction over t in [200, 999]) lets the high-noise draws
decide, where a 4-px square looks like a circle (``benchmarks/dev_pick_eps``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from dediffusion.model import diffusion

PICK_LEVELS = (50, 999)  # noise levels the decoder's pick spans (benchmarks/dev_pick_eps)
SHORTEST = (4, 8)  # the shortest prefix lengths ``pick_lengths`` tries; then every 8 from 16, and the budget


@torch.inference_mode()
def decoder_pick(decoder, images: torch.Tensor, candidates: list[list[str]], draws: int = 16,
                 seed: int = 0) -> list[int]:
    """For each image, the index of the candidate text under which the frozen decoder denoises it best
    (analysis by synthesis): the mean eps-space error (``diffusion.epsilon_weight``) over ``draws`` noise
    levels evenly spaced over PICK_LEVELS, one seeded noise each, the same for every image and candidate."""
    t = torch.linspace(*PICK_LEVELS, draws).round().long()
    noise = torch.randn(decoder.latent_shape(draws), generator=torch.Generator().manual_seed(seed))
    return pick_by_loss(decoder, images, candidates, t, noise, diffusion.epsilon_weight(decoder.scheduler, t))


@torch.inference_mode()
def pick_by_loss(decoder, images: torch.Tensor, candidates: list[list[str]], t: torch.Tensor, noise: torch.Tensor,
                 weight: torch.Tensor) -> list[int]:
    """For each image, the index of its candidate with the lowest mean of ``weight`` x denoising loss over the
    draws ``t``, ``noise`` (D,), the same for every image and candidate; a lone candidate is not scored."""
    side, dev = decoder.resolution, decoder.token_embedding.device
    if images.shape[-1] != side:
        images = F.interpolate(images, size=(side, side), mode="bilinear", antialias=True, align_corners=False)
    draws, weight = len(t), weight.to(dev)
    out = []
    for image, texts in zip(images, candidates):
        if len(texts) == 1:
            out.append(0)
            continue
        prompts = [c for c in texts for _ in range(draws)]
        losses = decoder.loss(image[None].expand(len(prompts), -1, -1, -1).to(dev), decoder.text_states(prompts),
                              t.repeat(len(texts)).to(dev), noise.repeat(len(texts), 1, 1, 1).to(dev))
        out.append(int((losses.view(len(texts), draws) * weight).mean(1).argmin()))
    return out


def prefix_lengths(budget: int) -> list[int]:
    """The text lengths ``pick_lengths`` tries within a budget of ``budget`` tokens: 4, 8, every 8 from 16,
    and the budget itself, all <= budget. A budget's lengths include every smaller budget's."""
    if budget < 1:
        raise ValueError(f"a token budget must be >= 1, not {budget}")
    return sorted({n for n in (*SHORTEST, *range(16, budget, 8)) if n < budget} | {budget})


def pick_lengths(decoder, images: torch.Tensor, ids: list[list[int]], decode) -> list[list[int]]:
    """Each image's token ids (B rows of K ids) cut to the prefix the decoder picks among ``prefix_lengths(K)``
    (``--adaptive-length``): fewer words where more would make the decoder draw objects that are not there
    (``benchmarks/dev_adaptive``). ``decode``: ids -> the text the decoder reads."""
    if not ids:
        return []
    lengths = prefix_lengths(len(ids[0]))
    picks = decoder_pick(decoder, images, [[decode(row[:n]) for n in lengths] for row in ids])
    return [row[:lengths[k]] for row, k in zip(ids, picks)]
