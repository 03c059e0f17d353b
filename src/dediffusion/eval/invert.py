"""Per-image prompt optimisation: the baseline that De-Diffusion's encoder amortises.

For each image a discrete prompt of N tokens is searched directly through the
frozen decoder's denoising loss (the PEZ / prompt-inversion family), with the
same relaxation as the encoder's text head (paper, Sec. 3): free logits over
the allowed vocabulary, Gumbel-softmax samples whose temperature is annealed
2.0 -> 0.3, soft tokens multiplied into the decoder's token-embedding table,
noise levels t in [200, 999]. The result is the argmax token at every position.

"Amortised + refined" (``init="encoder"``): the logits start at the encoder's,
so 0 steps give the encoder's text and k steps refine it, at a low temperature
and with less noise so that the first steps do not scramble it.

The result is each image's best *hard* text seen: the argmax at the start and every ``select_every``
steps is scored by the decoder loss on a fixed set of (t, noise) draws of its own stream (the
optimisation's draws are untouched), and the lowest-scoring text is kept, so refining never returns
a text that scores worse than the one it started from on those draws (issue 13: with encoder v12,
30 steps from the encoder's text raised the loss of the last iterate on 16 scenes, 0.0240 -> 0.0264).

Images of a batch are optimised in parallel, each with its own logits: the
loss is the *sum* of per-image losses and Adam is per element, so an image's
update never depends on the others (only the random draws are shared streams).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from dediffusion.model import diffusion
from dediffusion.model.decoders import freeze
from dediffusion.model.encoder import EncoderConfig
from dediffusion.model.text_head import TextHeadConfig, gumbel_noise, gumbel_softmax, temperature
from dediffusion.model.tokenizer import decode_ids


@dataclass(frozen=True)
class InvertConfig:
    steps: int = 300
    num_tokens: int = 0  # 0: the encoder's length (a fair comparison uses the same budget)
    init: str = "random"  # "random" logits, or "encoder": refine the encoder's text (amortised + refined)
    lr: float = 0.1  # Adam on the logits
    # None: by init. From random logits the text head's schedule, 2.0 -> tau_end, full Gumbel noise
    # (paper, Sec. 3). From the encoder's logits tau_end throughout and noise x0.3 (the shipped
    # head's training noise): measured on 16 scenes, 30 steps with the paper's schedule end at the
    # encoder's decoder loss (0.054 vs 0.053), with these at 0.040 (issue 13)
    tau_start: float | None = None
    tau_end: float = 0.3
    noise_scale: float | None = None  # multiplies the Gumbel noise of the relaxed samples
    t_min: int = 200  # as in encoder training: low noise levels carry no text information
    t_max: int = 999
    init_std: float = 1.0  # random logits: a uniform start would tie every argmax
    batch_size: int = 16
    seed: int = 0
    select_every: int = 10  # score the argmax text every k steps (and at 0 and the end); 0: the last step's
    select_draws: int = 8  # (t, noise) draws of the fixed scoring set (4 picked worse texts with encoder v14)

    def schedule(self) -> tuple[float, float]:
        """(tau_start, noise_scale) with the by-init defaults filled in."""
        refine = self.init == "encoder"
        tau_start = self.tau_start if self.tau_start is not None else self.tau_end if refine else 2.0
        noise = self.noise_scale if self.noise_scale is not None else 0.3 if refine else 1.0
        return tau_start, noise


def _optimise(decoder, table: torch.Tensor, images: torch.Tensor, start: torch.Tensor, cfg: InvertConfig,
              gen: torch.Generator, bar=None, keeper: "_BestText | None" = None) -> torch.Tensor:
    """Logits (B, n, A) after ``cfg.steps`` Adam steps from ``start`` (B, n, A) for images (B,3,H,W);
    with a ``keeper``, each image's best-scoring logits seen (at 0, every ``select_every`` steps, the end)."""
    b = len(images)
    logits = start.detach().float().clone().to(images.device).requires_grad_(True)
    opt = torch.optim.Adam([logits], lr=cfg.lr)
    tau_start, noise_scale = cfg.schedule()
    sched = TextHeadConfig(tau_start=tau_start, tau_end=cfg.tau_end)
    for step in range(cfg.steps):
        if keeper is not None and step % cfg.select_every == 0:
            keeper.offer(logits)
        tau = temperature(step, cfg.steps, sched)
        weights = gumbel_softmax(logits, tau, hard=False, generator=gen, noise_scale=noise_scale)  # (B,n,A)
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
    if keeper is None:
        return logits.detach()
    keeper.offer(logits)
    return keeper.best


