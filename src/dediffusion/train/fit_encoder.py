"""Training the De-Diffusion encoder against a frozen decoder, on images only.

The shipped encoder is two stages, one preset each (``configs/world_encoder.py``: the defaults, then
``configs/world_encoder_stretch.py``; their docstrings give the commands, cost and result):

    dediffusion train --preset world_encoder --out runs/world_encoder

Photos instead of the embedded world: ``--data FOLDERS_OR_SHARDS`` (``train/sources.py``).

Several processes (``distributed.py``): ``torchrun --nproc-per-node N -m
dediffusion.cli train ...``; each step's global batch is split into one
micro-batch per process, and a run gives the same result as one process
with ``micro_batches=N``.

Paper, Sec. 3: decoder frozen, one random noise level per sample, Gumbel
temperature annealed 2.0 -> 0.3, lr warm-up then cosine decay.
"""
from __future__ import annotations

import os
import pathlib
from dataclasses import dataclass, field

import torch

from dediffusion.model import diffusion
from dediffusion.model.autoencoder import DeDiffusion, DeDiffusionConfig, caption_prior
from dediffusion.checkpoint import load_tensors, read_json, safe_child, write_json
from dediffusion.config import to_dict
from dediffusion.data.world.scenes import vocabulary_words
from dediffusion.model.decoders import copy_decoder, fingerprint, is_diffusers_ref, load_decoder
from dediffusion.pretrained import resolve, shipped_ref
from dediffusion.model.text_head import TextHeadConfig, temperature
from dediffusion import distributed
from dediffusion.train.sources import DataConfig, WorldSource, check_resume_data, make_source
from dediffusion.train.defaults import check_resume_decoder, warn_world_only
from dediffusion.train.feature_cache import FeatureCache
from dediffusion.train.loop import copy_start_weights, has_train_state, load_train_state, run_training, step_generator


def world_model_config() -> DeDiffusionConfig:
    """Defaults for the embedded world: the shipped encoder's recipe (docs/strong_text.md).

        dediffusion train --out runs/encoder      # 2,000 steps at batch 32: ~26 min on one busy CPU thread

    The head emits only the words the built-in decoder was trained on (function words included; a
    content-words-only vocabulary scored lower on the dev seed). Where the paper is silent or its
    500K-step schedule is out of reach, these are what worked in a few thousand CPU steps:
    straight-through Gumbel (hard tokens in the forward pass) with the Gumbel noise scaled by 0.3 and
    annealed with the temperature (``noise_anneal``: late training optimises the argmax text that
    inference emits), logits x4, and wav2vec 2.0's batch-diversity loss against collapse to one
    text. 32 tokens, trained with TailDrop (``EncoderTrainConfig.tail_drop``) so that any prefix is
    a text: ``--tokens K`` picks the budget. Inference is the paper's argmax.
    """
    head = TextHeadConfig(vocab="allow_list", estimator="straight_through", diversity_weight=0.1, inference="argmax",
                          noise_scale=0.3, noise_anneal=True, logit_scale=4.0, sample_temperature=0.3)
    return DeDiffusionConfig(head=head, allow_words=tuple(vocabulary_words()))


@dataclass(frozen=True)
class EncoderTrainConfig:
    model: DeDiffusionConfig = field(default_factory=world_model_config)
    decoder: str = ""  # decoder folder or Stable Diffusion folder / hub id; empty: the shipped built-in decoder
    backbone: str = "shipped:backbone"  # pretrained weights for the attribute_cnn backbone
    steps: int = 2000  # the shipped encoder (64,000 images)
    batch_size: int = 32  # the global batch, over all processes
    lr: float = 1e-3
    warmup: int = 100
    weight_decay: float = 0.01  # paper: decoupled weight decay 0.01
    t_min: int = 200  # low noise levels carry no text information
    t_max: int = 999
    data_seed: int = 0
    seed: int = 0
    checkpoint_every: int = 500
    micro_batches: int = 0  # parts of the global batch, each with its own noise stream; 0: one per process
    device: str = "cpu"  # "cuda": under torchrun each process takes cuda:LOCAL_RANK
    tail_drop: float = 0.5  # TailDrop (ViLex): share of images whose text is cut to a random length (tail_min..N)
    tail_min: int = 1
    init_from: str = ""  # an encoder folder (encoder.safetensors, same architecture) a fresh run starts from
    cache_features: str = ""  # folder of the frozen backbone's features, reused across epochs/runs (feature_cache.py)
    data: DataConfig = field(default_factory=DataConfig)  # image folders / shards (train/sources.py); none: the world


