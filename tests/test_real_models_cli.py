"""train -> encode -> decode through the CLI with Stable Diffusion and transformers backbones.

Tiny random SD pipelines (epsilon and v-prediction) and CLIP / SigLIP / DINOv2 vision models are
built here and saved to temporary folders, exactly as ``--decoder DIR`` / ``hf:DIR`` read real ones.
"""
import hashlib
import json

import pytest
import torch
from PIL import Image

from dediffusion.checkpoint import load_tensors, read_json
from dediffusion.cli.main import main
from dediffusion.config import from_dict
from dediffusion.train.fit_encoder import EncoderTrainConfig, build_model
from dediffusion.data.world.batches import scenes
from dediffusion.data.world.scenes import render

from .tiny_models import IMAGE, save_tiny_sd, save_tiny_vision

TINY_ENCODER = ["model.encoder.width=16", "model.encoder.heads=2", "model.encoder.blocks=1",
                "model.encoder.num_tokens=6"]


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("real_models")
    out = {"epsilon": save_tiny_sd(root / "sd_eps", "epsilon"),
           "v_prediction": save_tiny_sd(root / "sd_v", "v_prediction", pad_token="!")}
    out.update({k: save_tiny_vision(root / k, k) for k in ("clip", "siglip", "dinov2")})
    return out


def _tree_sha(folder) -> str:
    h = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(folder)).encode() + f.read_bytes())
    return h.hexdigest()


def _train_args(run, sd, backbone, *extra):
    sets = ["steps=2", "batch_size=2", "checkpoint_every=2", f"model.encoder.backbone=hf:{backbone}", *TINY_ENCODER]
    return ["train", "--out", str(run), "--decoder", str(sd), *(a for s in sets for a in ("--set", s)), *extra]


@pytest.mark.parametrize("kind,prediction",
                         [("clip", "epsilon"), ("siglip", "v_prediction"), ("dinov2", "v_prediction")])
def test_train_encode_decode_with_stable_diffusion(dirs, kind, prediction, tmp_path, capsys):
    sd, run = dirs[prediction], tmp_path / "run"
    before = _tree_sha(sd)
    assert main(_train_args(run, sd, dirs[kind])) == 0
    assert _tree_sha(sd) == before  # the frozen decoder is never written
    meta = read_json(run / "encoder.json")["config"]
    assert meta["decoder_path"] == str(sd) and len(meta["decoder_sha256"]) == 64

    # the encoder trained (gradients reached it); the frozen backbone did not move
    cfg = from_dict(EncoderTrainConfig, read_json(run / "train_config.json")["config"])
    init = build_model(cfg, sd).state_dict()
    trained = load_tensors(run / "encoder.safetensors")
    assert not torch.equal(trained["encoder.pooler.queries"], init["encoder.pooler.queries"])
    assert not torch.equal(trained["head.proj.weight"], init["head.proj.weight"])
    backbone_keys = [k for k in trained if k.startswith("encoder.backbone.")]
    assert backbone_keys and all(torch.equal(trained[k], init[k]) for k in backbone_keys)
    assert not any(k.startswith("decoder.") for k in trained)

    image = tmp_path / "scene.png"
    Image.fromarray(render(scenes(9, 0, 1)[0], 32)).save(image)
    capsys.readouterr()
    # a folder outside the run is read only when given again (configs never point outside their folder)
    assert main(["encode", str(image), "--model", str(run)]) == 2
    assert "give that folder explicitly" in capsys.readouterr().err
    assert main(["encode", str(image), "--model", str(run), "--decoder", str(sd)]) == 2  # so is the hf: backbone
    assert "--backbone hf:PATH" in capsys.readouterr().err
    backbone = ["--backbone", f"hf:{dirs[kind]}"]
    assert main(["encode", str(image), "--model", str(run), "--format", "jsonl", "--decoder", str(sd), *backbone]) == 0
    text = json.loads(capsys.readouterr().out.splitlines()[0])["text"]
    assert text.split()
    out = tmp_path / "decoded.png"
    assert main(["decode", text, "-o", str(out), "--decoder", str(sd), "--steps", "2", "--scale", "1"]) == 0
    assert Image.open(out).size == (IMAGE, IMAGE)
    recon = tmp_path / "recon"
    assert main(["reconstruct", str(image), "-o", str(recon), "--model", str(run), "--decoder", str(sd), *backbone,
                 "--steps", "2", "--scale", "1"]) == 0
    assert Image.open(recon / "scene.png").size == (2 * IMAGE + 3, IMAGE + 2)  # original | reconstruction


def test_gradient_reaches_the_encoder_and_not_the_stable_diffusion_decoder(dirs):
    encoder = {"backbone": f"hf:{dirs['clip']}", "width": 16, "heads": 2, "blocks": 1, "num_tokens": 6}
    cfg = from_dict(EncoderTrainConfig, {"model": {"encoder": encoder}})
    model = build_model(cfg, dirs["v_prediction"]).train()
    images = torch.rand(2, 3, IMAGE, IMAGE)
    loss, _ = model(images, 1.0, torch.tensor([300, 900]), torch.randn(2, 4, IMAGE // 2, IMAGE // 2),
                    generator=torch.Generator().manual_seed(0))
    loss.backward()
    for name in ("encoder.pooler.queries", "encoder.pooler.proj.weight", "head.proj.weight"):
        g = dict(model.named_parameters())[name].grad
        assert g is not None and g.abs().sum() > 0, name
    assert all(p.grad is None and not p.requires_grad for p in model.decoder.parameters())
    assert all(p.grad is None for p in model.encoder.backbone.parameters())


def test_unfreeze_backbone_fine_tunes_it(dirs, tmp_path):
    run = tmp_path / "run"
    assert main(_train_args(run, dirs["epsilon"], dirs["clip"], "--unfreeze-backbone")) == 0
    cfg = from_dict(EncoderTrainConfig, read_json(run / "train_config.json")["config"])
    assert cfg.model.encoder.freeze_backbone is False
    init = build_model(cfg, dirs["epsilon"]).state_dict()
    trained = load_tensors(run / "encoder.safetensors")
    key = next(k for k in trained if k.startswith("encoder.backbone.") and k.endswith("fc1.weight"))
    assert not torch.equal(trained[key], init[key])


def test_paper_preset_composes_with_local_models(dirs, tmp_path):
    """The paper preset (bf16 autocast, UNet checkpointing, 'words' vocabulary) on tiny stand-ins, on CPU."""
    from dediffusion.configs import preset

    paper = preset("paper_sd21")
    enc = paper.model.encoder
    assert (enc.num_tokens, enc.blocks, enc.freeze_backbone) == (75, 5, True)
    assert (paper.model.head.tau_start, paper.model.head.tau_end, paper.model.head.vocab) == (2.0, 0.3, "words")
    assert (paper.lr, paper.warmup, paper.steps, paper.batch_size) == (3e-4, 10_000, 500_000, 2048)
    run = tmp_path / "run"
    args = _train_args(run, dirs["v_prediction"], dirs["siglip"], "--preset", "paper_sd21",
                       "--set", "device=cpu", "--set", "steps=1")
    assert main(args) == 0
    cfg = read_json(run / "train_config.json")["config"]
    assert cfg["model"]["sd"] == {"resolution": 0, "precision": "bf16", "gradient_checkpointing": True}
    assert read_json(run / "train_state.json")["step"] == 1
