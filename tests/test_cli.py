"""The commands end to end on tiny checkpoints: good inputs processed, bad ones reported in one line."""
import json

import numpy as np
from PIL import Image

from dediffusion.cli.main import main


def test_encode_reports_bad_files_and_processes_the_rest(tiny_model_dir, image_files, capsys):
    good, bad = image_files
    code = main(["encode", *map(str, [good[0], *bad, *good[1:]]), "--model", str(tiny_model_dir), "--format", "jsonl"])
    out, err = capsys.readouterr()
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["image"] for r in rows] == [str(p) for p in good]
    assert all(r["text"] and r["text"].split() for r in rows)
    err_lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(err_lines) == len(bad)
    for p in bad:
        assert sum(str(p) in line for line in err_lines) == 1
    assert code == 1 and "encoded 3 image(s), 3 failed" in err


def test_encode_all_good_exits_zero(tiny_model_dir, image_files, capsys):
    good, _ = image_files
    assert main(["encode", *map(str, good), "--model", str(tiny_model_dir)]) == 0
    assert len(capsys.readouterr().out.splitlines()) == len(good)


def test_decode_writes_png_and_rejects_empty_text(tiny_decoder_dir, tmp_path, capsys):
    out = tmp_path / "x.png"
    assert main(["decode", "a red circle", "-o", str(out), "--decoder", str(tiny_decoder_dir), "--steps", "2", "--scale", "1"]) == 0
    assert Image.open(out).size == (8, 8)
    assert main(["decode", "  ", "-o", str(tmp_path / "y.png"), "--decoder", str(tiny_decoder_dir)]) == 2
    assert "empty text" in capsys.readouterr().err and not (tmp_path / "y.png").exists()


def test_decode_is_reproducible_by_seed(tiny_decoder_dir, tmp_path):
    paths = [tmp_path / f"{i}.png" for i in range(3)]
    for p, seed in zip(paths, (1, 1, 2)):
        main(["decode", "a red circle", "-o", str(p), "--decoder", str(tiny_decoder_dir), "--steps", "2", "--seed", str(seed)])
    a, b, c = (np.asarray(Image.open(p)) for p in paths)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_reconstruct_writes_one_png_per_good_image(tiny_model_dir, image_files, tmp_path, capsys):
    good, bad = image_files
    out = tmp_path / "recon"
    code = main(["reconstruct", *map(str, good + bad[:1]), "-o", str(out), "--model", str(tiny_model_dir), "--steps", "2"])
    assert code == 1
    assert sorted(p.name for p in out.iterdir()) == sorted(p.stem + ".png" for p in good)


def test_eval_json_has_the_promised_keys(tiny_model_dir, tmp_path, capsys):
    from dediffusion.model.attribute_cnn import Probe, ProbeConfig, save_probe

    save_probe(Probe(ProbeConfig(resolution=8)), tmp_path / "probe")
    code = main(["eval", "--seed", "7", "--n", "4", "--steps", "2", "--json", "--model", str(tiny_model_dir),
                 "--probe", str(tmp_path / "probe"), "--batch-size", "2"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result["accuracy"]) == {"dediffusion", "human_caption", "full_caption", "empty"}
    assert all(0 <= v <= 1 for v in result["accuracy"].values())
    assert 0 < result["distinct_text_fraction"] <= 1 and result["n"] == 4


def test_eval_refuses_the_training_seed(tiny_model_dir, capsys):
    assert main(["eval", "--seed", "0", "--n", "2", "--model", str(tiny_model_dir)]) == 2
    assert "training seed" in capsys.readouterr().err


def test_bad_override_is_a_one_line_error(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path), "--set", "lr=fast"]) == 2
    assert "lr" in capsys.readouterr().err
    assert main(["train", "--out", str(tmp_path), "--set", "nope=1"]) == 2
    assert "unknown key 'nope'" in capsys.readouterr().err



def test_export_writes_fp16_and_records_the_decoder_reference(tiny_model_dir, tmp_path):
    from safetensors import safe_open

    from dediffusion.checkpoint import read_json

    out = tmp_path / "exported"
    assert main(["export", "encoder", str(tiny_model_dir), str(out), "--decoder-ref", "shipped:decoder"]) == 0
    with safe_open(str(out / "encoder.safetensors"), "pt") as f:
        dtypes = {f.get_slice(k).get_dtype() for k in f.keys()}
    assert "F16" in dtypes and "F32" not in dtypes
    assert read_json(out / "encoder.json")["config"]["decoder_path"] == "shipped:decoder"


def test_export_refuses_a_decoder_reference_the_checkpoint_could_not_load(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "exported"
    code = main(["export", "encoder", str(tiny_model_dir), str(out), "--decoder-ref", "benchmarks/checkpoints/dec"])
    assert code != 0 and "Leave --decoder-ref out" in capsys.readouterr().err
    assert not (out / "encoder.json").exists()  # refused before anything is written
    assert main(["export", "encoder", str(tiny_model_dir), str(out), "--decoder-ref", "../dec"]) != 0
    assert "outside the checkpoint folder" in capsys.readouterr().err


def test_export_can_switch_inference_to_sampling_but_nothing_that_touches_weights(tiny_model_dir, tmp_path, capsys):
    from dediffusion.model.autoencoder import load_dediffusion
    from dediffusion.checkpoint import read_json

    out = tmp_path / "sampled"
    assert main(["export", "encoder", str(tiny_model_dir), str(out), "--set", "head.inference=sample",
                 "--set", "head.sample_temperature=0.7"]) == 0
    head = read_json(out / "encoder.json")["config"]["head"]
    assert (head["inference"], head["sample_temperature"]) == ("sample", 0.7)
    model = load_dediffusion(out)
    assert model.head.cfg.inference == "sample"
    assert main(["export", "encoder", str(tiny_model_dir), str(tmp_path / "bad"), "--set",
                 "encoder.num_tokens=3"]) == 2
    assert "only head.inference" in capsys.readouterr().err