def micro_batch_parts(cfg: EncoderTrainConfig, world: int) -> int:
    parts = cfg.micro_batches or world
    if parts < 1 or cfg.batch_size % parts:
        raise ValueError(f"batch_size {cfg.batch_size} does not split into {parts} micro-batches")
    if world > 1 and parts != world:
        raise ValueError(f"with {world} processes micro_batches must be 0 or {world} (one per process), not {parts}")
    return parts


def micro_batch(decoder, cfg: EncoderTrainConfig, step: int, part: int, parts: int, device, source):
    """Images, noise levels, noise and generator of micro-batch ``part`` of step ``step``.

    All of it depends only on (seeds, step, part), never on which process draws it. ``source``:
    where images come from (``train/sources.py``).
    """
    size = cfg.batch_size // parts
    images = source.images(step, part, parts)
    gen = step_generator(cfg.seed, step, part)
    t = diffusion.sample_timesteps(size, cfg.t_min, cfg.t_max, gen, "cpu")
    noise = torch.randn(decoder.latent_shape(size), generator=gen)  # latent-shaped (pixels for the built-in)
    return images.to(device), t.to(device), noise.to(device), gen


def tail_lengths(cfg: EncoderTrainConfig, size: int, gen: torch.Generator) -> torch.Tensor | None:
    """TailDrop (Wang et al., ViLex, CVPR 2025): per image, how many leading tokens the decoder sees.

    A ``tail_drop`` share of the images keeps a uniform random length in [tail_min, N], the rest all N,
    so the first tokens must carry the most and any prefix is a usable text. None when off.
    """
    if cfg.tail_drop <= 0:
        return None
    n = cfg.model.encoder.num_tokens
    if not 1 <= cfg.tail_min <= n:
        raise ValueError(f"tail_min={cfg.tail_min} must be in 1..num_tokens={n}")
    cut = torch.randint(cfg.tail_min, n + 1, (size,), generator=gen)
    drop = torch.rand(size, generator=gen) < cfg.tail_drop
    return torch.where(drop, cut, torch.full_like(cut, n))


def encoder_step(model: DeDiffusion, cfg: EncoderTrainConfig, step: int, parts: range | None = None,
                 n_parts: int = 1, forward=None, device="cpu", source=None, cache=None):
    """Mean loss and logs over this process's micro-batches ``parts`` (of ``n_parts``) of step ``step``.

    ``forward`` is the (DDP-wrapped) model to call; ``model`` gives the decoder. ``source``: where images
    come from (``train/sources.py``; default: the embedded world). ``cache``: a ``FeatureCache`` that gives
    the frozen backbone's features instead of running it.
    """
    forward = forward or model
    source = source or WorldSource(cfg.batch_size, model.decoder.resolution, cfg.data_seed)
    tau = temperature(step, cfg.steps, cfg.model.head)
    losses, logs = [], []
    for part in parts or range(n_parts):
        images, t, noise, gen = micro_batch(model.decoder, cfg, step, part, n_parts, device, source)
        lengths = tail_lengths(cfg, len(images), gen)
        feats = cache.features(source.keys(step, part, n_parts), images, model.encoder) if cache else None
        loss, log = forward(images, tau, t, noise, generator=gen, lengths=lengths, features=feats)
        losses.append(loss)
        logs.append(log)
    if len(losses) == 1:
        return losses[0], logs[0]
    return torch.stack(losses).mean(), {k: sum(lg[k] for lg in logs) / len(logs) for k in logs[0]}


def decoder_reference(decoder_folder, out, write: bool = True) -> str:
    """What the encoder's config records, so that a finished run folder is self-contained and can be moved.

    ``shipped:decoder``; a built-in decoder is copied to ``out/decoder`` (a few MB; configs may
    not point outside their folder); Stable Diffusion is never copied (GBs): a hub id is recorded
    as given, a local diffusers folder as its absolute path, which loading reads only when it is
    given again (``--decoder``). ``write``: False in all processes but the main one.
    """
    ref = shipped_ref(decoder_folder)
    if ref is not None:
        return ref
    if is_diffusers_ref(decoder_folder):
        local = pathlib.Path(str(decoder_folder)).is_dir()
        return os.path.abspath(str(decoder_folder)) if local else str(decoder_folder)
    if write:
        copy_decoder(decoder_folder, pathlib.Path(out) / "decoder")
    return "decoder"


