"""Amortised + refined (issue 13): per-image optimisation that starts from the encoder's text."""
import dataclasses

import pytest
import torch
from PIL import Image

from dediffusion.model.autoencoder import load_dediffusion
from dediffusion.cli.main import main
from dediffusion.eval.invert import InvertConfig, invert, invert_texts, prompt_loss
from dediffusion.pretrained import resolve
from dediffusion.data.world.batches import images_tensor, scenes
from dediffusion.data.world.scenes import render


@pytest.fixture(scope="module")
def shipped_model():
    return load_dediffusion(resolve("shipped:encoder", "encoder")).eval()


@pytest.mark.parametrize("inference", ["sample", "argmax"])
def test_zero_steps_from_the_encoder_give_the_encoders_text(shipped_model, inference):
    model = shipped_model
    shipped_head = model.head.cfg
    model.head.cfg = dataclasses.replace(shipped_head, inference=inference)  # both inference rules
    try:
        images = images_tensor(scenes(4250, 0, 12), model.decoder.resolution)
        texts = invert_texts(model, images, InvertConfig(steps=0, init="encoder", batch_size=5))
        assert texts == model.texts(images)
    finally:
        model.head.cfg = shipped_head


def test_refining_lowers_the_encoders_decoder_loss(shipped_model):
    model = shipped_model
    images = images_tensor(scenes(4251, 0, 16), model.decoder.resolution)
    before = {k: v.clone() for k, v in model.decoder.state_dict().items()}
    encoded = model.token_ids(images)
    cfg = InvertConfig(steps=30, init="encoder", batch_size=8)
    refined = model.decoder.tokenize(invert_texts(model, images, cfg))
    assert (torch.tensor(refined) != encoded).any()  # it did refine something
    # these 16 scenes, encoder v14: 0.0218 -> 0.0204 (last iterate, select_every=0: 0.0251, worse than the
    # start; select_draws=4: 0.0238; 100 steps: 0.0203). Keeping the best text seen, scored on 8 draws of its
    # own stream (not prompt_loss's), guards against that
    assert prompt_loss(model.decoder, images, refined).mean() < prompt_loss(model.decoder, images, encoded).mean()
    assert all(torch.equal(before[k], v) for k, v in model.decoder.state_dict().items())


def test_the_init_picks_its_own_schedule_and_rejects_a_mismatched_start(shipped_model):
    assert InvertConfig().schedule() == (2.0, 1.0)  # today's baseline, unchanged
    assert InvertConfig(init="encoder").schedule() == (0.3, 0.3)
    assert InvertConfig(init="encoder", tau_start=1.0, noise_scale=1.0).schedule() == (1.0, 1.0)
    images = images_tensor(scenes(4252, 0, 2), shipped_model.decoder.resolution)
    allowed = shipped_model.head.allowed_ids
    with pytest.raises(ValueError, match="starting logits"):
        invert(shipped_model.decoder, allowed, images, InvertConfig(steps=0, init="encoder"))
    with pytest.raises(ValueError, match=f"{shipped_model.cfg.encoder.num_tokens} tokens"):
        invert_texts(shipped_model, images, InvertConfig(steps=0, init="encoder", num_tokens=6))


def test_cli_invert_from_the_encoder_with_zero_steps_prints_the_encoders_text(shipped_model, tmp_path, capsys):
    scene = scenes(4253, 0, 1)[0]
    path = tmp_path / "scene.png"
    Image.fromarray(render(scene, shipped_model.decoder.resolution)).save(path)
    assert main(["invert", "--init", "encoder", "--steps", "0", str(path)]) == 0
    out = capsys.readouterr().out
    expected = shipped_model.texts(images_tensor([scene], shipped_model.decoder.resolution))[0]
    assert out == f"{path}\t{expected}\n"