class _BestText:
    """Each image's best argmax text so far, scored by ``prompt_loss`` on the same fixed draws every time
    (seed ``cfg.seed + 7919``: a stream of its own, so the optimisation's draws are unchanged)."""

    def __init__(self, decoder, allowed: torch.Tensor, images: torch.Tensor, cfg: InvertConfig):
        self.decoder, self.allowed, self.images, self.cfg = decoder, allowed, images, cfg
        self.best, self.score = None, None

    def offer(self, logits: torch.Tensor) -> None:
        cfg = self.cfg
        score = prompt_loss(self.decoder, self.images, self.allowed[logits.argmax(-1)], reps=cfg.select_draws,
                            seed=cfg.seed + 7919, t_min=cfg.t_min, t_max=cfg.t_max)
        if self.best is None:
            self.best, self.score = logits.detach().clone(), score
            return
        better = (score < self.score).to(logits.device)
        self.best = torch.where(better[:, None, None], logits.detach(), self.best)
        self.score = torch.minimum(score, self.score)


def invert(decoder, allowed: torch.Tensor, images: torch.Tensor, cfg: InvertConfig = InvertConfig(),
           num_tokens: int = EncoderConfig.num_tokens, progress: bool = False,
           start: torch.Tensor | None = None) -> torch.Tensor:
    """Images (B,3,H,W) in [0,1] -> optimised vocabulary ids (B, N) drawn from ``allowed`` (A,).

    ``cfg.num_tokens`` (if set) overrides ``num_tokens``. The logits start random, or at ``start``
    (B, N, A) when ``cfg.init == "encoder"`` (see ``encoder_logits``). The decoder is frozen (no
    gradients reach it); only the per-image logits are optimised.
    """
    if cfg.init not in ("random", "encoder"):
        raise ValueError(f"unknown init {cfg.init!r}; expected 'random' or 'encoder'")
    if (start is None) != (cfg.init == "random"):
        raise ValueError("init='encoder' needs the starting logits (start=...); init='random' takes none")
    freeze(decoder)
    n = start.shape[1] if start is not None else cfg.num_tokens or num_tokens
    allowed = allowed.to(images.device)
    out = []
    gen = torch.Generator().manual_seed(cfg.seed)
    batches = range(0, len(images), cfg.batch_size)
    with torch.enable_grad(), tqdm(total=len(batches) * cfg.steps, disable=not progress, desc="invert") as bar:
        table = decoder.token_embedding[allowed].detach().float()  # (A,D) the allowed rows only
        for i in batches:
            chunk = images[i : i + cfg.batch_size]
            if start is None:
                init = torch.randn(len(chunk), n, len(allowed), generator=gen) * cfg.init_std
            else:
                init = start[i : i + cfg.batch_size]
            keeper = _BestText(decoder, allowed, chunk, cfg) if cfg.select_every > 0 else None
            logits = _optimise(decoder, table, chunk, init, cfg, gen, bar, keeper)
            out.append(allowed[logits.argmax(-1)])
    return torch.cat(out)


@torch.no_grad()
def encoder_logits(model, images: torch.Tensor, batch: int = 64) -> torch.Tensor:
    """Starting logits (B, N, A) whose argmax is the encoder's text, ``model.token_ids(images)``.

    ``head.inference == "sample"`` picks argmax(logits / T + g) for one fixed Gumbel draw g (N, A);
    the start is then logits + T * g: the same argmax at the encoder's own logit scale.
    """
    head = model.head
    if head.cfg.lm_fusion:
        raise ValueError("invert --init encoder starts from per-position choices; this encoder's texts use "
                         f"head.lm_fusion={head.cfg.lm_fusion} (a language-model search): set it to 0")
    logits = torch.cat([model.forward_encoder(images[i : i + batch]) for i in range(0, len(images), batch)]).float()
    start = logits
    if head.cfg.inference == "sample":
        gen, t = torch.Generator().manual_seed(head.cfg.sample_seed), head.cfg.sample_temperature
        start = (logits / t + gumbel_noise(logits.shape[-2:], gen, logits.device)) * t
    if not torch.equal(start.argmax(-1), head.choice(logits)):  # TextHead.choice changed: update this copy
        raise ValueError(f"cannot start from the encoder's text for head.inference={head.cfg.inference!r}")
    return start


def invert_texts(model, images: torch.Tensor, cfg: InvertConfig = InvertConfig(), progress: bool = False) -> list[str]:
    """Optimised prompts for a De-Diffusion model's decoder, vocabulary and (by default) token count;
    with ``cfg.init == "encoder"`` the encoder's own text refined (the tokens it emits: ``head.inference_tokens``)."""
    n = model.cfg.head.inference_tokens or model.cfg.encoder.num_tokens
    if cfg.init == "encoder" and cfg.num_tokens not in (0, n):
        raise ValueError(f"init='encoder' refines the encoder's {n} tokens; num_tokens={cfg.num_tokens} differs")
    start = encoder_logits(model, images)[:, :n] if cfg.init == "encoder" else None
    ids = invert(model.decoder, model.head.allowed_ids, images, cfg, n, progress, start)
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
