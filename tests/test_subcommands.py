"""Every ``dediffusion`` subcommand runs through ``main`` on tiny configs, and the results are checked.

The subcommands tested elsewhere are listed in ``COVERED`` with the test that runs them through the
real entry point; ``test_every_subcommand_has_a_test_through_main`` fails for a subcommand (or an
``export`` kind) that has none, or whose test no longer calls it.
"""
import ast
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dediffusion.checkpoint import load_tensors, read_json
from dediffusion.cli.main import build_parser, main
from dediffusion.config import to_dict

from .conftest import TINY_DECODER, TINY_DECODER_ARGS

HERE = Path(__file__).resolve().parent

# subcommand (or "export KIND") -> the test that runs it through main() / python -m dediffusion.cli / torchrun
COVERED = {
    "encode": "test_cli.py::test_encode_reports_bad_files_and_processes_the_rest",
    "decode": "test_cli.py::test_decode_writes_png_and_rejects_empty_text",
    "reconstruct": "test_cli.py::test_reconstruct_writes_one_png_per_good_image",
    "eval": "test_cli.py::test_eval_json_has_the_promised_keys",
    "invert": "test_report.py::test_cli_invert_prints_one_allowed_text_per_good_image",
    "explain": "test_explain.py::test_explain_command_writes_json_and_png",
    "demo": "test_subcommands.py::test_demo_prints_texts_and_writes_the_grid",
    "pretrain-decoder": "test_subcommands.py::test_pretrain_decoder_resumes_exports_and_decodes",
    "train": "test_distributed.py::test_torchrun_two_processes_match_one_process",
    "train-probe": "test_subcommands.py::test_train_probe_prints_its_accuracy_and_exports",
    "export decoder": "test_subcommands.py::test_pretrain_decoder_resumes_exports_and_decodes",
    "export encoder": "test_cli.py::test_export_writes_fp16_and_records_the_decoder_reference",
    "export probe": "test_subcommands.py::test_train_probe_prints_its_accuracy_and_exports",
    "ask": "test_apps_cli.py::test_ask_remote_zero_shot_sends_the_system_message_and_question",
    "chat": "test_apps_cli.py::test_chat_reads_piped_stdin_until_eof_and_keeps_history",
    "vqa-eval": "test_apps_cli.py::test_vqa_eval_small_run_writes_json",
    "serve": "test_subcommands.py::test_serve_builds_the_app_from_its_flags",
}


def _subcommands() -> dict:
    return build_parser()._subparsers._group_actions[0].choices


def _dtypes(path) -> set[str]:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        return {f.get_slice(k).get_dtype() for k in f.keys()}


def _test_source(ref: str) -> str:
    file, name = ref.split("::")
    tree = ast.parse((HERE / file).read_text(encoding="utf-8"))
    fn = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name), None)
    assert fn is not None, f"{ref}: no such test"
    return ast.get_source_segment((HERE / file).read_text(encoding="utf-8"), fn)


def test_every_subcommand_has_a_test_through_main():
    subs = _subcommands()
    kinds = next(a for a in subs["export"]._actions if a.dest == "kind").choices
    expected = {*(s for s in subs if s != "export"), *(f"export {k}" for k in kinds)}
    assert set(COVERED) == expected, {"untested": expected - set(COVERED), "gone": set(COVERED) - expected}
    for command, ref in COVERED.items():
        source = _test_source(ref)
        words = command.split()
        # main(["cmd", ...]) or a command line that ends in "cmd" (torchrun -m dediffusion.cli cmd)
        assert f'"{words[0]}"' in source and ("main(" in source or "dediffusion.cli" in source), (command, ref)
        if len(words) == 2:
            assert f'"{words[1]}"' in source, (command, ref)


