"""Presets are the recipes: every shipped checkpoint's recorded config is its preset's, field by field.

A checkpoint records its resolved training config (``train_config.json``: the last stage's ``config``,
earlier stages in ``history``, as a config or as the command that ran) or, for probes, the network's
config and test split (``probe.json``). Each recorded stage must be its preset's config exactly: every
field of the preset's dataclass equals the recorded value, and a recorded key that is no longer a
field is allowed only as a retired one at its neutral value (``dediffusion.config.RETIRED``).
``init_from`` is a path on the machine that ran the stage: it must be set in both or in neither.
"""
from __future__ import annotations

import dataclasses
import json
import pathlib
import re

import pytest

import dediffusion.config as config_module
from dediffusion.cli.main import main
from dediffusion.config import apply_overrides
from dediffusion.configs import PRESETS, command_of, preset, source_file
from dediffusion.model.attribute_cnn import ProbeConfig
from dediffusion.train import fit_decoder, fit_encoder, fit_probe
from dediffusion.train.fit_decoder import DecoderTrainConfig

ROOT = pathlib.Path(__file__).resolve().parents[1]
CHECKPOINTS = ROOT / "src" / "dediffusion" / "assets" / "checkpoints"
SHIPPED = {  # checkpoint folder -> its presets, in the order they run
    "encoder": ["world_encoder", "world_encoder_stretch", "world_encoder_stretch2",
                "world_encoder_stretch3", "world_encoder_stretch4", "world_encoder_bigram", "world_encoder_bigram2",
                "world_encoder_bigram3", "world_encoder_bigram4", "world_encoder_bigram5", "world_encoder_gpu"],
    "decoder": ["world_decoder_phase1", "world_decoder_phase2", "world_decoder_phase3", "world_decoder"],
    "probe": ["world_probe"],
    "backbone": ["world_backbone"],
}
ABLATIONS = ["world_encoder_stretch5"]  # presets of no shipped checkpoint, each compared in RESULTS.md
COMMAND = {"encoder": "train", "decoder": "pretrain-decoder", "probe": "train-probe", "backbone": "train-probe"}
_MISSING = object()


def _json(value):
    return json.loads(json.dumps(dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value))


def _default(f: dataclasses.Field):
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else _MISSING


def differences(cfg, record: dict, path: str = "") -> list[str]:
    """Where preset config ``cfg`` and a recorded config differ, one line each (empty: the same)."""
    retired = getattr(config_module, "RETIRED", {})
    out, names = [], set()
    for f in dataclasses.fields(cfg):
        names.add(f.name)
        key, mine = path + f.name, getattr(cfg, f.name)
        if f.name not in record:  # a field added after the run: the run had its default's behaviour
            if mine != _default(f):
                out.append(f"{key}: not recorded, and the preset's {_json(mine)!r} is not the default")
        elif dataclasses.is_dataclass(mine) and isinstance(record[f.name], dict):
            out += differences(mine, record[f.name], key + ".")
        elif key == "init_from":
            if bool(mine) != bool(record[f.name]):
                out.append(f"init_from: recorded {record[f.name]!r}, preset {mine!r} (set in both or neither)")
        elif _json(mine) != record[f.name]:
            out.append(f"{key}: recorded {record[f.name]!r}, preset {_json(mine)!r}")
    for k in sorted(set(record) - names):
        key = path + k
        neutral = retired.get(key, retired.get(k, _MISSING))
        if neutral is _MISSING:
            out.append(f"{key}: recorded {record[k]!r}, but it is no field of {type(cfg).__name__} nor retired")
        elif _json(neutral) != record[k]:
            out.append(f"{key}: retired, recorded at {record[k]!r} instead of its neutral {neutral!r}")
    return out


def _record(folder: pathlib.Path, name: str = "train_config.json") -> dict:
    return json.loads((folder / name).read_text())


def test_the_comparison_fails_on_a_changed_an_unknown_or_a_missing_start_field():
    cfg = preset("world_encoder_stretch")
    record = _json(cfg)
    assert differences(cfg, record) == []
    record["model"]["head"]["tau_start"] = 2.0
    record["model"]["head"]["no_such_field"] = 1
    record["init_from"] = ""
    assert [line.split(":")[0] for line in differences(cfg, record)] == [
        "model.head.tau_start", "model.head.no_such_field", "init_from"]


