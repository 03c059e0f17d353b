"""Per-token attribution (``dediffusion explain``) on tiny models: what a removed or replaced token does."""
import json

import pytest
import torch
from PIL import Image

from dediffusion.model.autoencoder import DeDiffusion
from dediffusion.cli.main import main
from dediffusion.model.decoders import load_decoder
from dediffusion.eval.explain import NEUTRAL_WORD, attribution, explain_image, probe_changes
from dediffusion.model.sampling import generate
from dediffusion.model.tokenizer import decode_ids
from dediffusion.train.fit_encoder import train_encoder
from dediffusion.data.world.batches import images_tensor, scenes
from dediffusion.model.attribute_cnn import Probe, ProbeConfig, save_probe
from dediffusion.data.world.scenes import render

from .conftest import TINY, tiny_train_cfg

STEPS = 2


@pytest.fixture(scope="module")
def model(tiny_decoder_dir):
    torch.manual_seed(0)
    return DeDiffusion(TINY, load_decoder(tiny_decoder_dir)).eval()


@pytest.fixture(scope="module")
def image():
    return images_tensor(scenes(3, 0, 1), 8)[0]


def _word_ids(model, words: str) -> list[int]:
    return model.decoder.tokenizer(words, add_special_tokens=False).input_ids


def _fixed_text(model, monkeypatch, words: str) -> list[int]:
    """Make the encoder emit ``words`` for any image (a constructed case)."""
    ids = _word_ids(model, words)
    monkeypatch.setattr(model, "token_ids", lambda images: torch.tensor([ids] * len(images)))
    return ids


def test_removal_equals_decoding_the_shorter_text_with_the_same_noise(model, image):
    result = attribution(model, image, steps=STEPS, seed=5, probe=None, variants=("remove",))
    tok = model.decoder.tokenizer
    text = decode_ids(tok, result.ids)
    assert model.decoder.tokenize([text])[0] == result.ids  # the text round-trips, so prompts can be compared
    one = lambda prompt: generate(model.decoder, [prompt], steps=STEPS, seed=5)[0]  # noqa: E731
    assert torch.allclose(result.reconstruction, one(text), atol=1e-5)
    for i in (0, len(result.ids) - 1):
        shorter = decode_ids(tok, result.ids[:i] + result.ids[i + 1:])
        assert torch.allclose(result.variant_images("remove")[i], one(shorter), atol=1e-5)
    chunked = attribution(model, image, steps=STEPS, seed=5, probe=None, variants=("remove",), batch=2)
    assert torch.allclose(chunked.images, result.images, atol=1e-5)  # decoded two texts at a time: the same


def test_removing_the_only_token_equals_the_empty_prompt(model, image, monkeypatch):
    _fixed_text(model, monkeypatch, "red")
    result = attribution(model, image, steps=STEPS, probe=None)
    empty = generate(model.decoder, [""], steps=STEPS, seed=0)[0]
    assert torch.allclose(result.variant_images("remove")[0], empty, atol=1e-5)
    assert torch.allclose(result.variant_images("remove_word")[0], empty, atol=1e-5)


def test_a_token_that_changes_nothing_gets_zero_heat(model, image, monkeypatch):
    ids = _fixed_text(model, monkeypatch, f"{NEUTRAL_WORD} red red circle")
    result = attribution(model, image, steps=STEPS, probe=None)
    replace = result.heat("replace").amax((1, 2))
    assert replace[0] < 1e-6  # replacing the neutral word by itself leaves the text, hence the image, unchanged
    assert replace[1] > 1e-4 and replace[3] > 1e-4  # the content words do change the image
    # removing either copy of a repeated word gives the same text, hence the same heat
    assert ids[1] == ids[2] and torch.equal(result.heat("remove")[1], result.heat("remove")[2])


def test_with_a_decoder_that_cannot_read_text_every_heat_is_zero(tiny_decoder_dir, image):
    torch.manual_seed(0)
    deaf = DeDiffusion(TINY, load_decoder(tiny_decoder_dir)).eval()
    for name, module in deaf.decoder.unet.named_modules():
        if name.endswith("attn2.to_out.0"):  # cross-attention is the only way text reaches the UNet
            torch.nn.init.zeros_(module.weight)
            torch.nn.init.zeros_(module.bias)
    probe = Probe(ProbeConfig(resolution=8)).eval()
    result = attribution(deaf, image, steps=STEPS, probe=probe)
    for v in result.variants:
        assert float(result.heat(v).max()) < 1e-6
        assert all(changes == [] for changes in result.probe_changes(v))


def test_json_round_trips_and_heat_is_non_negative_with_change_its_mean(model, image):
    probe = Probe(ProbeConfig(resolution=8)).eval()
    data = explain_image(model, image, steps=STEPS, probe=probe)
    assert json.loads(json.dumps(data)) == data
    assert len(data["tokens"]) == TINY.encoder.num_tokens and data["text"].split()
    for t in data["tokens"]:
        for v in data["variants"]:
            heat = torch.tensor(t[v]["heat"])
            assert heat.shape == (8, 8) and heat.min() >= 0
            assert abs(t[v]["change"] - float(heat.mean())) < 1e-3
            assert isinstance(t[v]["probe_changes"], list)
    assert set(data["reading"]) == {"background", "cells"}
    # a PIL image of the same pixels gives the same explanation
    pil = Image.fromarray((image * 255).round().byte().permute(1, 2, 0).numpy())
    assert explain_image(model, pil, steps=STEPS, probe=probe) == data
    assert explain_image(model, image, steps=STEPS, probe=None)["tokens"][0]["remove"]["probe_changes"] is None
    with pytest.raises(ValueError, match="3, H, W"):
        explain_image(model, image[None], steps=STEPS)


def test_probe_changes_count_colour_and_size_only_where_both_read_an_object():
    def cell(name, content, colour):
        return {"cell": name, "content": content, "colour": colour, "size": "small"}

    before = {"background": "black", "cells": [cell("top left", "circle", "red"), cell("top right", "empty", "red")]}
    after = {"background": "white", "cells": [cell("top left", "circle", "blue"), cell("top right", "square", "blue")]}
    assert probe_changes(before, after) == [
        {"attribute": "background", "from": "black", "to": "white"},
        {"attribute": "top left colour", "from": "red", "to": "blue"},
        {"attribute": "top right content", "from": "empty", "to": "square"}]
    assert probe_changes(before, before) == []


def test_explain_command_writes_json_and_png(tiny_decoder_dir, tmp_path, capsys):
    run = tmp_path / "run"
    train_encoder(tiny_train_cfg(steps=1), run, tiny_decoder_dir, progress=False)
    save_probe(Probe(ProbeConfig(resolution=8)), tmp_path / "probe")
    img = tmp_path / "scene.png"
    Image.fromarray(render(scenes(3, 1, 1)[0], 8)).save(img)
    out = tmp_path / "out"
    assert main(["explain", str(img), "--model", str(run), "-o", str(out), "--steps", "2", "--tokens", "4",
                 "--probe", str(tmp_path / "probe"), "--variant", "remove"]) == 0
    data = json.loads((out / "explain.json").read_text())
    assert len(data["tokens"]) == 4 and data["variants"] == ["remove"] and data["steps"] == 2
    assert capsys.readouterr().out.strip() == data["text"]
    grid = Image.open(out / "explain.png")
    assert grid.width > grid.height  # original, reconstruction and 4 heat maps fit one row of tiles
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    assert main(["explain", str(bad), "--model", str(run), "-o", str(tmp_path / "o2"), "--steps", "2"]) == 1
    assert capsys.readouterr().err.startswith("error: ")
