"""Training the De-Diffusion encoder against a frozen decoder, on images only.

Reproduce the shipped encoder (wall time on 2 CPU cores in the README):

    dediffusion train --out runs/encoder

Paper, Sec. 3: decoder frozen, one random noise level per sample, Gumbel
temperature annealed 2.0 -> 0.3, lr warm-up then cosine decay.
"""
from __future__ import annotations

import pathlib
from dataclasses import dataclass, field

import torch

from .. import diffusion
from ..autoencoder import DeDiffusion, DeDiffusionConfig, weights_sha256
from ..checkpoint import write_json
from ..config import to_dict
from ..decoders import copy_decoder, load_decoder
from ..pretrained import resolve, shipped_ref
from ..text_head import TextHeadConfig, temperature
from ..world.data import images_tensor, scenes
from ..world.scenes import vocabulary_words
from .loop import has_train_state, load_train_state, run_training, step_generator


def world_model_config() -> DeDiffusionConfig:
    """Defaults for the embedded world: the head emits only the words the built-in decoder was trained on."""
    return DeDiffusionConfig(head=TextHeadConfig(vocab="allow_list"), allow_words=tuple(vocabulary_words()))


@dataclass(frozen=True)
class EncoderTrainConfig:
    model: DeDiffusionConfig = field(default_factory=world_model_config)
    decoder: str = ""  # decoder folder; empty: the shipped built-in decoder
    backbone: str = "shipped:backbone"  # pretrained weights for the attribute_cnn backbone
    steps: int = 1000
    batch_size: int = 32
    lr: float = 1e-3
    warmup: int = 100
    weight_decay: float = 0.01  # paper: decoupled weight decay 0.01
    t_min: int = 200  # low noise levels carry no text information
    t_max: int = 999
    data_seed: int = 0
    seed: int = 0
    checkpoint_every: int = 250


def encoder_step(model: DeDiffusion, cfg: EncoderTrainConfig, step: int):
    batch = scenes(cfg.data_seed, step * cfg.batch_size, cfg.batch_size)
    images = images_tensor(batch, model.decoder.resolution)
    gen = step_generator(cfg.seed, step)
    t = diffusion.sample_timesteps(len(batch), cfg.t_min, cfg.t_max, gen, images.device)
    noise = torch.randn(images.shape, generator=gen)
    head = cfg.model.head
    tau = temperature(step, cfg.steps, head)
    hard = head.estimator == "straight_through" or step >= head.hard_from * cfg.steps
    return model(images, tau, t, noise, generator=gen, hard=hard)


def decoder_reference(decoder_folder, out) -> str:
    """What the encoder's config records: ``shipped:decoder``, or a copy inside ``out`` (configs may not
    point outside their folder, so a finished run folder is self-contained and can be moved)."""
    ref = shipped_ref(decoder_folder)
    if ref is None:
        copy_decoder(decoder_folder, pathlib.Path(out) / "decoder")
        ref = "decoder"
    return ref


def build_model(cfg: EncoderTrainConfig, decoder_folder, decoder_ref: str | None = None) -> DeDiffusion:
    ref = str(decoder_folder) if decoder_ref is None else decoder_ref
    model_cfg = DeDiffusionConfig(**{**cfg.model.__dict__, "decoder_path": ref,
                                     "decoder_sha256": weights_sha256(decoder_folder),
                                     "train_seed": cfg.data_seed})
    torch.manual_seed(cfg.seed)
    model = DeDiffusion(model_cfg, load_decoder(decoder_folder))
    if cfg.model.encoder.backbone == "attribute_cnn":
        model.encoder.backbone.load_pretrained(resolve(cfg.backbone, "backbone"))
    return model


def train_encoder(cfg: EncoderTrainConfig, out, decoder_folder, resume: bool = False, progress: bool = True,
                  stop_at: int | None = None) -> DeDiffusion:
    """Train and checkpoint to ``out``; the decoder is never updated."""
    out = pathlib.Path(out)
    model = build_model(cfg, decoder_folder, decoder_reference(decoder_folder, out)).train()
    params = {k: p for k, p in model.named_parameters() if p.requires_grad}
    opt = torch.optim.AdamW(params.values(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    start = load_train_state(out, params, None, opt)["step"] if resume and has_train_state(out) else 0
    write_json(out / "train_config.json", {"kind": "encoder", "config": to_dict(cfg)})
    run_training(name="encoder", out=out, step_fn=lambda step: encoder_step(model, cfg, step), params=params, opt=opt,
                 steps=cfg.steps, start=start, lr=cfg.lr, warmup=cfg.warmup, checkpoint_every=cfg.checkpoint_every,
                 progress=progress, stop_at=stop_at, save_model=lambda: model.save(out, dtype=torch.float32))
    return model
