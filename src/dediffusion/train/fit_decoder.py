"""Pretraining the built-in text-to-image decoder on (scene, web-like caption) pairs.

The shipped decoder is four phases of this trainer, one preset each (``configs/world_decoder.py``
gives the commands, cost and result); the defaults alone are the plain UNet without the layout readout:

    dediffusion pretrain-decoder --preset world_decoder_phase1 --out runs/world_decoder_phase1   # ... phase 4
"""
from __future__ import annotations

import functools
import pathlib
from dataclasses import dataclass, field

import numpy as np
import torch

from dediffusion.model import diffusion
from dediffusion.checkpoint import write_json
from dediffusion.config import to_dict
from dediffusion.model.decoders.builtin import BuiltinDecoder, BuiltinDecoderConfig
from dediffusion.model.decoders.text import TextConditioner
from dediffusion.data.world.batches import images_tensor, scenes
from dediffusion.data.world.scenes import noisy_caption, web_caption
from dediffusion.model.decoders import load_decoder
from dediffusion.train.loop import (EMA, copy_start_weights, has_train_state, load_train_state, read_train_state,
    run_training, step_generator)
from dediffusion.train.sources import Prefetch


@dataclass(frozen=True)
class DecoderTrainConfig:
    decoder: BuiltinDecoderConfig = field(default_factory=BuiltinDecoderConfig)
    steps: int = 8000
    batch_size: int = 32
    lr: float = 1e-3
    warmup: int = 200
    ema_decay: float = 0.999
    caption_dropout: float = 0.1  # empty prompt, for classifier-free guidance
    p_mention: float = 0.6  # each attribute is named in over half the captions
    noisy_captions: float = 0.0  # share of captions written as an encoder might (world.scenes.noisy_caption)
    high_noise_fraction: float = 0.0  # share of each batch drawn from t >= high_noise_from
    high_noise_from: int = 600  # where the layout is still hidden by noise, so only the text can tell it
    data_seed: int = 0  # training scenes; evaluation uses other seeds
    seed: int = 0
    checkpoint_every: int = 500
    device: str = "cpu"  # "cuda" on a GPU; batches are still built (deterministically) on the CPU
    workers: int = 0  # DataLoader processes building batches ahead of the model (useful beside a GPU)
    init_from: str | None = None  # a training folder (raw weights) or decoder folder a fresh run starts from


def _captions(batch, cfg: DecoderTrainConfig, step: int) -> list[str]:
    rng = np.random.default_rng([cfg.seed, step, 7])
    out = []
    for s in batch:
        if rng.random() < cfg.caption_dropout:
            out.append("")
        elif cfg.noisy_captions and rng.random() < cfg.noisy_captions:
            out.append(noisy_caption(s, rng, cfg.p_mention))
        else:
            out.append(web_caption(s, rng, cfg.p_mention))
    return out


def _timesteps(batch: int, cfg: DecoderTrainConfig, gen: torch.Generator) -> torch.Tensor:
    """Uniform noise levels, with the first ``high_noise_fraction`` of the batch from the high range.

    Object layout is decided at high noise, where only the text can tell it;
    over-sampling that range spends more of the budget on binding words to places.
    """
    t_max = cfg.decoder.num_train_timesteps - 1
    t = diffusion.sample_timesteps(batch, 0, t_max, gen, None)
    n_high = int(round(cfg.high_noise_fraction * batch))
    if n_high:
        t[:n_high] = diffusion.sample_timesteps(n_high, cfg.high_noise_from, t_max, gen, None)
    return t


def decoder_batch(cfg: DecoderTrainConfig, step: int, tokenize) -> tuple:
    """Batch number ``step`` as CPU tensors (images, token ids, t, noise); deterministic in (seed, step)."""
    batch = scenes(cfg.data_seed, step * cfg.batch_size, cfg.batch_size)
    images = images_tensor(batch, cfg.decoder.resolution)  # (B,3,R,R)
    gen = step_generator(cfg.seed, step)
    t = _timesteps(len(batch), cfg, gen)
    noise = torch.randn(images.shape, generator=gen)
    return images, tokenize(_captions(batch, cfg, step)), t, noise


def batch_loss(model: BuiltinDecoder, cfg: DecoderTrainConfig, batch: tuple) -> torch.Tensor:
    """Mean training loss of one ``decoder_batch``, on the model's device."""
    dev = model.token_embedding.device
    images, ids, t, noise = batch
    cond = model.text_states_from_ids(ids)
    return model.loss(images.to(dev), cond, t.to(dev), noise.to(dev)).mean()


class _Tokenizer(TextConditioner):
    """Just the decoder's ``tokenize``: what worker processes need, without the model's (GPU) weights."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer


def _batch_source(model: BuiltinDecoder, cfg: DecoderTrainConfig, start: int):
    """step -> batch: built in place, or ahead by ``cfg.workers`` DataLoader processes."""
    make = functools.partial(decoder_batch, cfg, tokenize=_Tokenizer(model.tokenizer).tokenize)
    return Prefetch(make, start, cfg.steps, cfg.workers) if cfg.workers else make


def _start_weights(model: BuiltinDecoder, folder: str) -> None:
    """Copy saved weights (same architecture) into ``model`` before a fresh run: a training folder's
    raw parameters (where training left off), else a decoder folder's exported (EMA) weights."""
    if has_train_state(folder):
        saved = {k: v.float() for k, v in read_train_state(folder)[1]["params"].items()}
    else:
        saved = load_decoder(folder).state_dict()
    copy_start_weights(model.state_dict(), saved, folder)


def pretrain_decoder(cfg: DecoderTrainConfig, out, resume: bool = False, progress: bool = True,
                     stop_at: int | None = None) -> BuiltinDecoder:
    """Train, checkpointing to ``out`` every ``checkpoint_every`` steps; EMA weights are exported."""
    out = pathlib.Path(out)
    model = BuiltinDecoder(cfg.decoder)
    if cfg.init_from:
        _start_weights(model, cfg.init_from)
    model.to(cfg.device).train()
    params = dict(model.named_parameters())
    opt = torch.optim.AdamW(params.values(), lr=cfg.lr, weight_decay=0.0)
    ema = EMA(params, cfg.ema_decay)
    start = 0
    if resume and has_train_state(out):
        start = load_train_state(out, params, ema, opt)["step"]
    write_json(out / "train_config.json", {"kind": "decoder", "config": to_dict(cfg)})
    next_batch = _batch_source(model, cfg, start)

    def step_fn(step):
        loss = batch_loss(model, cfg, next_batch(step))
        return loss, {"loss": loss.item()}

    run_training(name="decoder", out=out, step_fn=step_fn, params=params, opt=opt, steps=cfg.steps, start=start,
                 lr=cfg.lr, warmup=cfg.warmup, checkpoint_every=cfg.checkpoint_every, ema=ema, progress=progress,
                 stop_at=stop_at, save_model=lambda: model.save(out, dtype=torch.float32, weights=ema.shadow))
    return model
