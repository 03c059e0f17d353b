"""Stable Diffusion (1.x / 2.x, diffusers layout) as the frozen decoder.

The same interface as the built-in decoder (``decoders/builtin.py``), so one
training loop and one encode/decode path serve both. What differs:

* **latent space**: images go through the VAE encoder (posterior mean) and are
  multiplied by the VAE's ``scaling_factor`` (0.18215 for SD 1.x/2.x); samples
  are divided by it and decoded;
* **prediction type** comes from the scheduler config: SD 1.x and SD 2.x-base
  predict epsilon, the 768-px SD 2.x models predict v (paper, Sec. 3: the loss
  is the decoder's own);
* **text**: the CLIP text encoder takes (soft) token vectors through its
  token-embedding table with SOS/EOS, the tokenizer's pad token and position
  embeddings exactly as for ordinary text (``decoders/text.py``; 75 + 2 = 77).

The model is given as a local folder (loaded with ``local_files_only``) or as a
hub id, which diffusers resolves (downloads need internet). Weights are read
from safetensors only. The decoder is frozen: it is never saved by
De-Diffusion; an encoder checkpoint records where it came from.
"""
from __future__ import annotations

import contextlib
import pathlib
from dataclasses import dataclass

import torch
from torch import nn

from dediffusion.checkpoint import file_sha256
from dediffusion.model import diffusion
from dediffusion.model.decoders.text import TextConditioner
from dediffusion.pretrained import is_hub_id

COMPONENTS = ("unet", "vae", "text_encoder")  # the weights a fingerprint covers
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class StableDiffusionOptions:
    """How a Stable Diffusion decoder runs (not what it is: that is the folder or hub id)."""

    resolution: int = 0  # image side in pixels; 0: the UNet's native size (512 for SD 2.1-base)
    precision: str = "fp32"  # autocast of the frozen text encoder and UNet: "fp32" (off), "bf16" or "fp16"
    gradient_checkpointing: bool = False  # recompute UNet activations in backward (memory for time)


def is_diffusers_ref(ref) -> bool:
    """A folder with ``model_index.json``, or a hub id (``pretrained.is_hub_id``) that is no local path."""
    path = pathlib.Path(str(ref))
    return (path / "model_index.json").is_file() if path.exists() else is_hub_id(str(ref))


def _from_pretrained(cls, ref: str, subfolder: str, **kw):
    local = pathlib.Path(ref).is_dir()
    try:
        return cls.from_pretrained(ref, subfolder=subfolder, local_files_only=local, **kw)
    except (OSError, ValueError, EnvironmentError) as e:
        where = "folder" if local else "no such folder, tried as a hub id"
        reason = str(e).splitlines()[0]
        raise ValueError(f"{ref}: cannot load the Stable Diffusion {subfolder!r} ({where}): {reason}") from None


