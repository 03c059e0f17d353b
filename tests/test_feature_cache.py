"""``--cache-features``: a frozen backbone's features are computed once, read back, and change nothing."""
import dataclasses

import pytest
import torch
from PIL import Image

from dediffusion.model.backbones import HFBackbone
from dediffusion.checkpoint import load_tensors
from dediffusion.cli.main import main
from dediffusion.config import apply_overrides
from dediffusion.train import fit_encoder as train_encoder_module
from dediffusion.train.sources import DataConfig
from dediffusion.train.fit_encoder import EncoderTrainConfig, train_encoder
from dediffusion.data.world.batches import scenes
from dediffusion.data.world.scenes import render

from .tiny_models import save_tiny_vision

SETS = ["steps=4", "batch_size=2", "checkpoint_every=4", "model.encoder.width=16", "model.encoder.heads=2",
        "model.encoder.blocks=1", "model.encoder.num_tokens=6"]


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    return save_tiny_vision(tmp_path_factory.mktemp("clip") / "clip", "clip")


@pytest.fixture
def spy(monkeypatch):
    """Per-step losses of ``train_encoder`` and the number of backbone forward passes."""
    record = {"losses": [], "backbone_calls": 0}
    step, forward = train_encoder_module.encoder_step, HFBackbone.forward

    def step_spy(*args, **kwargs):
        loss, logs = step(*args, **kwargs)
        record["losses"].append(float(loss.detach()))
        return loss, logs

    def forward_spy(self, images):
        record["backbone_calls"] += 1
        return forward(self, images)

    monkeypatch.setattr(train_encoder_module, "encoder_step", step_spy)
    monkeypatch.setattr(HFBackbone, "forward", forward_spy)

    def take():
        out = dict(record)
        record.update(losses=[], backbone_calls=0)
        return out
    return take


def _cfg(clip_dir, *extra) -> EncoderTrainConfig:
    return apply_overrides(EncoderTrainConfig(), [*SETS, f"model.encoder.backbone=hf:{clip_dir}", *extra])


def _encoder(run):
    return load_tensors(run / "encoder.safetensors")


def test_cached_runs_give_the_uncached_loss_curve_and_skip_the_backbone(clip_dir, tiny_decoder_dir, tmp_path, spy):
    cache = tmp_path / "cache"
    train_encoder(_cfg(clip_dir), tmp_path / "plain", tiny_decoder_dir, progress=False)
    plain = spy()
    train_encoder(_cfg(clip_dir, f"cache_features={cache}"), tmp_path / "fill", tiny_decoder_dir, progress=False)
    fill = spy()
    args = ["train", "--out", str(tmp_path / "read"), "--decoder", str(tiny_decoder_dir), "--cache-features",
            str(cache), *(a for s in [*SETS, f"model.encoder.backbone=hf:{clip_dir}"] for a in ("--set", s))]
    assert main(args) == 0  # a second run over the same images reads every feature back
    read = spy()
    assert len(plain["losses"]) == 4 and plain["backbone_calls"] == 4
    assert fill["losses"] == plain["losses"] and fill["backbone_calls"] == 4
    assert read["losses"] == plain["losses"] and read["backbone_calls"] == 0
    assert sorted(p.name for p in cache.iterdir())[0] == "cache.json"
    a, b = _encoder(tmp_path / "plain"), _encoder(tmp_path / "read")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_killed_cached_run_resumes_to_the_uncached_result(clip_dir, tiny_decoder_dir, tmp_path, spy):
    train_encoder(_cfg(clip_dir), tmp_path / "plain", tiny_decoder_dir, progress=False)
    plain = spy()["losses"]
    cfg = _cfg(clip_dir, f"cache_features={tmp_path / 'cache'}")
    train_encoder(cfg, tmp_path / "run", tiny_decoder_dir, progress=False, stop_at=2)
    train_encoder(cfg, tmp_path / "run", tiny_decoder_dir, progress=False, resume=True)
    assert spy()["losses"] == plain
    a, b = _encoder(tmp_path / "plain"), _encoder(tmp_path / "run")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_folder_epochs_after_the_first_read_the_cache(clip_dir, tiny_decoder_dir, tmp_path, spy):
    data = tmp_path / "photos"
    data.mkdir()
    for i, scene in enumerate(scenes(5, 0, 4)):
        Image.fromarray(render(scene, 16)).save(data / f"{i}.png")
    cfg = dataclasses.replace(_cfg(clip_dir, "steps=6", "checkpoint_every=6"), data=DataConfig(paths=(str(data),)))
    train_encoder(cfg, tmp_path / "plain", tiny_decoder_dir, progress=False)
    plain = spy()
    cached = dataclasses.replace(cfg, cache_features=str(tmp_path / "cache"))
    train_encoder(cached, tmp_path / "cached", tiny_decoder_dir, progress=False)
    run = spy()
    assert plain["backbone_calls"] == 6 and run["backbone_calls"] == 2  # 3 epochs of 2 steps: the first computes
    assert run["losses"] == pytest.approx(plain["losses"], abs=1e-6)


def test_refuses_a_trained_backbone_and_another_backbones_cache(clip_dir, tiny_decoder_dir, tmp_path):
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match="frozen backbone"):
        train_encoder(_cfg(clip_dir, f"cache_features={cache}", "model.encoder.freeze_backbone=false"),
                      tmp_path / "a", tiny_decoder_dir, progress=False)
    train_encoder(_cfg(clip_dir, "steps=1", f"cache_features={cache}"), tmp_path / "b", tiny_decoder_dir,
                  progress=False)
    other = save_tiny_vision(tmp_path / "other", "clip", seed=1)
    with pytest.raises(ValueError, match="another backbone"):
        train_encoder(_cfg(other, "steps=1", f"cache_features={cache}"), tmp_path / "c", tiny_decoder_dir,
                      progress=False)


def test_fingerprint_covers_weights_and_buffers():
    from dediffusion.model.encoder import EncoderConfig, ImageEncoder
    from dediffusion.train.feature_cache import backbone_fingerprint

    encoder = ImageEncoder(EncoderConfig(backbone="efficientnet_lite0"))  # BatchNorm: 0-d counters, running stats
    before = backbone_fingerprint(encoder)["sha256"]
    assert backbone_fingerprint(encoder)["sha256"] == before
    bn = next(m for m in encoder.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d))
    bn.running_mean += 1
    assert backbone_fingerprint(encoder)["sha256"] != before
