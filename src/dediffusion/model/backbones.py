"""Pretrained image backbones through transformers: CLIP and SigLIP vision towers, DINOv2, ViT.

Paper, Sec. 3: the encoder's backbone is a pretrained CoCa ViT-L (288 px),
frozen; the attentional pooler cross-attends to all of its output tokens.
Here any of these transformers vision models stands in for it, given as a
local folder (read with ``local_files_only``) or a hub id: ``backbone =
"hf:openai/clip-vit-large-patch14-336"``. A full CLIP / SigLIP checkpoint
(text tower included) loads its vision tower only.

Each model gets its own preprocessing, read from its ``preprocessor_config.json``
(resize, centre crop, normalise) and done with torch ops on the (B,3,H,W)
[0, 1] batch, so no torchvision or PIL round trip is needed.
"""
from __future__ import annotations

import contextlib
import json
import pathlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

VISION_CLASSES = {  # model_type in config.json -> transformers class giving patch tokens
    "clip": "CLIPVisionModel",
    "clip_vision_model": "CLIPVisionModel",
    "siglip": "SiglipVisionModel",
    "siglip_vision_model": "SiglipVisionModel",
    "dinov2": "Dinov2Model",
    "vit": "ViTModel",
}
# Heads that do not feed the patch tokens are not built: an unfrozen backbone then has no parameter
# without a gradient (which DDP would reject) and no unused weights in the checkpoint.
_NO_HEAD = {"vit": {"add_pooling_layer": False}, "siglip": {"vision_use_head": False},
            "siglip_vision_model": {"vision_use_head": False}}
_RESAMPLE = {0: "nearest", 2: "bilinear", 3: "bicubic"}  # PIL codes; others (lanczos, box, ...) -> bicubic


@dataclass(frozen=True)
class Preprocess:
    """An image processor config, reduced to what a square [0, 1] batch needs."""

    shortest_edge: int = 0  # resize so the short side is this long (aspect kept) ...
    size: tuple[int, int] = (0, 0)  # ... or to exactly (height, width)
    crop: tuple[int, int] = (0, 0)  # centre crop (height, width); (0, 0): none
    mode: str = "bicubic"
    scale: float = 1.0  # 255 * rescale_factor: 1.0 when the model expects [0, 1] before normalising
    mean: tuple[float, ...] = (0.0, 0.0, 0.0)
    std: tuple[float, ...] = (1.0, 1.0, 1.0)


def _hw(value) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    return (int(value["height"]), int(value["width"]))


def parse_preprocess(d: dict, where: str = "preprocessor_config.json") -> Preprocess:
    """``preprocessor_config.json`` -> Preprocess; unsupported resize rules are a one-line error."""
    size = d.get("size", {}) if d.get("do_resize", True) else {}
    if isinstance(size, int):
        size = {"height": size, "width": size}
    if size and "shortest_edge" not in size and "height" not in size:
        raise ValueError(f"{where}: unsupported resize rule {size} (expected shortest_edge or height/width)")
    crop = _hw(d["crop_size"]) if d.get("do_center_crop") and d.get("crop_size") else (0, 0)
    normalise = d.get("do_normalize", True)
    return Preprocess(
        shortest_edge=int(size.get("shortest_edge", 0)),
        size=(int(size["height"]), int(size["width"])) if "height" in size else (0, 0),
        crop=crop,
        mode=_RESAMPLE.get(int(d.get("resample", 3)), "bicubic"),
        scale=255.0 * float(d.get("rescale_factor", 1 / 255)) if d.get("do_rescale", True) else 255.0,
        mean=tuple(d.get("image_mean", (0.0,) * 3)) if normalise else (0.0,) * 3,
        std=tuple(d.get("image_std", (1.0,) * 3)) if normalise else (1.0,) * 3,
    )


def preprocess(images: torch.Tensor, p: Preprocess) -> torch.Tensor:
    """(B,3,H,W) in [0, 1] -> the model's pixel_values (B,3,h,w): resize, centre crop, normalise."""
    h, w = images.shape[-2:]
    if p.shortest_edge:
        short = min(h, w)
        target = (int(p.shortest_edge * h / short), int(p.shortest_edge * w / short))
    else:
        target = p.size if p.size != (0, 0) else (h, w)
    x = images
    if target != (h, w):
        kw = {} if p.mode == "nearest" else {"align_corners": False, "antialias": True}
        x = F.interpolate(x, size=target, mode=p.mode, **kw)
        x = x.clamp(0, 1)  # bicubic overshoot; PIL clips to uint8 too
    if p.crop != (0, 0):
        (ch, cw), (th, tw) = p.crop, x.shape[-2:]
        top, left = max(0, (th - ch) // 2), max(0, (tw - cw) // 2)
        x = x[..., top : top + ch, left : left + cw]
    mean = torch.tensor(p.mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    std = torch.tensor(p.std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return (x * p.scale - mean) / std


def _read_json(ref: str, name: str) -> dict:
    """A JSON file of a local folder or (through the hub cache) a hub id."""
    folder = pathlib.Path(ref)
    if folder.is_dir():
        path = folder / name
        if not path.is_file():
            raise FileNotFoundError(f"{folder}: no {name} (a transformers vision model folder has one)")
    else:
        from transformers.utils import cached_file

        try:
            path = pathlib.Path(cached_file(ref, name))
        except OSError as e:
            raise ValueError(f"{ref}: no such folder, and as a hub id: {str(e).splitlines()[0]}") from None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None


@contextlib.contextmanager
def _quiet_transformers():
    from transformers.utils import logging

    level = logging.get_verbosity()
    logging.set_verbosity_error()
    try:
        yield
    finally:
        logging.set_verbosity(level)


class HFBackbone(nn.Module):
    """A transformers vision model: (B,3,H,W) in [0,1] -> all output tokens (B, M, hidden)."""

    def __init__(self, ref: str):
        super().__init__()
        import transformers

        model_type = _read_json(ref, "config.json").get("model_type")
        if model_type not in VISION_CLASSES:
            raise ValueError(f"{ref}: model_type {model_type!r} is not a supported backbone "
                             f"(supported: {', '.join(sorted(VISION_CLASSES))})")
        cls = getattr(transformers, VISION_CLASSES[model_type])
        self.prep = parse_preprocess(_read_json(ref, "preprocessor_config.json"), f"{ref}/preprocessor_config.json")
        local = pathlib.Path(ref).is_dir()
        with _quiet_transformers():  # a full CLIP checkpoint lists every text-tower key as unused
            self.net = cls.from_pretrained(ref, local_files_only=local, use_safetensors=True, dtype=torch.float32,
                                           **_NO_HEAD.get(model_type, {}))  # fp32 whatever the config's torch_dtype
        tower = getattr(self.net, "vision_model", self.net)  # transformers < 5 nests the tower
        if model_type.startswith("clip") and hasattr(tower, "post_layernorm"):
            tower.post_layernorm = nn.Identity()  # CLIP: it only feeds the pooled output
        for name, p in self.net.named_parameters():
            if name.endswith("mask_token"):  # DINOv2 / ViT: only for masked-image pretraining
                p.requires_grad_(False)
        self.model_type = model_type
        self.out_dim = int(self.net.config.hidden_size)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        pixels = preprocess(images, self.prep)  # (B,3,h,w)
        return self.net(pixel_values=pixels).last_hidden_state  # (B, [CLS] + patches, hidden)