def test_every_shipped_checkpoint_has_presets_and_every_world_preset_a_checkpoint_or_a_documented_ablation():
    assert sorted(p.name for p in CHECKPOINTS.iterdir() if p.is_dir()) == sorted(SHIPPED)
    shipped = [n for names in SHIPPED.values() for n in names]
    assert sorted(shipped + ABLATIONS) == sorted(n for n in PRESETS if n != "paper_sd21")
    results = (ROOT / "benchmarks" / "RESULTS.md").read_text()
    assert all(f"`{n}`" in results for n in ABLATIONS)
    for folder, names in SHIPPED.items():
        assert {command_of(n) for n in names} == {COMMAND[folder]}


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_file_states_its_command_cost_and_result(name):
    doc = (ROOT / "src" / source_file(name)).read_text().split('"""')[1]
    assert re.search(rf"dediffusion(\.cli)? {command_of(name)} .*--preset {name}\b", doc), doc
    assert "cost" in doc.lower() and "result" in doc.lower()


@pytest.mark.parametrize("folder,extra", [
    (CHECKPOINTS / "encoder", []),
    (ROOT / "benchmarks" / "checkpoints" / "encoder_seed1", ["seed=1"]),  # the recipe's other training runs
    (ROOT / "benchmarks" / "checkpoints" / "encoder_seed2", ["seed=2"]),
], ids=["shipped", "seed1", "seed2"])
def test_the_encoder_is_world_encoder_then_ten_stretches_the_last_six_with_the_bigram_prior(folder, extra):
    record = _record(folder)
    stages = {h["stage"]: h for h in record["history"] if "stage" in h}
    assert sorted(stages) == list(range(1, 12))
    for stage, name in ((1, "world_encoder"), (2, "world_encoder_stretch"), (3, "world_encoder_stretch2"),
                        (4, "world_encoder_stretch3"), (5, "world_encoder_stretch4"), (6, "world_encoder_bigram")):
        assert differences(apply_overrides(preset(name), extra), stages[stage]["config"]) == [], stage
    assert differences(apply_overrides(preset("world_encoder_stretch5"), extra), stages[6]["config"]) == [
        "model.head.bigram_weight: recorded 0.001, preset 0.0"]  # the ablation differs by the prior alone
    assert differences(apply_overrides(preset("world_encoder_bigram2"), extra), stages[7]["config"]) == []
    assert differences(apply_overrides(preset("world_encoder_bigram3"), extra), stages[8]["config"]) == []
    assert differences(apply_overrides(preset("world_encoder_bigram4"), extra), stages[9]["config"]) == []
    assert differences(apply_overrides(preset("world_encoder_bigram5"), extra), stages[10]["config"]) == []
    assert "--preset world_encoder_gpu" in stages[11]["command"]
    assert differences(apply_overrides(preset("world_encoder_gpu"), extra), record["config"]) == []


def test_the_shipped_decoder_is_world_decoder():
    assert differences(preset("world_decoder"), _record(CHECKPOINTS / "decoder")["config"]) == []


def _without_start(cfg):
    return dataclasses.replace(cfg, init_from=None)


def test_each_decoder_phase_is_its_preset():
    """Phases 1-3 are recorded as the commands that ran (``--set`` over the defaults of the time, which
    are today's: phase 4's command gives its recorded config, checked above, the same way)."""
    commands = [h for h in _record(CHECKPOINTS / "decoder")["history"] if "dediffusion pretrain-decoder" in h]
    assert len(commands) == len(SHIPPED["decoder"])
    doc = pathlib.Path(fit_decoder.__file__).parent.parent.joinpath("configs", "world_decoder.py").read_text()
    for name, command in zip(SHIPPED["decoder"], commands):
        sets = re.findall(r"--set (\S+)", command.split("; then")[0])
        ran = apply_overrides(DecoderTrainConfig(), [s for s in sets if not s.startswith("init_from=")])
        mine = preset(name)
        assert _without_start(mine) == _without_start(ran), name
        assert bool(mine.init_from) == any(s.startswith("init_from=") for s in sets), name
        for flag in re.findall(r"--resume|--stop-at \d+", command):  # run flags are in the recipe's commands
            assert re.search(rf"--preset {name} .*{flag}", doc), (name, flag)


