"""Pretraining the built-in text-to-image decoder on (scene, web-like caption) pairs.

Reproduce the shipped decoder (see README for wall time on 2 CPU cores):

    dediffusion pretrain-decoder --out runs/decoder
"""
from __future__ import annotations

import dataclasses
import pathlib
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import diffusion
from ..checkpoint import write_json
from ..config import from_dict, to_dict
from ..decoders.builtin import BuiltinDecoder, BuiltinDecoderConfig
from ..world.data import images_tensor, scenes
from ..world.scenes import web_caption
from .loop import EMA, has_train_state, load_train_state, lr_at, save_train_state, step_generator


@dataclass(frozen=True)
class DecoderTrainConfig:
    decoder: BuiltinDecoderConfig = field(default_factory=BuiltinDecoderConfig)
    steps: int = 5000
    batch_size: int = 32
    lr: float = 1e-3
    warmup: int = 200
    ema_decay: float = 0.999
    caption_dropout: float = 0.1  # empty prompt, for classifier-free guidance
    p_mention: float = 0.6  # each attribute is named in over half the captions
    min_snr_gamma: float | None = None  # plain v-loss: high noise levels (layout, text) keep their weight
    data_seed: int = 0  # training scenes; evaluation uses other seeds
    seed: int = 0
    checkpoint_every: int = 500


def _captions(batch, cfg: DecoderTrainConfig, step: int) -> list[str]:
    rng = np.random.default_rng([cfg.seed, step, 7])
    return ["" if rng.random() < cfg.caption_dropout else web_caption(s, rng, cfg.p_mention) for s in batch]


def decoder_step(model: BuiltinDecoder, cfg: DecoderTrainConfig, step: int) -> torch.Tensor:
    """Mean training loss of batch number ``step`` (deterministic in (seed, step))."""
    batch = scenes(cfg.data_seed, step * cfg.batch_size, cfg.batch_size)
    images = images_tensor(batch, cfg.decoder.resolution)
    gen = step_generator(cfg.seed, step)
    t = diffusion.sample_timesteps(len(batch), 0, cfg.decoder.num_train_timesteps - 1, gen, images.device)
    noise = torch.randn(images.shape, generator=gen)
    cond = model.text_states(_captions(batch, cfg, step))
    return model.loss(images, cond, t, noise, cfg.min_snr_gamma).mean()


def pretrain_decoder(cfg: DecoderTrainConfig, out, resume: bool = False, progress: bool = True,
                     stop_at: int | None = None) -> BuiltinDecoder:
    """Train, checkpointing to ``out`` every ``checkpoint_every`` steps; EMA weights are exported."""
    out = pathlib.Path(out)
    model = BuiltinDecoder(cfg.decoder)
    model.train()
    params = dict(model.named_parameters())
    opt = torch.optim.AdamW(params.values(), lr=cfg.lr, weight_decay=0.0)
    ema = EMA(params, cfg.ema_decay)
    start = 0
    if resume and has_train_state(out):
        start = load_train_state(out, params, ema, opt)["step"]
    write_json(out / "train_config.json", {"kind": "decoder", "config": to_dict(cfg)})
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, disable=not progress, desc="decoder")
    t0, losses = time.time(), []
    for step in bar:
        for g in opt.param_groups:
            g["lr"] = lr_at(step, cfg.lr, cfg.warmup, cfg.steps)
        loss = decoder_step(model, cfg, step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params.values(), 1.0)
        opt.step()
        ema.update(params)
        losses.append(loss.item())
        bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}")
        stopping = stop_at is not None and step + 1 >= stop_at
        if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps or stopping:
            save_train_state(out, step + 1, params, ema, opt, {"loss": float(np.mean(losses[-50:])),
                                                               "seconds": time.time() - t0})
            model.save(out, dtype=torch.float32, weights=ema.shadow)
        if stopping:  # time-sliced runs: continue later with resume
            break
    return model


def load_train_config(data: dict) -> DecoderTrainConfig:
    return from_dict(DecoderTrainConfig, data)


__all__ = ["DecoderTrainConfig", "decoder_step", "pretrain_decoder", "load_train_config", "dataclasses"]
