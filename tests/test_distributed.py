"""Multi-process training through the real entry point equals one process.

``torchrun --standalone --nproc-per-node 2 -m dediffusion.cli train`` (gloo, 2 CPU processes): each
step's global batch is split into one micro-batch per process whose data and noise depend only on
(seed, step, part), so the run must match a one-process ``dediffusion train --set micro_batches=2``:
same logged (global-batch) loss at every checkpoint, same weights, up to float reduction order.
Only rank 0 writes, so rank 1's weights are checked through the result: from step 2 on, its
gradient (half of every averaged update) is computed with its own replica, and any drift there would
move rank 0's weights away from the one-process run.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dediffusion.checkpoint import load_tensors, read_json
from dediffusion.cli.main import main
from dediffusion.train.fit_encoder import micro_batch_parts, train_encoder

from .conftest import TINY_TRAIN_ARGS, tiny_train_cfg

ROOT = Path(__file__).resolve().parents[1]
STEPS = 3
TOLERANCE = 1e-5  # absolute, on the logged losses and every weight; measured on CPU/gloo: 0.0 (bit-identical)


def _metrics(folder) -> list[dict]:
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    return [{k: r[k] for k in ("step", "loss", "lr")} for r in rows]  # "loss" is the global batch's, the rest rank 0's


def test_torchrun_two_processes_match_one_process(tiny_decoder_dir, tmp_path):
    args = ["--decoder", str(tiny_decoder_dir), *TINY_TRAIN_ARGS, "--set", f"steps={STEPS}"]
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE", "DEDIFFUSION_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "dediffusion.cli", "train", "--out", str(out), *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.count("(built-in (embedded world))") == 1  # the settings line: rank 0 only

    single = tmp_path / "single"
    assert main(["train", "--out", str(single), *args, "--set", "micro_batches=2"]) == 0

    ddp_w, one_w = (load_tensors(f / "encoder.safetensors", None) for f in (out, single))
    assert ddp_w.keys() == one_w.keys() and ddp_w
    worst = max((ddp_w[k] - one_w[k]).abs().max().item() for k in ddp_w)
    assert worst < TOLERANCE, worst
    ddp_state, one_state = (load_tensors(f / "train_state.safetensors", None) for f in (out, single))
    assert ddp_state.keys() == one_state.keys()  # optimizer moments too
    assert max((ddp_state[k].float() - one_state[k].float()).abs().max().item() for k in ddp_state) < TOLERANCE
    assert read_json(out / "train_state.json")["step"] == STEPS
    loss_ddp, loss_one = (read_json(f / "train_state.json")["loss"] for f in (out, single))  # mean over both processes
    assert loss_ddp == pytest.approx(loss_one, abs=TOLERANCE)
    ddp_m, one_m = _metrics(out), _metrics(single)
    assert [r["step"] for r in ddp_m] == [2, 3] and [r["step"] for r in one_m] == [2, 3]
    for a, b in zip(ddp_m, one_m):
        assert a["loss"] == pytest.approx(b["loss"], abs=TOLERANCE) and a["lr"] == b["lr"]

    ddp_cfg, one_cfg = (read_json(f / "train_config.json")["config"] for f in (out, single))
    assert ddp_cfg["micro_batches"] == 0 and one_cfg["micro_batches"] == 2
    assert {**ddp_cfg, "micro_batches": 2} == one_cfg  # the --set overrides reached both the same way
    assert ddp_cfg["model"]["encoder"]["num_tokens"] == 6 and ddp_cfg["batch_size"] == 4
    # rank 0 alone wrote: no per-rank files, a self-contained folder with its own copy of the decoder
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in single.iterdir())
    assert sorted(p.name for p in out.glob("*.safetensors")) == ["encoder.safetensors", "train_state.safetensors"]
    assert read_json(out / "encoder.json")["config"]["decoder_path"] == "decoder"
    assert (out / "decoder" / "decoder.safetensors").is_file()


def test_micro_batches_must_split_the_batch_and_match_the_processes():
    assert micro_batch_parts(tiny_train_cfg(), 1) == 1 and micro_batch_parts(tiny_train_cfg(), 2) == 2
    with pytest.raises(ValueError, match="does not split"):
        micro_batch_parts(tiny_train_cfg(micro_batches=3), 1)
    with pytest.raises(ValueError, match="one per process"):
        micro_batch_parts(tiny_train_cfg(micro_batches=4), 2)


def test_one_micro_batch_keeps_the_single_process_stream_and_two_change_it(tiny_decoder_dir, tmp_path):
    one = train_encoder(tiny_train_cfg(steps=1), tmp_path / "a", tiny_decoder_dir, progress=False)
    same = train_encoder(tiny_train_cfg(steps=1, micro_batches=1), tmp_path / "b", tiny_decoder_dir, progress=False)
    two = train_encoder(tiny_train_cfg(steps=1, micro_batches=2), tmp_path / "c", tiny_decoder_dir, progress=False)
    q = [m.encoder.pooler.queries for m in (one, same, two)]
    assert torch.equal(q[0], q[1]) and not torch.equal(q[0], q[2])