@pytest.mark.parametrize("folder,name", [("probe", "world_probe"), ("backbone", "world_backbone")])
def test_the_probes_are_world_probe_and_world_backbone(folder, name):
    meta = _record(CHECKPOINTS / folder, "probe.json")
    assert differences(ProbeConfig(), meta["config"]) == []  # train-probe trains the default network
    cfg = preset(name)
    assert (cfg.test_seed, cfg.test_n) == (meta["test_seed"], meta["test_n"])


# the command line resolves --preset to the same configs


@pytest.fixture
def captured(monkeypatch, tmp_path):
    """Run the training subcommands without training: record the config they would train with."""
    got = {}

    def fake(cfg, out, *args, **kwargs):
        got["cfg"] = cfg
        return {} if isinstance(cfg, fit_probe.ProbeTrainConfig) else None

    monkeypatch.setattr(fit_decoder, "pretrain_decoder", fake)
    monkeypatch.setattr(fit_encoder, "train_encoder", fake)
    monkeypatch.setattr(fit_probe, "train_probe", fake)
    monkeypatch.chdir(tmp_path)  # presets that continue a stage read runs/... here
    return got


@pytest.mark.parametrize("name", [n for names in SHIPPED.values() for n in names])
def test_the_preset_flag_alone_gives_the_preset(name, captured, tmp_path):
    start = getattr(PRESETS[name](), "init_from", "")
    if start:
        (tmp_path / start).mkdir(parents=True)
    assert main([command_of(name), "--preset", name, "--out", str(tmp_path / "run")]) == 0
    assert captured["cfg"] == preset(name)
    assert main([command_of(name), "--preset", name, "--out", str(tmp_path / "run"), "--set", "steps=7"]) == 0
    assert captured["cfg"] == dataclasses.replace(preset(name), steps=7)


def test_a_preset_continuing_a_stage_not_run_yet_names_its_recipe(captured, tmp_path, capsys):
    assert main(["pretrain-decoder", "--preset", "world_decoder", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "init_from=runs/world_decoder_v3 does not exist" in err and "configs/world_decoder.py" in err
    assert "cfg" not in captured
    given = tmp_path / "elsewhere"
    given.mkdir()
    assert main(["pretrain-decoder", "--preset", "world_decoder", "--out", str(tmp_path / "run"),
                 "--set", f"init_from={given}"]) == 0
    assert captured["cfg"].init_from == str(given)


@pytest.mark.parametrize("command,name,right", [
    ("pretrain-decoder", "world_encoder", "train"),
    ("train", "world_decoder", "pretrain-decoder"),
    ("train-probe", "world_decoder_phase1", "pretrain-decoder"),
    ("train", "world_backbone", "train-probe"),
    ("pretrain-decoder", "paper_sd21", "train"),
])
def test_a_preset_for_another_subcommand_is_refused_naming_the_right_one(command, name, right, captured, tmp_path,
                                                                         capsys):
    assert main([command, "--preset", name, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert f"dediffusion {right} --preset {name}" in err and "cfg" not in captured


def test_an_unknown_preset_lists_the_subcommands_presets(captured, tmp_path, capsys):
    assert main(["train-probe", "--preset", "world_prob", "--out", str(tmp_path / "run")]) == 2
    assert "known for train-probe: world_probe, world_backbone" in capsys.readouterr().err


def test_train_probe_preset_trains_and_records_its_test_split(tmp_path, capsys):
    """One real step: the backbone preset's test split (seed 201) is what probe.json records."""
    out = tmp_path / "backbone"
    assert main(["train-probe", "--preset", "world_backbone", "--out", str(out),
                 "--set", "steps=1", "--set", "batch_size=8", "--set", "test_n=16"]) == 0
    meta = _record(out, "probe.json")
    assert (meta["test_seed"], meta["test_n"], meta["config"]) == (201, 16, _json(ProbeConfig()))


def test_pretrain_decoder_preset_saves_its_resolved_config(tmp_path):
    """One real step of phase 1 (shrunk to batch 2): ``train_config.json`` holds the preset's config."""
    out = tmp_path / "dec"
    sets = ["steps=1", "batch_size=2"]
    assert main(["pretrain-decoder", "--preset", "world_decoder_phase1", "--out", str(out)]
                + [x for s in sets for x in ("--set", s)]) == 0
    assert differences(apply_overrides(preset("world_decoder_phase1"), sets), _record(out)["config"]) == []