def test_pretrain_decoder_resumes_exports_and_decodes(tmp_path, capsys):
    from dediffusion.model.decoders import load_decoder
    from dediffusion.model.decoders.builtin import BuiltinDecoder

    args = [*TINY_DECODER_ARGS, "--set", "steps=2", "--set", "batch_size=2", "--set", "checkpoint_every=1",
            "--set", "warmup=1"]
    run = tmp_path / "run"
    assert main(["pretrain-decoder", "--out", str(run), *args]) == 0
    assert {"decoder.json", "decoder.safetensors", "train_config.json", "train_state.json",
            "train_state.safetensors"} <= {p.name for p in run.iterdir()}
    saved = read_json(run / "train_config.json")
    assert saved["kind"] == "decoder" and saved["config"]["decoder"] == to_dict(TINY_DECODER)
    assert saved["config"]["steps"] == 2 and read_json(run / "train_state.json")["step"] == 2
    assert np.isfinite(read_json(run / "train_state.json")["loss"])

    trained, fresh = load_decoder(run), BuiltinDecoder(TINY_DECODER)  # same init seed
    assert trained.resolution == 8 and trained.state_dict().keys() == fresh.state_dict().keys()
    assert any(not torch.equal(a, b) for a, b in zip(trained.state_dict().values(), fresh.state_dict().values()))

    # --stop-at then --resume: the same weights as the straight run
    halves = tmp_path / "halves"
    assert main(["pretrain-decoder", "--out", str(halves), *args, "--stop-at", "1"]) == 0
    assert read_json(halves / "train_state.json")["step"] == 1
    assert main(["pretrain-decoder", "--out", str(halves), *args, "--resume"]) == 0
    straight, resumed = (load_tensors(f / "decoder.safetensors", None) for f in (run, halves))
    assert straight.keys() == resumed.keys() and all(torch.equal(straight[k], resumed[k]) for k in straight)

    out = tmp_path / "exported"
    assert main(["export", "decoder", str(run), str(out)]) == 0
    assert _dtypes(out / "decoder.safetensors") == {"F16"}
    assert read_json(out / "decoder.json") == read_json(run / "decoder.json")
    exported = load_tensors(out / "decoder.safetensors", None)
    assert all(torch.equal(exported[k], straight[k].half()) for k in straight)
    assert load_decoder(out).resolution == 8
    capsys.readouterr()
    png = tmp_path / "red.png"
    assert main(["decode", "a red circle", "-o", str(png), "--decoder", str(out), "--steps", "2", "--scale", "2"]) == 0
    assert Image.open(png).size == (16, 16)
    capsys.readouterr()
    assert main(["export", "decoder", str(tmp_path / "nowhere"), str(tmp_path / "x")]) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_train_probe_prints_its_accuracy_and_exports(tmp_path, capsys):
    from dediffusion.data.world.batches import images_tensor, scenes
    from dediffusion.model.attribute_cnn import load_probe

    run = tmp_path / "probe_run"
    assert main(["train-probe", "--out", str(run), "--set", "steps=2", "--set", "batch_size=4",
                 "--set", "test_n=6", "--set", "test_seed=3"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed and all(0 <= v <= 1 for v in printed.values())
    meta = read_json(run / "probe.json")
    assert meta["test_accuracy"] == printed and (meta["test_n"], meta["test_seed"]) == (6, 3)
    probe = load_probe(run)
    images = images_tensor(scenes(3, 0, 2), probe.cfg.resolution)
    logits = probe(images)
    assert all(torch.isfinite(v).all() for v in (logits.values() if isinstance(logits, dict) else [logits]))

    out = tmp_path / "probe_export"
    assert main(["export", "probe", str(run), str(out)]) == 0
    assert _dtypes(out / "probe.safetensors") == {"F16"}
    assert read_json(out / "probe.json") == meta
    a, b = (load_tensors(f / "probe.safetensors", None) for f in (run, out))
    assert a.keys() == b.keys() and all(torch.equal(a[k].half(), b[k]) for k in a)
    assert main(["export", "probe", str(run), str(tmp_path / "bad"), "--set", "head.inference=sample"]) == 2
    assert "encoders only" in capsys.readouterr().err


def test_demo_prints_texts_and_writes_the_grid(tmp_path, capsys):
    from dediffusion.data.world.batches import scenes
    from dediffusion.data.world.scenes import human_caption, render

    n, seed = 2, 12345  # demo's default seed
    assert build_parser().parse_args(["demo"]).seed == seed
    assert main(["demo", "-o", str(tmp_path / "demo"), "--n", str(n), "--steps", "2"]) == 0
    out = capsys.readouterr().out
    batch = scenes(seed, 0, n)
    captions = [line.split(": ", 1)[1] for line in out.splitlines() if "caption" in line and line.startswith("[")]
    texts = [line.split(": ", 1)[1] for line in out.splitlines() if "De-Diffusion   :" in line]
    assert captions == [human_caption(s) for s in batch]
    assert len(texts) == n and all(t.split() for t in texts)
    readings = [line.split(": ", 1)[1] for line in out.splitlines() if "as an LLM reads:" in line]
    assert len(readings) == n and all(r != t and r.startswith("There ") and " at the " in r
                                      for r, t in zip(readings, texts))  # the caption grammar, as sentences
    grid = np.asarray(Image.open(tmp_path / "demo" / "grid.png").convert("RGB"))
    side, pad, scale = 16, 1, 8  # the shipped decoder's resolution; gutters of 1 px; x8 nearest
    assert grid.shape == ((n * (side + pad) + pad) * scale, (3 * (side + pad) + pad) * scale, 3)
    small = grid[::scale, ::scale]
    for i, s in enumerate(batch):  # column 0: the scene itself
        y = pad + i * (side + pad)
        assert np.array_equal(small[y:y + side, pad:pad + side], render(s, side))


def test_serve_builds_the_app_from_its_flags(tiny_model_dir, image_files, monkeypatch, capsys):
    pytest.importorskip("fastapi", reason="the serve extra is not installed")
    import uvicorn
    from fastapi.testclient import TestClient

    good, _ = image_files
    assert main(["encode", str(good[0]), "--model", str(tiny_model_dir), "--format", "jsonl"]) == 0
    expected = json.loads(capsys.readouterr().out)["text"]
    seen = {}

    def run(app, host, port, **kw):  # instead of serving forever: one request through the app
        seen.update(host=host, port=port, **kw)
        with TestClient(app) as client:
            seen["encode"] = client.post("/encode", files=[("files", ("s.png", good[0].read_bytes(), "image/png"))])
            seen["decode"] = client.post("/decode", json={"text": "red", "steps": 3})

    monkeypatch.setattr(uvicorn, "run", run)
    assert main(["serve", "--port", "8123", "--model", str(tiny_model_dir), "--max-steps", "2",
                 "--graceful-timeout", "3", "--log-level", "warning"]) == 0
    assert (seen["host"], seen["port"], seen["log_level"], seen["timeout_graceful_shutdown"]) == \
        ("127.0.0.1", 8123, "warning", 3)
    assert seen["encode"].status_code == 200 and seen["encode"].json()["results"][0]["text"] == expected
    assert seen["decode"].status_code == 422 and seen["decode"].json()["part"] == "steps"  # --max-steps 2
    assert "http://127.0.0.1:8123/" in capsys.readouterr().err