class StableDiffusionDecoder(nn.Module, TextConditioner):
    """Latent-space text-to-image decoder; images in and out are (B,3,H,W) in [0, 1]."""

    kind = "stable_diffusion"

    def __init__(self, ref, options: StableDiffusionOptions = StableDiffusionOptions()):
        super().__init__()
        from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
        from transformers import CLIPTextModel, CLIPTokenizer

        if options.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {options.precision!r}; expected one of {', '.join(PRECISIONS)}")
        self.ref, self.options = str(ref), options
        # fp32 in memory, whatever the config says: transformers 5 loads in the config's torch_dtype by default,
        # and SD 2.x's text_encoder/config.json says float16 over fp32 weights (half weights then break the
        # fp32 inputs); ``precision`` (autocast) decides the compute dtype
        self.text_encoder = _from_pretrained(CLIPTextModel, self.ref, "text_encoder", use_safetensors=True,
                                             dtype=torch.float32)
        self.tokenizer = _from_pretrained(CLIPTokenizer, self.ref, "tokenizer")
        vocab = self.text_encoder.get_input_embeddings().num_embeddings
        if len(self.tokenizer) != vocab:  # transformers builds an empty tokenizer from a missing folder
            raise ValueError(f"{ref}: the tokenizer has {len(self.tokenizer)} tokens "
                             f"but the text encoder embeds {vocab}")
        self.vae = _from_pretrained(AutoencoderKL, self.ref, "vae", use_safetensors=True)
        self.unet = _from_pretrained(UNet2DConditionModel, self.ref, "unet", use_safetensors=True)
        scheduler = _from_pretrained(DDPMScheduler, self.ref, "scheduler")  # the training schedule
        # SD ships a PNDM config without clip_sample, which DDPM/DDIM read as True; clipping latents to
        # [-1, 1] is wrong, and StableDiffusionPipeline turns it off the same way
        self.scheduler = DDPMScheduler.from_config(scheduler.config, clip_sample=False)
        positions = self.text_encoder.config.max_position_embeddings
        if not self.tokenizer.model_max_length or self.tokenizer.model_max_length > positions:
            self.tokenizer.model_max_length = positions  # a tokenizer config without it reads as "unlimited"
        if options.gradient_checkpointing:
            self.unet.enable_gradient_checkpointing()  # diffusers checks grad mode, not train mode: works frozen
        self.vae_factor = 2 ** (len(self.vae.config.block_out_channels) - 1)
        self.resolution = options.resolution or self.unet.config.sample_size * self.vae_factor
        if self.resolution % self.vae_factor:
            raise ValueError(f"resolution {self.resolution} is not a multiple of the VAE factor {self.vae_factor}")

    @property
    def prediction_type(self) -> str:
        return self.scheduler.config.prediction_type

    def _autocast(self, device: torch.device):
        dtype = PRECISIONS[self.options.precision]
        return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()

    def _encode_embeds(self, seq: torch.Tensor) -> torch.Tensor:
        with self._autocast(seq.device):
            return super()._encode_embeds(seq).float()  # (B,L,D)

    def model_fn(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """UNet output for noisy latents x_t (B,4,h,w), timesteps t (B,), text states cond (B,L,D)."""
        with self._autocast(x_t.device):
            return self.unet(x_t, t, encoder_hidden_states=cond).sample.float()

    # --- latent space ------------------------------------------------------------------
    def _shift(self) -> float:
        return getattr(self.vae.config, "shift_factor", None) or 0.0

    @torch.no_grad()
    def to_model_space(self, images: torch.Tensor) -> torch.Tensor:
        """Images (B,3,H,W) in [0,1] -> scaled latents (B,4,H/f,W/f): the VAE posterior mean."""
        latents = self.vae.encode(images * 2 - 1).latent_dist.mode()
        return (latents - self._shift()) * self.vae.config.scaling_factor

    @torch.no_grad()
    def from_model_space(self, x: torch.Tensor) -> torch.Tensor:
        images = self.vae.decode(x / self.vae.config.scaling_factor + self._shift()).sample
        return ((images.float() + 1) / 2).clamp(0, 1)

    def loss(self, images: torch.Tensor, cond: torch.Tensor, t: torch.Tensor, noise: torch.Tensor | None = None,
             generator: torch.Generator | None = None) -> torch.Tensor:
        """Per-sample denoising loss (B,) of images (B,3,H,W in [0,1]) given text states; noise is latent-shaped."""
        x0 = self.to_model_space(images)
        if noise is None:
            noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype).to(x0.device)
        if noise.shape != x0.shape:
            raise ValueError(f"noise {tuple(noise.shape)} does not match the latents {tuple(x0.shape)}")
        return diffusion.denoising_loss(self.model_fn, self.scheduler, x0, cond, t, noise.to(x0.dtype))

    def latent_shape(self, batch: int) -> tuple[int, ...]:
        side = self.resolution // self.vae_factor
        return (batch, self.unet.config.in_channels, side, side)

    # --- references, not checkpoints -----------------------------------------------------
    def save(self, folder, **_) -> None:
        raise ValueError("a Stable Diffusion decoder is referenced by its folder or hub id, never re-saved")


def fingerprint(ref) -> str:
    """SHA-256 over the component weight files of a local diffusers folder ('' for a hub id not cached)."""
    folder = pathlib.Path(str(ref))
    if not folder.is_dir():
        try:
            from huggingface_hub import snapshot_download

            folder = pathlib.Path(snapshot_download(str(ref), local_files_only=True))
        except Exception:  # not cached (or no hub client): nothing to hash
            return ""
    files = [f for name in COMPONENTS for f in sorted((folder / name).glob("*.safetensors"))]
    return file_sha256(files, labels=[f"{f.parent.name}/{f.name}\n" for f in files])
