"""The paper preset's modules, built from the published SD 2.1-base / CLIP ViT-L/14-336 configs at reduced
width, train one step through the real training code: finite loss, gradients in the encoder only.

The structure is the full-shape one (``benchmarks/full_shape.py`` builds both from the same files): a UNet
with SD 2.x's block types, per-level head counts and linear projections cross-attending to the text
states, a four-level VAE (factor 8), a CLIP text tower with 77 positions (75 tokens + SOS/EOS), a full CLIP
checkpoint whose vision tower is the backbone; the preset's 5 pooler blocks, 75 queries, 'words'
vocabulary, bf16 autocast and UNet gradient checkpointing. Only widths and depths shrink.
"""
import importlib.util
import math
import pathlib

import pytest
import torch

from dediffusion.checkpoint import load_tensors, read_json
from dediffusion.cli.main import main
from dediffusion.config import apply_overrides
from dediffusion.configs import preset
from dediffusion.train.fit_encoder import build_model, encoder_step

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "full_shape.py"
SD_SMALL = {"unet": {"block_out_channels": [32, 32, 64, 64], "attention_head_dim": [2, 2, 4, 4],
                     "norm_num_groups": 8, "cross_attention_dim": 32, "sample_size": 8},
            "vae": {"block_out_channels": [8, 8, 16, 16], "norm_num_groups": 4, "layers_per_block": 1,
                    "sample_size": 64},
            "text_encoder": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                             "num_attention_heads": 2}}
CLIP_SMALL = {"vision_config": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                                "num_attention_heads": 2, "image_size": 28, "projection_dim": 16},
              "text_config": {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
                              "num_attention_heads": 2, "projection_dim": 16},
              "preprocessor": {"size": 28, "crop_size": 28}}
ENCODER_SMALL = ["model.encoder.width=32", "model.encoder.heads=2"]  # blocks 5, 75 tokens: the preset's


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    spec = importlib.util.spec_from_file_location("full_shape", SCRIPT)
    full_shape = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(full_shape)
    root = tmp_path_factory.mktemp("preset_small")
    full_shape.build_sd(root / "sd", overrides=SD_SMALL)
    full_shape.build_clip(root / "clip", overrides=CLIP_SMALL)
    return root


def _cfg(models, *extra):
    return apply_overrides(preset("paper_sd21"), [
        "device=cpu", "batch_size=2", f"decoder={models / 'sd'}", f"model.encoder.backbone=hf:{models / 'clip'}",
        *ENCODER_SMALL, *extra])


def test_preset_modules_keep_the_full_shape_structure(models):
    cfg = _cfg(models)
    assert (cfg.model.encoder.blocks, cfg.model.encoder.num_tokens, cfg.model.head.vocab) == (5, 75, "words")
    model = build_model(cfg, cfg.decoder)
    dec = model.decoder
    assert dec.unet.config.use_linear_projection and list(dec.unet.config.attention_head_dim) == [2, 2, 4, 4]
    assert list(dec.unet.config.down_block_types[:3]) == ["CrossAttnDownBlock2D"] * 3
    assert dec.unet.config.cross_attention_dim == dec.text_encoder.config.hidden_size
    assert dec.unet.is_gradient_checkpointing and dec.options.precision == "bf16"
    assert dec.resolution == 64 and dec.latent_shape(2) == (2, 4, 8, 8) and dec.prediction_type == "epsilon"
    assert dec.vae.config.scaling_factor == pytest.approx(0.18215)
    assert dec.tokenizer.pad_token_id == 0 and dec.context_length == 77  # SD 2.x pads with '!'
    assert model.encoder.backbone.model_type == "clip"  # the full CLIP checkpoint; its vision tower is used
    # SD 2.x's text_encoder/config.json says float16 over fp32 weights: loaded as fp32 all the same
    assert read_json(models / "sd" / "text_encoder" / "config.json")["torch_dtype"] == "float16"
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert dec.text_states_from_embeds(torch.randn(2, 75, 32)).shape == (2, 77, 32)


def test_one_preset_step_is_finite_and_trains_only_the_encoder(models):
    cfg = _cfg(models)
    model = build_model(cfg, cfg.decoder).train()
    loss, logs = encoder_step(model, cfg, 0)
    loss.backward()
    assert math.isfinite(float(loss.detach())) and math.isfinite(logs["loss"])
    trainable = {k: p for k, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(k.startswith(("encoder.pooler.", "head.")) for k in trainable)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in trainable.values())
    for name in ("encoder.pooler.queries", "encoder.pooler.blocks.4.mlp.0.weight", "head.proj.weight"):
        assert trainable[name].grad.abs().sum() > 0, name
    frozen = [p for k, p in model.named_parameters() if k.startswith(("decoder.", "encoder.backbone."))]
    assert frozen and all(not p.requires_grad and p.grad is None for p in frozen)


def test_the_preset_command_trains_one_step(models, tmp_path):
    run = tmp_path / "run"
    sets = ["device=cpu", "batch_size=2", "steps=1", f"model.encoder.backbone=hf:{models / 'clip'}", *ENCODER_SMALL]
    assert main(["train", "--preset", "paper_sd21", "--out", str(run), "--decoder", str(models / "sd"),
                 *(a for s in sets for a in ("--set", s))]) == 0
    state = read_json(run / "train_state.json")
    assert state["step"] == 1 and math.isfinite(state["loss"])
    trained = load_tensors(run / "encoder.safetensors")
    init = build_model(_cfg(models), models / "sd").state_dict()
    assert not torch.equal(trained["encoder.pooler.queries"], init["encoder.pooler.queries"])
    backbone = [k for k in trained if k.startswith("encoder.backbone.")]
    assert backbone and all(torch.equal(trained[k], init[k]) for k in backbone)
