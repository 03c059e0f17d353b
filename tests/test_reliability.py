"""The bar of the reliability issue: `encode` over a folder of every kind of bad input, and text edge cases."""
import json
import os
import subprocess
import sys

import pytest

from dediffusion.bulk.stream import read_jsonl
from dediffusion.cli.main import main
from dediffusion.data.images import display_path
from dediffusion.train.fit_encoder import train_encoder

from .image_corpus import build_corpus
from .conftest import tiny_train_cfg
from .train_helpers import SRC


@pytest.fixture(scope="module")
def tiny_model(tiny_decoder_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny_encoder_reliability")
    train_encoder(tiny_train_cfg(steps=2), folder, tiny_decoder_dir, progress=False)
    return folder


def _encode(args):
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1", "DEDIFFUSION_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "dediffusion.cli", "encode", *args], capture_output=True, env=env,
                          timeout=300)


def test_encode_over_the_bad_input_corpus(tiny_model, tmp_path, capsys):
    corpus = tmp_path / "photos"
    corpus.mkdir()
    good, bad = build_corpus(corpus)
    missing = str(tmp_path / "missing.png")
    bad[missing] = "no such file"
    out = tmp_path / "captions.jsonl"
    run = _encode([str(corpus), missing, "--out", str(out), "--model", str(tiny_model), "--batch-size", "4"])
    err = run.stderr.decode("utf-8")  # must decode: every line printable whatever the file names
    assert "Traceback" not in err, err
    rows = list(read_jsonl(out))
    assert sorted(r["image"] for r in rows) == sorted(good)
    assert all(isinstance(r["text"], str) and r["text"].split() for r in rows)
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == len(bad), "\n".join(errors)
    for path, reason in bad.items():
        mine = [line for line in errors if line.startswith(f"error: {display_path(path)}: ")]
        assert len(mine) == 1 and reason in mine[0], (path, mine)
    assert err.splitlines()[-1] == f"encoded {len(good)} image(s), {len(bad)} failed"
    assert run.returncode == 1 and run.stdout == b""

    rerun = ["encode", str(corpus), missing, "--out", str(out), "--model", str(tiny_model)]
    assert main(rerun) == 1  # in-process this time: resumes, retries only the bad ones
    assert capsys.readouterr().err.splitlines()[-1] == (f"encoded 0 image(s), {len(bad)} failed, "
                                                        f"{len(good)} already done (skipped)")
    assert len(list(read_jsonl(out))) == len(good)


def test_all_good_folder_exits_zero_and_stdout_keeps_its_format(tiny_model, tmp_path, capsys):
    from PIL import Image

    (tmp_path / "a" / "b").mkdir(parents=True)
    for name in ("a/1.png", "a/b/2.jpg", "3.png"):
        Image.new("RGB", (5, 7), (200, 10, 10)).save(tmp_path / name)
    assert main(["encode", str(tmp_path), "--model", str(tiny_model), "--format", "jsonl"]) == 0
    out, err = capsys.readouterr()
    assert sorted(json.loads(line)["image"] for line in out.splitlines()) == sorted(
        str(tmp_path / n) for n in ("a/1.png", "a/b/2.jpg", "3.png"))
    assert err.strip().endswith("encoded 3 image(s), 0 failed")
    assert main(["encode", str(tmp_path), "--model", str(tiny_model), "--out", str(tmp_path / "o.jsonl"),
                 "--format", "text"]) == 2  # --out is JSONL only


@pytest.mark.parametrize("text", ["", "   ", "\x00\x01\x1b\x7f\x9b", "\t\n\r"])
def test_decode_refuses_empty_or_control_only_text(tiny_decoder_dir, tmp_path, capsys, text):
    assert main(["decode", text, "-o", str(tmp_path / "x.png"), "--decoder", str(tiny_decoder_dir)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: empty text") and len(err.splitlines()) == 1
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("text", ["a red circle\x00 on\x1b a \u0085blue square", "日本語の赤い円 🟥🔵 مرحبا",
                                  "e\u0301\u200d\ufeff\U0010ffff", os.fsdecode(b"caf\xe9 red")])
def test_decode_accepts_any_unicode_and_control_characters(tiny_decoder_dir, tmp_path, capsys, text):
    out = tmp_path / "x.png"
    assert main(["decode", text, "-o", str(out), "--decoder", str(tiny_decoder_dir), "--steps", "1"]) == 0
    assert out.is_file() and "warning" not in capsys.readouterr().err


def test_decode_truncates_long_text_with_a_count(tiny_decoder_dir, tmp_path, capsys, recwarn):
    text = " ".join(["red circle"] * 50)  # 100 tokens; the context reads 75
    assert main(["decode", text, "-o", str(tmp_path / "x.png"), "--decoder", str(tiny_decoder_dir), "--steps", "1"]) == 0
    err = capsys.readouterr().err.splitlines()
    warn = [line for line in err if line.startswith("warning:")]
    assert len(warn) == 1 and "25 of 100 tokens dropped" in warn[0]
    assert not [w for w in recwarn if "truncated" in str(w.message)]  # reported once, as one line
