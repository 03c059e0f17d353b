"""The one copy of the diffusion math: noising, loss target, sampling.

Every decoder adapter (built-in, Stable Diffusion) trains and samples through
these functions, with a diffusers scheduler supplying the noise schedule.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

# eps_fn(x_t (B,C,H,W), t (B,), cond (B,L,D)) -> model output (B,C,H,W)
ModelFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def training_target(scheduler, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """What the network must predict, by the scheduler's ``prediction_type``."""
    kind = scheduler.config.prediction_type
    if kind == "epsilon":
        return noise
    if kind == "v_prediction":
        return scheduler.get_velocity(x0, noise, t)
    if kind == "sample":
        return x0
    raise ValueError(f"unsupported prediction_type {kind!r}")


def epsilon_weight(scheduler, t: torch.Tensor) -> torch.Tensor:
    """Per-sample factor (B,) that turns ``denoising_loss`` at noise levels ``t`` into the squared error of the
    implied noise estimate (eps-space), whatever the ``prediction_type``: v-prediction's error times
    alpha_bar(t), x0-prediction's times alpha_bar / (1 - alpha_bar). Scored this way, every noise level weighs
    about alike when candidate texts are compared (the Diffusion Classifier's score, Li et al., ICCV 2023)."""
    alpha_bar = scheduler.alphas_cumprod.to(t.device)[t].float()
    kind = scheduler.config.prediction_type
    if kind == "epsilon":
        return torch.ones_like(alpha_bar)
    if kind == "v_prediction":
        return alpha_bar
    if kind == "sample":
        return alpha_bar / (1 - alpha_bar)
    raise ValueError(f"unsupported prediction_type {kind!r}")


def denoising_loss(model: ModelFn, scheduler, x0: torch.Tensor, cond: torch.Tensor, t: torch.Tensor,
                   noise: torch.Tensor) -> torch.Tensor:
    """Per-sample denoising loss (B,): the plain MSE to the target, in float32 as in diffusers' training
    recipe (unweighted: high noise levels, where layout and text are decided, keep their weight)."""
    x_t = scheduler.add_noise(x0, noise, t)  # (B,C,H,W)
    pred = model(x_t, t, cond)
    target = training_target(scheduler, x0, noise, t)
    return F.mse_loss(pred.float(), target.float(), reduction="none").mean(dim=(1, 2, 3))  # (B,)


def sample_timesteps(batch: int, t_min: int, t_max: int, generator: torch.Generator | None, device) -> torch.Tensor:
    """Uniform integer noise levels in [t_min, t_max] (inclusive), one per sample."""
    return torch.randint(t_min, t_max + 1, (batch,), generator=generator, device=device)


@torch.no_grad()
def sample(
    model: ModelFn,
    scheduler,
    shape: tuple[int, ...],
    cond: torch.Tensor,
    uncond: torch.Tensor | None,
    steps: int,
    guidance: float,
    generator: torch.Generator | None = None,
    progress: Callable | None = None,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """Ancestral sampling with classifier-free guidance; returns x0 in model space.

    ``scheduler`` is a sampling scheduler (DDIM or similar) built from the
    training schedule. Guidance ``1.0`` (or ``uncond=None``) disables CFG.
    ``noise`` (``shape``): the starting noise, instead of a draw from ``generator``
    (e.g. one draw shared by every row, ``explain.py``).
    """
    if noise is None:
        noise = torch.randn(shape, generator=generator, dtype=cond.dtype)
    x = noise.to(device=cond.device, dtype=cond.dtype)
    x = x * scheduler.init_noise_sigma
    scheduler.set_timesteps(steps)
    use_cfg = uncond is not None and guidance != 1.0
    timesteps = scheduler.timesteps
    for t in progress(timesteps) if progress else timesteps:
        x_in = scheduler.scale_model_input(x, t)
        tt = torch.full((shape[0],), int(t), device=cond.device, dtype=torch.long)
        if use_cfg:
            out = model(torch.cat([x_in, x_in]), torch.cat([tt, tt]), torch.cat([cond, uncond]))
            out_c, out_u = out.chunk(2)
            out = out_u + guidance * (out_c - out_u)
        else:
            out = model(x_in, tt, cond)
        x = scheduler.step(out, t, x, generator=generator).prev_sample
    return x
