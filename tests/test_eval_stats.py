"""Evaluation statistics: paired bootstrap, FD / KID from features, strict and chance-corrected accuracy, splits."""
import json

import numpy as np
import pytest
import torch

from dediffusion.cli.main import main
from dediffusion.eval.compare import chance_corrected_sweep
from dediffusion.eval.metrics import Distances, ProbeFeatures, kernel_gamma
from dediffusion.eval.stats import (FrechetResampled, KidResampled, accuracy, frechet_from_features,
    kid_from_features, paired_bootstrap)
from dediffusion.train.fit_encoder import train_encoder
from dediffusion.data.world.batches import images_tensor, scenes
from dediffusion.model.attribute_cnn import CONTENTS, Probe, ProbeConfig, save_probe
from dediffusion.eval.probe import hits_from_logits, summarise, targets
from dediffusion.data.world.scenes import COLOURS, SIZES

from .conftest import tiny_train_cfg


def _gaussians(n=400, d=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(d, d, generator=g) / d**0.5
    draw = lambda: torch.randn(n, d, generator=g) @ mix  # noqa: E731
    return mix, draw


def test_accuracy_interval_contains_the_true_difference_and_excludes_zero():
    rng = np.random.default_rng(0)
    n, total = 1000, np.full(1000, 5.0)
    a, b = rng.binomial(5, 0.8, n).astype(float), rng.binomial(5, 0.7, n).astype(float)
    r = paired_bootstrap(accuracy, (a, total), (b, total), n_boot=1000, seed=0)
    assert r["lo"] < 0.1 < r["hi"] and r["lo"] > 0  # true difference 0.8 - 0.7; clearly not 0
    assert r["diff"] == pytest.approx(a.sum() / 5000 - b.sum() / 5000)
    same = paired_bootstrap(accuracy, (a, total), (a.copy(), total), n_boot=200, seed=1)
    assert same["diff"] == same["lo"] == same["hi"] == 0


def test_frechet_interval_contains_the_population_difference():
    mix, draw = _gaussians()
    shift = torch.full((16,), 0.3)
    real, fa, fb = draw(), draw() + shift, draw() * 1.3
    cov = mix.T @ mix
    truth = float(shift.square().sum() - 0.09 * torch.trace(cov))  # FD(A) - FD(B) for the Gaussians themselves
    fd = FrechetResampled(real)
    r = paired_bootstrap(fd, fa, fb, n_boot=200, seed=0, method="basic")
    assert r["lo"] < truth < r["hi"]
    assert r["diff"] == pytest.approx(frechet_from_features(real, fa) - frechet_from_features(real, fb), rel=1e-6)
    same = paired_bootstrap(fd, fa, fa.clone(), n_boot=50, seed=0, method="basic")
    assert same["diff"] == same["lo"] == same["hi"] == 0
    far = paired_bootstrap(fd, fa, draw() + 3 * shift, n_boot=50, seed=0, method="basic")
    assert far["hi"] < 0  # A much closer to the real set than B


def test_kid_is_near_zero_for_the_same_distribution_and_grows_with_a_shift():
    _, draw = _gaussians(n=300)
    real, other = draw(), draw()
    same = kid_from_features(real, real)
    shifted = [kid_from_features(real, other + s) for s in (0.0, 0.5, 1.0)]
    assert abs(same) < 0.01 * shifted[2] and abs(shifted[0]) < 0.05 * shifted[2]
    assert shifted[0] < shifted[1] < shifted[2]
    r = paired_bootstrap(KidResampled(real), other + 0.5, other.clone(), n_boot=100, seed=0)
    assert r["lo"] > 0 and r["diff"] == pytest.approx(shifted[1] - shifted[0], rel=1e-9)


def test_fd_and_kid_from_features_match_torchmetrics():
    torch.manual_seed(0)
    probe = Probe(ProbeConfig(width=8, resolution=8)).eval()
    real, fake = images_tensor(scenes(5, 0, 40), 8), images_tensor(scenes(6, 0, 40), 8) * 0.8
    gamma = kernel_gamma(ProbeFeatures(probe), real)
    d = Distances(ProbeFeatures(probe), n=80, gamma=gamma)  # KID subsets of 80 // 2 = all 40 images: exact
    d.update(real, real=True)
    d.update(fake, real=False)
    out = d.compute()
    fr, ff = d.real_features(), out["features"]
    assert ff.shape == (40, 256)
    assert frechet_from_features(fr, ff) == pytest.approx(out["frechet_distance"], rel=1e-4)
    assert FrechetResampled(fr)(ff, np.arange(40)[None])[0] == pytest.approx(out["frechet_distance"], rel=1e-4)
    assert out["kid"] > 1e-3  # torchmetrics' KID runs in float32
    assert kid_from_features(fr, ff, gamma) == pytest.approx(out["kid"], rel=2e-3)


def test_strict_accuracy_gives_no_colour_credit_in_a_cell_read_as_empty():
    batch = [s for s in scenes(3, 0, 50) if len(s.objects) == 1][:1]
    o, tgt = batch[0].objects[0], targets(batch)
    logits = {"background": torch.zeros(1, 3), "content": torch.zeros(1, 4, len(CONTENTS)),
              "colour": torch.zeros(1, 4, len(COLOURS)), "size": torch.zeros(1, 4, len(SIZES))}
    logits["background"][0, tgt["background"][0]] = 5
    logits["content"][0, :, CONTENTS.index("empty")] = 5  # the probe reads every cell as empty ...
    logits["colour"][0, o.cell, list(COLOURS).index(o.colour)] = 5  # ... yet its colour and size heads are right
    logits["size"][0, o.cell, SIZES.index(o.size)] = 5
    acc = summarise(hits_from_logits(logits, tgt))
    assert acc["colour"] == acc["size"] == 1 and acc["colour_strict"] == acc["size_strict"] == 0
    assert acc["strict"] < acc["all"]
    other_shape = next(i for i, c in enumerate(CONTENTS) if c not in ("empty", o.shape))
    logits["content"][0, o.cell, other_shape] = 9  # an object, the wrong shape: colour and size count again
    acc = summarise(hits_from_logits(logits, tgt))
    assert acc["colour_strict"] == acc["size_strict"] == 1 and acc["content"] < 1


def test_chance_corrected_accuracy_is_zero_for_empty_and_one_for_full():
    acc = {"dediffusion": [0.6, 0.7], "empty": [0.4, 0.5], "full_caption": [0.9, 0.8]}
    out = chance_corrected_sweep(acc)
    assert out["empty"] == [0, 0] and out["full_caption"] == [1, 1]
    assert out["dediffusion"] == pytest.approx([0.4, 2 / 3])
    assert chance_corrected_sweep({"dediffusion": [0.5]}) is None


@pytest.fixture(scope="module")
def tiny_model_dir(tiny_decoder_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny_encoder_stats")
    train_encoder(tiny_train_cfg(steps=2), folder, tiny_decoder_dir, progress=False)
    return folder


def test_cli_eval_test_split_records_seed_7_and_saves_per_scene_results(tiny_model_dir, tmp_path, capsys, monkeypatch):
    import dediffusion.eval.evaluate as ev

    seeds, generate = {}, ev.generate

    def recording(decoder, prompts, **kw):  # which starting noise each source gets, batch by batch
        seeds.setdefault(kw["guidance"], []).append(kw["seed"])
        return generate(decoder, prompts, **kw)

    monkeypatch.setattr(ev, "generate", recording)
    save_probe(Probe(ProbeConfig(resolution=8)), tmp_path / "probe")
    args = ["eval", "--n", "5", "--steps", "2", "--json", "--model", str(tiny_model_dir), "--probe",
            str(tmp_path / "probe"), "--guidance", "1.5,3", "--batch-size", "3", "--report", str(tmp_path / "rep")]
    assert main(args + ["--split", "test"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert (r["split"], r["seed"], r["n"]) == ("test", 7, 5)
    assert all(s == seeds[1.5][:2] * 4 for s in seeds.values())  # 4 sources x 2 batches, the same noise per scene
    hits = r["per_scene"]["hits"]
    assert set(hits) == {"dediffusion", "human_caption", "full_caption", "empty"}
    assert all(len(h[i]["colour_strict"]) == 5 for h in hits.values() for i in range(2))
    assert r["floor"]["probe"]["kid"] is not None and r["kid"]["probe"]["dediffusion"] is not None
    rows = r["paired_bootstrap"]["comparisons"]
    assert [(c["a"], c["b"], c["guidance"]) for c in rows] == [("dediffusion", "human_caption", g) for g in (1.5, 3)]
    assert all(c["accuracy"]["lo"] <= c["accuracy"]["hi"] for c in rows)
    from safetensors.torch import load_file

    feats = load_file(tmp_path / "rep" / "features.safetensors")
    assert feats["probe/real"].shape == feats["probe/empty/g3"].shape == (5, 256)
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "Split **test**" in md and "real vs real (floor)" in md and "`dediffusion` vs `human_caption`" in md
    assert "--split test" in json.loads((tmp_path / "rep" / "report.json").read_text())["command"]
    assert main(args[:-2] + ["--seed", "0"]) == 2 and "training seed" in capsys.readouterr().err
    assert main(args[:-2] + ["--seed", "11", "--sources", "empty", "--pairs", "empty:nope"]) == 2
