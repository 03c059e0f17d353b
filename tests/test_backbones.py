"""Pretrained vision backbones through transformers: the model's own preprocessing, frozen by default."""
import json

import numpy as np
import pytest
import torch

from dediffusion.model.backbones import HFBackbone, parse_preprocess, preprocess
from dediffusion.model.encoder import EncoderConfig, ImageEncoder

from .tiny_models import save_tiny_vision

KINDS = ("clip", "siglip", "dinov2", "vit")
PIL_PROCESSORS = {"clip": "CLIPImageProcessorPil", "siglip": "SiglipImageProcessorPil",
                  "dinov2": "BitImageProcessorPil", "vit": "ViTImageProcessorPil"}


@pytest.fixture(scope="module")
def vision_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("vision")
    dirs = {k: save_tiny_vision(root / k, k) for k in KINDS}
    dirs["clip_full"] = save_tiny_vision(root / "clip_full", "clip", full=True)
    return dirs


def _smooth_image(side: int = 48) -> np.ndarray:
    yy, xx = np.mgrid[0:side, 0:side] / (side - 1)
    img = np.stack([xx, yy, 0.5 + 0.4 * np.sin(6 * xx) * np.cos(4 * yy)], -1)
    return (img * 255).round().astype(np.uint8)  # (H,W,3)


@pytest.mark.parametrize("kind", KINDS)
def test_preprocessing_matches_the_models_own_image_processor(vision_dirs, kind):
    import transformers
    from PIL import Image

    arr = _smooth_image()
    processor = getattr(transformers, PIL_PROCESSORS[kind]).from_pretrained(vision_dirs[kind])
    theirs = torch.as_tensor(np.array(processor(Image.fromarray(arr), return_tensors="np")["pixel_values"]))
    cfg = json.loads((vision_dirs[kind] / "preprocessor_config.json").read_text())
    ours = preprocess(torch.from_numpy(arr).permute(2, 0, 1).float()[None] / 255, parse_preprocess(cfg))
    assert ours.shape == theirs.shape == (1, 3, 28, 28)
    diff = (ours - theirs).abs()  # PIL resizes uint8, we resize floats: small differences only
    assert diff.mean() < 0.01 and diff.max() < 0.05, (diff.mean(), diff.max())


@pytest.mark.parametrize("kind", [*KINDS, "clip_full"])
def test_backbone_gives_all_tokens_and_every_parameter_feeds_them(vision_dirs, kind):
    backbone = HFBackbone(str(vision_dirs[kind]))
    tokens = backbone(torch.rand(2, 3, 16, 16))
    assert tokens.shape == ((2, 16, 16) if kind == "siglip" else (2, 1 + 16, 16))  # ([CLS] +) 4x4 patches of 7 px
    assert not any("text" in n for n, _ in backbone.named_parameters())  # a full CLIP keeps its vision tower only
    tokens.square().mean().backward()
    trainable = [(n, p) for n, p in backbone.named_parameters() if p.requires_grad]
    assert trainable and [n for n, p in trainable if p.grad is None] == []  # DDP needs this when unfrozen


def test_frozen_by_default_and_unfrozen_on_request(vision_dirs):
    cfg = EncoderConfig(backbone=f"hf:{vision_dirs['dinov2']}", width=16, heads=2, blocks=1, num_tokens=4)
    frozen = ImageEncoder(cfg)
    assert frozen.backbone_frozen
    frozen(torch.rand(2, 3, 16, 16)).sum().backward()
    assert frozen.pooler.queries.grad is not None and all(p.grad is None for p in frozen.backbone.parameters())
    unfrozen = ImageEncoder(EncoderConfig(**{**cfg.__dict__, "freeze_backbone": False}))
    unfrozen(torch.rand(2, 3, 16, 16)).sum().backward()
    assert all(p.grad is not None for p in unfrozen.backbone.parameters() if p.requires_grad)
    assert not unfrozen.backbone_frozen


def test_unsupported_models_and_missing_files_are_one_line_errors(vision_dirs, tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.json"):
        HFBackbone(str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ValueError, match="model_type 'bert' is not a supported backbone"):
        HFBackbone(str(tmp_path))
    with pytest.raises(ValueError, match="unsupported resize rule"):
        parse_preprocess({"size": {"longest_edge": 32}})
    with pytest.raises(ValueError, match="hf:PATH_OR_ID"):
        ImageEncoder(EncoderConfig(backbone="resnet"))
