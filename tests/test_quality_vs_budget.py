"""benchmarks/quality_vs_budget.py: its verdict picks the cheapest budget that matches, and it runs end to end."""
import importlib.util
import json
import pathlib

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "quality_vs_budget.py"


def test_quality_vs_budget_verdict_picks_the_cheapest_matching_budget(tmp_path):
    spec = importlib.util.spec_from_file_location("qvb", SCRIPT)
    qvb = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(qvb)
    rows = {"encoder": {"s_per_image": 0.001, "decoder_loss": 0.05, "probe_accuracy": 0.5},
            "invert_10": {"steps": 10, "s_per_image": 0.1, "decoder_loss": 0.09, "probe_accuracy": 0.4},
            "invert_50": {"steps": 50, "s_per_image": 0.5, "decoder_loss": 0.049, "probe_accuracy": 0.5},
            "invert_300": {"steps": 300, "s_per_image": 3.0, "decoder_loss": 0.03, "probe_accuracy": 0.6}}
    loss_line, acc_line = qvb._verdict(rows).split("\n\n")
    assert "50 steps" in loss_line and "**500x**" in loss_line and "50 steps" in acc_line
    rows.pop("invert_50"), rows.pop("invert_300")
    assert all(line.startswith("No optimisation budget") for line in qvb._verdict(rows).split("\n\n"))
    assert qvb.main(["--out", str(tmp_path), "--n", "2", "--budgets", "1", "--refine", "1"]) == 0
    result = json.loads((tmp_path / "quality_vs_budget.json").read_text())
    assert set(result["rows"]) == {"encoder", "invert_1", "refine_1", "human_caption", "full_caption"}
    assert result["rows"]["invert_1"]["s_per_image"] > 0 and "| encoder |" in (tmp_path / "quality_vs_budget.md").read_text()


def test_encoder_vs_inversion_pools_parts_and_reports_each_encoder(tmp_path):
    spec = importlib.util.spec_from_file_location("evi", SCRIPT.with_name("encoder_vs_inversion.py"))
    evi = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(evi)
    parts = []
    for i, (enc, other) in enumerate((([8, 6], [4, 4]), ([7, 9], [5, 3]))):  # hits per scene, 10 checks each
        rows = {"encoder": {"scene_hits": enc, "scene_checks": [10, 10]},
                "encoder:run1": {"scene_hits": other, "scene_checks": [10, 10]},
                "invert_300": {"scene_hits": [10, 10], "scene_checks": [10, 10]}}
        part = tmp_path / f"part{i}"
        part.mkdir()
        (part / "quality_vs_budget.json").write_text(json.dumps({"rows": rows}))
        parts.append(str(part))
    assert evi.main([*parts, "--seed", "7", "--out", str(tmp_path / "out")]) == 0
    result = json.loads((tmp_path / "out" / "ratio.json").read_text())
    assert result["scenes"] == 4 and result["invert_300"] == 1.0
    assert abs(result["ratio"] - 0.75) < 1e-9 and abs(result["runs"]["encoder:run1"]["ratio"] - 0.4) < 1e-9
    assert abs(result["mean_ratio"] - 0.575) < 1e-9 and not result["met_0.90"]
    assert result["runs"]["encoder"]["lo"] <= 0.75 <= result["runs"]["encoder"]["hi"]
    assert "seed 7" in (tmp_path / "out" / "ratio.md").read_text()
