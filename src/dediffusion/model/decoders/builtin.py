"""The built-in decoder: a small text-to-image diffusion model from real parts.

It speaks Stable Diffusion's interface - CLIP BPE tokenizer, ``CLIPTextModel``,
``UNet2DConditionModel``, diffusers schedulers, classifier-free guidance - at
a size that trains on two CPU cores. It works in pixel space (as the paper's
Imagen-like decoder does, Sec. 3) with v-prediction and a cosine schedule,
and gives the UNet two fixed coordinate channels (CoordConv) so that position
words are cheap to learn.

A text -> layout readout as extra input channels (``layout.py``,
``layout_channels=8`` in the shipped decoder) taught it position words given a
GPU's worth of steps; the variants that did not are retired
(``benchmarks/RESULTS.md``, "Removed options").
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from dediffusion.checkpoint import load_state, load_tensors, safe_child, save_tensors, write_json
from dediffusion.config import from_dict, to_dict
from dediffusion.model import diffusion
from dediffusion.model.tokenizer import CONTEXT_LENGTH, clip_tokenizer
from dediffusion.model.decoders.layout import TextLayout
from dediffusion.model.decoders.text import TextConditioner


@dataclass(frozen=True)
class BuiltinDecoderConfig:
    resolution: int = 16
    text_width: int = 64
    text_layers: int = 3
    text_heads: int = 4
    unet_channels: tuple[int, ...] = (32, 64, 64)
    layers_per_block: int = 1
    attention_heads: int = 2  # diffusers reads attention_head_dim as the head count
    norm_groups: int = 8
    coord_channels: bool = True
    layout_channels: int = 0  # > 0: text -> spatial layout maps as extra input channels (decoders/layout.py)
    layout_tokens: int = 40  # text states the layout reads (prompts up to 38 tokens)
    prediction_type: str = "v_prediction"
    beta_schedule: str = "squaredcos_cap_v2"
    num_train_timesteps: int = 1000
    seed: int = 0  # weight initialisation


def _in_channels(cfg: BuiltinDecoderConfig) -> int:
    return 3 + (2 if cfg.coord_channels else 0) + cfg.layout_channels


def _unet(cfg: BuiltinDecoderConfig):
    from diffusers import UNet2DConditionModel

    n = len(cfg.unet_channels)  # cross-attention in every block but the full-resolution one
    return UNet2DConditionModel(
        sample_size=cfg.resolution,
        in_channels=_in_channels(cfg),
        out_channels=3,
        down_block_types=("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (n - 1),
        up_block_types=("CrossAttnUpBlock2D",) * (n - 1) + ("UpBlock2D",),
        block_out_channels=tuple(cfg.unet_channels),
        layers_per_block=cfg.layers_per_block,
        cross_attention_dim=cfg.text_width,
        attention_head_dim=cfg.attention_heads,
        norm_num_groups=cfg.norm_groups,
    )


def _text_encoder(cfg: BuiltinDecoderConfig, vocab_size: int):
    from transformers import CLIPTextConfig, CLIPTextModel

    return CLIPTextModel(
        CLIPTextConfig(
            vocab_size=vocab_size,
            hidden_size=cfg.text_width,
            intermediate_size=cfg.text_width * 4,
            num_hidden_layers=cfg.text_layers,
            num_attention_heads=cfg.text_heads,
            max_position_embeddings=CONTEXT_LENGTH,
            bos_token_id=49406,
            eos_token_id=49407,
            pad_token_id=49407,
        )
    )


class BuiltinDecoder(nn.Module, TextConditioner):
    """Pixel-space text-to-image decoder; images in and out are (B,3,H,W) in [0, 1]."""

    kind = "builtin"

    def __init__(self, cfg: BuiltinDecoderConfig = BuiltinDecoderConfig()):
        super().__init__()
        from diffusers import DDPMScheduler

        self.cfg = cfg
        self.tokenizer = clip_tokenizer()
        with torch.random.fork_rng():
            torch.manual_seed(cfg.seed)
            self.text_encoder = _text_encoder(cfg, len(self.tokenizer))
            self.unet = _unet(cfg)  # the name Stable Diffusion pipelines use
            if cfg.layout_channels:
                self.layout = TextLayout(cfg.text_width, cfg.layout_channels, cfg.resolution, cfg.layout_tokens)
        self.scheduler = DDPMScheduler(
            num_train_timesteps=cfg.num_train_timesteps,
            beta_schedule=cfg.beta_schedule,
            prediction_type=cfg.prediction_type,
            clip_sample=False,
        )
        self.resolution = cfg.resolution

    def model_fn(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """UNet output for noisy images x_t (B,3,H,W), timesteps t (B,), text states cond (B,L,D)."""
        if self.cfg.coord_channels:
            b, _, h, w = x_t.shape
            ys = torch.linspace(-1, 1, h, device=x_t.device, dtype=x_t.dtype)
            xs = torch.linspace(-1, 1, w, device=x_t.device, dtype=x_t.dtype)
            grid = torch.stack(torch.meshgrid(ys, xs, indexing="ij"))  # (2,H,W)
            x_t = torch.cat([x_t, grid.expand(b, -1, -1, -1)], dim=1)  # (B,5,H,W)
        if self.cfg.layout_channels:
            x_t = torch.cat([x_t, self.layout(cond).to(x_t.dtype)], dim=1)  # (B,5+C,H,W)
        return self.unet(x_t, t, encoder_hidden_states=cond).sample

    def to_model_space(self, images: torch.Tensor) -> torch.Tensor:
        return images * 2 - 1

    def from_model_space(self, x: torch.Tensor) -> torch.Tensor:
        return ((x + 1) / 2).clamp(0, 1)

    def loss(self, images: torch.Tensor, cond: torch.Tensor, t: torch.Tensor, noise: torch.Tensor | None = None,
             generator: torch.Generator | None = None) -> torch.Tensor:
        """Per-sample denoising loss (B,) of images (B,3,H,W in [0,1]) given text states."""
        x0 = self.to_model_space(images)
        if noise is None:
            noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype).to(x0.device)
        return diffusion.denoising_loss(self.model_fn, self.scheduler, x0, cond, t, noise)

    def latent_shape(self, batch: int) -> tuple[int, ...]:
        return (batch, 3, self.resolution, self.resolution)

    # --- self-describing checkpoints -------------------------------------------------
    def save(self, folder, dtype: torch.dtype = torch.float16, weights: dict | None = None) -> None:
        """Write ``decoder.safetensors`` + ``decoder.json`` (kind and resolved config)."""
        save_tensors(safe_child(folder, "decoder.safetensors"), weights or self.state_dict(), dtype=dtype)
        write_json(safe_child(folder, "decoder.json"), {"kind": self.kind, "config": to_dict(self.cfg)})

    @classmethod
    def load(cls, folder, config: dict) -> "BuiltinDecoder":
        model = cls(from_dict(BuiltinDecoderConfig, config, where=f"{folder}/decoder.json:config"))
        weights = safe_child(folder, "decoder.safetensors")
        load_state(model, load_tensors(weights), weights)
        return model