def build_model(cfg: EncoderTrainConfig, decoder_folder, decoder_ref: str | None = None) -> DeDiffusion:
    """``decoder_ref``: what the config records as ``decoder_path`` (default: ``decoder_folder`` as given)."""
    decoder = load_decoder(decoder_folder, cfg.model.sd)  # first: a hub model is then cached and can be hashed
    ref = str(decoder_folder) if decoder_ref is None else decoder_ref
    model_cfg = DeDiffusionConfig(**{**cfg.model.__dict__, "decoder_path": ref,
                                     "decoder_sha256": fingerprint(decoder_folder),
                                     "train_seed": cfg.data_seed})
    torch.manual_seed(cfg.seed)  # after loading: the encoder's init never depends on what loaders draw
    model = DeDiffusion(model_cfg, decoder)
    if cfg.model.encoder.backbone == "attribute_cnn":
        model.encoder.backbone.load_pretrained(resolve(cfg.backbone, "backbone"))
    if cfg.model.head.bigram_weight:
        model.text_prior = caption_prior(model)  # before any DDP wrapper, so every rank has it
    return model


def start_weights(model: DeDiffusion, folder) -> None:
    """Copy a trained encoder's weights (encoder + head; same architecture) into ``model`` before a
    fresh run, e.g. to continue a short run under another schedule or on other data."""
    saved = load_tensors(safe_child(resolve(folder, "encoder"), "encoder.safetensors"), None)
    copy_start_weights(model.trainable_state(), saved, folder)


def train_encoder(cfg: EncoderTrainConfig, out, decoder_folder, resume: bool = False, progress: bool = True,
                  stop_at: int | None = None) -> DeDiffusion:
    """Train and checkpoint to ``out``; the decoder is never updated. Under torchrun: one process each."""
    out = pathlib.Path(out)
    if resume and (out / "train_config.json").is_file():
        check_resume_data(read_json(out / "train_config.json").get("config", {}).get("data", {}), cfg.data)
    if resume:  # the same decoder weights as before: encoder.json records their SHA-256
        check_resume_decoder(out, fingerprint(decoder_folder))
    warn_world_only(cfg.model, decoder_folder)
    d = distributed.setup(cfg.device)
    n_parts = micro_batch_parts(cfg, d.world)
    parts = range(d.rank * n_parts // d.world, (d.rank + 1) * n_parts // d.world)
    ref = decoder_reference(decoder_folder, out, write=d.main)
    model = build_model(cfg, decoder_folder, ref).to(d.device).train()
    forward = distributed.wrap(model, d)
    params = {k: p for k, p in model.named_parameters() if p.requires_grad}
    opt = torch.optim.AdamW(params.values(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    start = load_train_state(out, params, None, opt)["step"] if resume and has_train_state(out) else 0
    if cfg.init_from and start == 0:
        start_weights(model, cfg.init_from)
    last = min(cfg.steps, stop_at) if stop_at is not None else cfg.steps
    source = make_source(cfg.data, cfg.batch_size, model.decoder.resolution, cfg.data_seed, start, last)
    cache = FeatureCache(cfg.cache_features, model.encoder, model.decoder.resolution, d.rank) \
        if cfg.cache_features else None  # --cache-features DIR; refuses a backbone that trains
    if d.main:
        write_json(out / "train_config.json", {"kind": "encoder", "config": to_dict(cfg)})

    def step_fn(step):
        loss, logs = encoder_step(model, cfg, step, parts, n_parts, forward, d.device, source, cache)
        return loss, {**logs, "loss": distributed.mean(logs["loss"], d)}  # the global batch's loss

    run_training(name="encoder", out=out, step_fn=step_fn, params=params, opt=opt, steps=cfg.steps, start=start,
                 lr=cfg.lr, warmup=cfg.warmup, checkpoint_every=cfg.checkpoint_every, progress=progress,
                 stop_at=stop_at, save_model=lambda: model.save(out, dtype=torch.float32), main=d.main)
    if cache is not None:
        cache.flush()
    distributed.teardown(d)
    return model
