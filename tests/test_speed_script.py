"""benchmarks/speed.py runs end to end (--tiny: few runs and steps) and states the ratio it measured."""
import importlib.util
import json
import pathlib

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "speed.py"


def test_speed_script_tiny_writes_json_and_markdown(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("speed_benchmark", SCRIPT)
    speed = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(speed)
    assert speed.main(["--tiny", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "speed.json").read_text())
    for key in ("encode_batch1", "encode_batch64", "decode", "train_step", "invert"):
        assert result[key]["median_s"] > 0 and len(result[key]["runs_s"]) >= 1, key
    assert result["encode_batch64"]["batch"] == 64 and result["tiny"] is True
    ratio = result["invert"]["s_per_image"] * result["encode_batch64"]["images_per_s"]
    md = (tmp_path / "speed.md").read_text()
    assert f"**{ratio:,.0f}x** faster per image" in md and "--tiny" in md
