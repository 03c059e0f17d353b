"""Per-image prompt optimisation: the baseline that De-Diffusion's encoder amortises.

For each image a discrete prompt of N tokens is searched directly through the
frozen decoder's denoising loss (the PEZ / prompt-inversion family), with the
same relaxation as the encoder's text head (paper, Sec. 3): free logits over
the allowed vocabulary, Gumbel-softmax samples whose temperature is annealed
2.0 -> 0.3, soft tokens multiplied into the decoder's token-embedding table,
noise levels t in [200, 999]. The result is the argmax token at every position.

Images of a batch are optimised in parallel, each with its own logits: the
loss is the *sum* of per-image losses and Adam is per element, so an image's
update never depends on the others (only the random draws are shared streams).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from . import diffusion
from .decoders import freeze
from .text_head import TextHeadConfig, gumbel_softmax, temperature
from .tokenizer import decode_ids


@dataclass(frozen=True)
class InvertConfig:
    steps: int = 300
    num_tokens: int = 0  # 0: the encoder's length (a fair comparison uses the same budget)
    lr: float = 0.1  # Adam on the logits
    tau_start: float = 2.0  # the text head's schedule (paper, Sec. 3)
    tau_end: float = 0.3
    t_min: int = 200  # as in encoder training: low noise levels carry no text information
    t_max: int = 999
    init_std: float = 1.0  # random logits: a uniform start would tie every argmax
    batch_size: int = 16
    seed: int = 0


def _optimise(decoder, table: torch.Tensor, images: torch.Tensor, n: int, cfg: InvertConfig,
              gen: torch.Generator, bar=None) -> torch.Tensor:
    """Logits (B, n, A) after ``cfg.steps`` Adam steps for one batch of images (B,3,H,W)."""
    b = len(images)
    logits = (torch.randn(b, n, len(table), generator=gen) * cfg.init_std).to(images.device).requires_grad_(True)
    opt = torch.optim.Adam([logits], lr=cfg.lr)
    sched = TextHeadConfig(tau_start=cfg.tau_start, tau_end=cfg.tau_end)
    for step in range(cfg.steps):
        tau = temperature(step, cfg.steps, sched)
        weights = gumbel_softmax(logits, tau, hard=False, generator=gen)  # (B,n,A)
        cond = decoder.text_states_from_embeds(weights @ table)  # (B,L,D)
        t = diffusion.sample_timesteps(b, cfg.t_min, cfg.t_max, gen, "cpu").to(images.device)
        noise = torch.randn(decoder.latent_shape(b), generator=gen).to(images.device)
        loss = decoder.loss(images, cond, t, noise).sum()  # sum: each image's gradient is its own
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item() / b:.4f}", tau=f"{tau:.2f}", refresh=False)
    return logits.detach()


def invert(decoder, allowed: torch.Tensor, images: torch.Tensor, cfg: InvertConfig = InvertConfig(),
           num_tokens: int = 24, progress: bool = False) -> torch.Tensor:
    """Images (B,3,H,W) in [0,1] -> optimised vocabulary ids (B, N) drawn from ``allowed`` (A,).

    ``cfg.num_tokens`` (if set) overrides ``num_tokens``. The decoder is frozen
    (no gradients reach it); only the per-image logits are optimised.
    """
    freeze(decoder)
    n = cfg.num_tokens or num_tokens
    allowed = allowed.to(images.device)
    out = []
    gen = torch.Generator().manual_seed(cfg.seed)
    batches = range(0, len(images), cfg.batch_size)
    with torch.enable_grad(), tqdm(total=len(batches) * cfg.steps, disable=not progress, desc="invert") as bar:
        table = decoder.token_embedding[allowed].detach().float()  # (A,D) the allowed rows only
        for i in batches:
            logits = _optimise(decoder, table, images[i : i + cfg.batch_size], n, cfg, gen, bar)
            out.append(allowed[logits.argmax(-1)])
    return torch.cat(out)


def invert_texts(model, images: torch.Tensor, cfg: InvertConfig = InvertConfig(), progress: bool = False) -> list[str]:
    """Optimised prompts for a De-Diffusion model's decoder, vocabulary and (by default) token count."""
    ids = invert(model.decoder, model.head.allowed_ids, images, cfg, model.cfg.encoder.num_tokens, progress)
    return [decode_ids(model.decoder.tokenizer, row) for row in ids]


@torch.no_grad()
def prompt_loss(decoder, images: torch.Tensor, ids: torch.Tensor | list, reps: int = 8, seed: int = 123,
                t_min: int = 200, t_max: int = 999) -> torch.Tensor:
    """Mean denoising loss per image (B,) given hard token ids, over ``reps`` fixed (t, noise) draws."""
    ids = ids.tolist() if torch.is_tensor(ids) else ids
    cond = decoder.text_states_from_ids(ids)
    gen = torch.Generator().manual_seed(seed)
    total = torch.zeros(len(images))
    for _ in range(reps):
        t = diffusion.sample_timesteps(len(images), t_min, t_max, gen, "cpu").to(images.device)
        noise = torch.randn(decoder.latent_shape(len(images)), generator=gen).to(images.device)
        total += decoder.loss(images, cond, t, noise).cpu()
    return total / reps
