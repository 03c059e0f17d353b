"""Loading never runs code or leaves its folder, and bad configs/weights give one-line errors."""
import ast
import dataclasses
import json
import pathlib
import shutil
import typing

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import dediffusion
from dediffusion.model import autoencoder
from dediffusion.model.autoencoder import DeDiffusionConfig, load_dediffusion
from dediffusion.checkpoint import read_json, write_json
from dediffusion.cli.main import main
from dediffusion.config import ConfigError, apply_overrides, from_dict, to_dict
from dediffusion.model.decoders import load_decoder
from dediffusion.model.decoders.builtin import BuiltinDecoderConfig
from dediffusion.train.export import export
from dediffusion.pretrained import resolve_in, shipped
from dediffusion.train.fit_decoder import DecoderTrainConfig
from dediffusion.train.fit_encoder import EncoderTrainConfig, decoder_reference, train_encoder
from dediffusion.model.attribute_cnn import ProbeConfig

from .conftest import tiny_train_cfg

PACKAGE = pathlib.Path(dediffusion.__file__).parent


@pytest.fixture(scope="module")
def run_dir(tiny_decoder_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("run")
    train_encoder(tiny_train_cfg(steps=1), folder, tiny_decoder_dir, progress=False)
    return folder


def test_no_pickle_and_torch_load_only_weights_only():
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                assert not {"pickle", "dill", "joblib", "cloudpickle", "marshal"} & {n.split(".")[0] for n in names}, path
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load":
                if getattr(node.func.value, "id", "") == "torch":
                    kw = {k.arg: k.value for k in node.keywords}
                    assert getattr(kw.get("weights_only"), "value", None) is True, f"{path}:{node.lineno}"
            if isinstance(node, ast.Name) and node.id in ("eval", "exec"):
                pytest.fail(f"{path}:{node.lineno} uses {node.id}")


def test_trained_run_is_self_contained_and_movable(run_dir, tmp_path):
    assert read_json(run_dir / "encoder.json")["config"]["decoder_path"] == "decoder"  # its own copy
    moved = tmp_path / "moved"
    shutil.copytree(run_dir, moved)
    model = load_dediffusion(moved)
    assert model.texts(torch.rand(2, 3, 8, 8))
    exported = export("encoder", moved, tmp_path / "exported")
    assert load_dediffusion(exported).texts(torch.rand(1, 3, 8, 8))


@pytest.mark.parametrize("ref", ["/etc", "../elsewhere", "decoder/../../x", "shipped:../../etc"])
def test_decoder_path_cannot_leave_the_folder(run_dir, tmp_path, capsys, ref):
    bad = tmp_path / "bad"
    shutil.copytree(run_dir, bad)
    meta = read_json(bad / "encoder.json")
    meta["config"]["decoder_path"] = ref
    write_json(bad / "encoder.json", meta)
    with pytest.raises(ValueError, match="outside the checkpoint folder|no shipped checkpoint"):
        load_dediffusion(bad)
    img = tmp_path / "x.png"
    img.write_bytes(b"")
    assert main(["encode", str(img), "--model", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1


def _with_decoder_path(run_dir, folder, ref):
    shutil.copytree(run_dir, folder)
    meta = read_json(folder / "encoder.json")
    meta["config"]["decoder_path"] = ref
    write_json(folder / "encoder.json", meta)
    return folder


def test_hub_id_in_a_config_is_passed_on_as_an_id(run_dir, tmp_path, monkeypatch):
    """A hub id is no path: it reaches the loader as the id, never as a folder the config chose."""
    seen = []

    def fake_load(ref, sd=None):
        seen.append(ref)
        raise ValueError("no hub here")

    monkeypatch.setattr(autoencoder, "load_decoder", fake_load)
    bad = _with_decoder_path(run_dir, tmp_path / "hub", "stabilityai/stable-diffusion-2-1-base")
    with pytest.raises(ValueError, match="no hub here"):
        load_dediffusion(bad)
    assert seen == ["stabilityai/stable-diffusion-2-1-base"]
    assert resolve_in(bad, "org/name", "decoder") == bad.resolve() / "org" / "name"  # hub ids only where asked
    monkeypatch.chdir(tmp_path)
    (tmp_path / "org" / "name").mkdir(parents=True)  # the same name as a folder of the working directory
    with pytest.raises(ValueError, match="also a folder in the working directory"):
        resolve_in(bad, "org/name", "decoder", hub=True)


def test_decoder_reference_copies_builtin_and_records_stable_diffusion(tiny_decoder_dir, tmp_path):
    out = tmp_path / "run"
    assert decoder_reference(shipped("decoder"), out) == "shipped:decoder"
    assert not (out / "decoder").exists()
    assert decoder_reference(tiny_decoder_dir, out) == "decoder"
    copied = (out / "decoder" / "decoder.safetensors").read_bytes()
    assert copied == (tiny_decoder_dir / "decoder.safetensors").read_bytes()
    sd = tmp_path / "sd"  # a diffusers folder: never copied (GBs), recorded by its absolute path
    sd.mkdir()
    (sd / "model_index.json").write_text("{}")
    elsewhere = tmp_path / "elsewhere"
    assert decoder_reference(sd, elsewhere) == str(sd.absolute())
    assert decoder_reference("org/name", elsewhere) == "org/name"
    assert not elsewhere.exists()


def test_local_stable_diffusion_path_needs_the_decoder_given_again(run_dir, tiny_decoder_dir, tmp_path):
    """An absolute path recorded for a local SD folder is refused from the config, used when given."""
    run = _with_decoder_path(run_dir, tmp_path / "sd_run", str(tmp_path / "models" / "sd"))
    with pytest.raises(ValueError, match="outside the checkpoint folder"):
        load_dediffusion(run)
    assert load_dediffusion(run, decoder_folder=tiny_decoder_dir).texts(torch.rand(1, 3, 8, 8))
    exported = export("encoder", run, tmp_path / "exported")  # the reference is kept, nothing copied
    assert read_json(exported / "encoder.json")["config"]["decoder_path"] == str(tmp_path / "models" / "sd")
    assert not (exported / "decoder").exists()


@pytest.mark.parametrize("change, message", [
    (lambda c: c["encoder"].update(nope=1), "unknown key 'nope'"),
    (lambda c: c["encoder"].update(width="wide"), "config.encoder.width: expected int"),
    (lambda c: c.update(allow_words="red"), "allow_words: expected a list"),
    (lambda c: c["head"].update(anneal=1), "head.anneal: expected bool"),
])
def test_bad_config_is_a_one_line_error(run_dir, tmp_path, capsys, change, message):
    bad = tmp_path / "bad"
    shutil.copytree(run_dir, bad)
    meta = read_json(bad / "encoder.json")
    change(meta["config"])
    write_json(bad / "encoder.json", meta)
    assert main(["encode", str(tmp_path / "none.png"), "--model", str(bad)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_retired_fields_load_at_their_neutral_value_and_are_refused_by_name_otherwise(run_dir, tmp_path, capsys):
    """Older checkpoints record removed options at the value that left them off (config.RETIRED): they load
    as before; one trained with a removed option on is refused with an error naming it."""
    import re

    assert from_dict(DecoderTrainConfig, {"min_snr_gamma": None, "steps": 3}) == DecoderTrainConfig(steps=3)
    old_decoder = {"denoiser": "unet", "patch_size": 2, "transformer_width": 128, "text_time_embedding": False}
    assert from_dict(BuiltinDecoderConfig, old_decoder) == BuiltinDecoderConfig()
    for cls, key, value in ((DecoderTrainConfig, "min_snr_gamma", 5.0), (BuiltinDecoderConfig, "denoiser", "dit"),
                            (BuiltinDecoderConfig, "full_resolution_attention", True)):
        with pytest.raises(ConfigError, match=re.escape(f"{key} was removed; this checkpoint was trained with "
                                                        f"{key}={value!r}, which this version cannot run")):
            from_dict(cls, {key: value})
    old = tmp_path / "old"
    shutil.copytree(run_dir, old)
    meta = read_json(old / "encoder.json")
    meta["config"]["head"].update(repeat_penalty=0, hard_from=1.0)
    write_json(old / "encoder.json", meta)
    assert load_dediffusion(old).cfg == load_dediffusion(run_dir).cfg
    meta["config"]["head"]["hard_from"] = 0.5
    write_json(old / "encoder.json", meta)
    assert main(["encode", str(tmp_path / "none.png"), "--model", str(old)]) == 2
    err = capsys.readouterr().err
    assert "config.head.hard_from: hard_from was removed" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("damage", ["truncate", "garbage", "json_list", "wrong_shape"])
def test_damaged_checkpoint_is_a_one_line_error(tiny_decoder_dir, tmp_path, capsys, damage):
    bad = tmp_path / "dec"
    shutil.copytree(tiny_decoder_dir, bad)
    weights = bad / "decoder.safetensors"
    if damage == "truncate":
        weights.write_bytes(weights.read_bytes()[:1000])
    elif damage == "garbage":
        weights.write_bytes(b"\x80\x04\x95 a pickle, not safetensors")
    elif damage == "json_list":
        (bad / "decoder.json").write_text("[1, 2]")
    else:
        meta = read_json(bad / "decoder.json")
        meta["config"]["text_width"] = 32
        write_json(bad / "decoder.json", meta)
    with pytest.raises(ValueError):
        load_decoder(bad)
    assert main(["decode", "red", "-o", str(tmp_path / "x.png"), "--decoder", str(bad)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


# --- config parsing: property tests ----------------------------------------------------------
CONFIGS = [DeDiffusionConfig, EncoderTrainConfig, DecoderTrainConfig, BuiltinDecoderConfig, ProbeConfig]
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
                    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=5), kids, max_size=3),
                    max_leaves=8)


def valid_values(tp):
    """A strategy of JSON values that type ``tp`` accepts."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        return st.one_of(*(st.none() if a is type(None) else valid_values(a) for a in args))
    if dataclasses.is_dataclass(tp):
        hints = typing.get_type_hints(tp)
        return st.fixed_dictionaries({}, optional={f.name: valid_values(hints[f.name]) for f in dataclasses.fields(tp)})
    if origin is tuple:
        return st.lists(valid_values(args[0]), max_size=3)
    return {int: st.integers(-10**6, 10**6), float: st.floats(-1e6, 1e6), bool: st.booleans(),
            str: st.text(max_size=8)}[tp]


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_valid_configs_round_trip(data):
    cls = data.draw(st.sampled_from(CONFIGS))
    raw = data.draw(valid_values(cls))
    cfg = from_dict(cls, raw)
    assert from_dict(cls, to_dict(cfg)) == cfg
    assert from_dict(cls, json.loads(json.dumps(to_dict(cfg)))) == cfg


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_any_json_is_a_config_or_a_config_error(data):
    cls = data.draw(st.sampled_from(CONFIGS))
    names = [f.name for f in dataclasses.fields(cls)]
    raw = data.draw(st.dictionaries(st.sampled_from(names) | st.text(max_size=4), JSON, max_size=4) | JSON)
    try:
        cfg = from_dict(cls, raw)
    except ConfigError as e:
        assert "\n" not in str(e)
    else:
        assert isinstance(cfg, cls)


@settings(max_examples=100, deadline=None)
@given(key=st.sampled_from(["lr", "steps", "model.encoder.width", "model.head.anneal", "model.allow_words", "nope",
                            "model.nope.x", "seed", "decoder", "model"]),
       value=st.text(max_size=12))
def test_overrides_apply_or_raise_config_error(key, value):
    try:
        cfg = apply_overrides(EncoderTrainConfig(), [f"{key}={value}"])
    except ConfigError:
        return
    assert isinstance(cfg, EncoderTrainConfig)
