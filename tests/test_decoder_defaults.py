"""Defaults follow the decoder: ``train --decoder SD`` gets the paper's head on a pretrained backbone; a
re-given Stable Diffusion decoder must hold the recorded weights; an hf: backbone can be pointed at."""
import json
import shutil

import pytest
import torch
from PIL import Image

from dediffusion.model.autoencoder import load_dediffusion
from dediffusion.checkpoint import read_json
from dediffusion.cli.main import main
from dediffusion.pretrained import shipped
from dediffusion.model.tokenizer import word_token_ids
from dediffusion.train.defaults import fit_to_decoder
from dediffusion.train.fit_encoder import EncoderTrainConfig
from dediffusion.data.world.batches import scenes
from dediffusion.data.world.scenes import render

from .tiny_models import IMAGE, save_tiny_sd, save_tiny_vision

FAST = ["steps=1", "batch_size=2", "checkpoint_every=1", "model.encoder.width=16", "model.encoder.heads=2",
        "model.encoder.blocks=1"]  # size and length only: none of the choices under test


def _train(run, sd, *sets, extra=()):
    return main(["train", "--out", str(run), "--decoder", str(sd), *(a for s in (*FAST, *sets) for a in ("--set", s)),
                 *extra])


@pytest.fixture(scope="module")
def sd(tmp_path_factory):
    return save_tiny_sd(tmp_path_factory.mktemp("sd"), "epsilon")


@pytest.fixture()
def image(tmp_path):
    path = tmp_path / "scene.png"
    Image.fromarray(render(scenes(9, 0, 1)[0], IMAGE)).save(path)
    return path


def test_train_with_a_stable_diffusion_folder_and_no_flag_gets_the_papers_head(sd, tmp_path, capsys):
    run = tmp_path / "run"
    assert _train(run, sd) == 0
    err = capsys.readouterr().err
    assert "Stable Diffusion): CLIP vocabulary without punctuation, 75 tokens, argmax inference" in err
    assert "backbone efficientnet_lite0 (frozen)" in err
    model_cfg = read_json(run / "train_config.json")["config"]["model"]  # the resolved choices are saved
    head, encoder = model_cfg["head"], model_cfg["encoder"]
    assert (head["vocab"], head["inference"], model_cfg["allow_words"]) == ("words", "argmax", [])
    assert (encoder["num_tokens"], encoder["backbone"], encoder["freeze_backbone"]) == (75, "efficientnet_lite0", True)
    assert (head["estimator"], head["tau_start"], head["tau_end"]) == ("soft", 2.0, 0.3)  # the paper's Gumbel

    model = load_dediffusion(run, decoder_folder=sd)
    tok = model.decoder.tokenizer
    assert model.head.allowed_ids.tolist() == word_token_ids(tok)  # every word token, no punctuation
    punctuation = set(tok.convert_tokens_to_ids([",</w>", ".</w>", "!</w>", "?</w>", ",", "."]))
    assert not punctuation & set(model.head.allowed_ids.tolist())
    assert model.token_ids(torch.rand(1, 3, IMAGE, IMAGE)).shape == (1, 75)
    assert type(model.encoder.backbone).__name__ == "EfficientNetLite0Backbone"


def test_given_settings_win_and_the_built_in_decoder_keeps_the_world_recipe(sd, tmp_path):
    world = EncoderTrainConfig()
    assert fit_to_decoder(world, shipped("decoder")) == world
    fitted = fit_to_decoder(world, sd, {"model.encoder.num_tokens", "model.encoder.backbone"})
    assert (fitted.model.encoder.num_tokens, fitted.model.encoder.backbone) == (32, "cnn")  # as given (defaults)
    assert (fitted.model.head.vocab, fitted.model.encoder.blocks) == ("words", 5)  # the rest follows the decoder
    own = fit_to_decoder(world, sd, {"model.head.vocab", "model.allow_words"})  # an allow-list of one's own words
    assert own.model.head.vocab == "allow_list"
    assert fit_to_decoder(world, sd, {"model"}) == world  # a preset is taken as it is


@pytest.mark.parametrize("setting, hint", [("model.encoder.backbone=attribute_cnn", "efficientnet_lite0"),
                                           ("model.head.vocab=allow_list", "model.allow_words")])
def test_world_only_components_with_stable_diffusion_are_errors_that_say_what_to_pass(sd, tmp_path, capsys, setting,
                                                                                       hint):
    assert _train(tmp_path / "run", sd, setting) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and hint in err and "Stable Diffusion" in err
    assert not (tmp_path / "run" / "train_state.json").exists()


def test_resume_and_loading_check_the_regiven_decoder_weights(sd, tmp_path, image, capsys):
    mine = shutil.copytree(sd, tmp_path / "sd")
    other = save_tiny_sd(tmp_path / "other", "epsilon", seed=1)
    run = tmp_path / "run"
    assert _train(run, mine, "steps=2", extra=("--stop-at", "1")) == 0
    assert _train(run, other, "steps=2", extra=("--resume",)) == 2  # other weights: refused
    assert "resume with the same --decoder" in capsys.readouterr().err
    assert read_json(run / "train_state.json")["step"] == 1

    assert main(["encode", str(image), "--model", str(run), "--decoder", str(mine)]) == 0
    text = capsys.readouterr().out
    with pytest.warns(UserWarning, match="not the ones this encoder was trained against"):
        assert main(["encode", str(image), "--model", str(run), "--decoder", str(other)]) == 0  # transfer: allowed
    shutil.copyfile(other / "unet" / "diffusion_pytorch_model.safetensors",
                    mine / "unet" / "diffusion_pytorch_model.safetensors")  # the recorded folder changed
    capsys.readouterr()
    assert main(["encode", str(image), "--model", str(run), "--decoder", str(mine)]) == 2
    assert "the model changed since training" in capsys.readouterr().err
    assert text.strip()


def test_an_hf_backbone_is_read_from_the_folder_the_user_gives(sd, tmp_path, image, capsys):
    clip = save_tiny_vision(tmp_path / "clip", "clip")
    run = tmp_path / "run"
    assert _train(run, sd, f"model.encoder.backbone=hf:{clip}", "model.encoder.num_tokens=4") == 0
    assert main(["encode", str(image), "--model", str(run), "--decoder", str(sd), "--format", "jsonl",
                 "--backbone", f"hf:{clip}"]) == 0
    text = json.loads(capsys.readouterr().out)["text"]
    copy = shutil.copytree(clip, tmp_path / "my_copy")
    shutil.rmtree(clip)  # the recorded location is gone: the user points at their copy
    assert main(["encode", str(image), "--model", str(run), "--decoder", str(sd)]) == 2
    assert "--backbone hf:PATH" in capsys.readouterr().err
    assert main(["encode", str(image), "--model", str(run), "--decoder", str(sd), "--format", "jsonl",
                 "--backbone", f"hf:{copy}"]) == 0
    assert json.loads(capsys.readouterr().out)["text"] == text  # the weights come from the encoder checkpoint
    # inside the run folder, the recorded location needs no flag
    inside = shutil.copytree(copy, run / "backbone")
    meta = read_json(run / "encoder.json")
    meta["config"]["encoder"]["backbone"] = "hf:backbone"
    (run / "encoder.json").write_text(json.dumps(meta))
    assert load_dediffusion(run, decoder_folder=sd).cfg.encoder.backbone == f"hf:{inside.resolve()}"
    with pytest.raises(ValueError, match="only where an hf: backbone"):
        load_dediffusion(shipped("encoder"), backbone=f"hf:{copy}")
