"""Multi-process training with torchrun + DDP (gloo, 2 CPU processes) equals one process.

With N processes each step's global batch is split into N micro-batches whose data and noise
depend only on (seed, step, part), so a 2-process run must match a 1-process run with
``micro_batches=2``: same mean loss, same weights, up to float reduction order.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dediffusion.checkpoint import load_tensors, read_json
from dediffusion.train.fit_encoder import micro_batch_parts, train_encoder

from .ddp_worker import STEPS
from .test_autoencoder import tiny_train_cfg

ROOT = Path(__file__).resolve().parents[1]
TOLERANCE = 1e-5  # absolute, on the logged loss and every weight; measured on CPU/gloo: 0.0 (bit-identical)


def test_two_processes_match_one_process_and_stay_identical(tiny_decoder_dir, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           str(ROOT / "tests" / "ddp_worker.py"), str(tiny_decoder_dir), str(out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]

    rank0, rank1 = (load_tensors(out / f"rank{r}.safetensors", None) for r in (0, 1))
    assert rank0.keys() == rank1.keys() and all(torch.equal(rank0[k], rank1[k]) for k in rank0)  # replicas identical

    single = train_encoder(tiny_train_cfg(steps=STEPS, micro_batches=2), tmp_path / "single", tiny_decoder_dir,
                           progress=False)
    weights = {k: p.detach() for k, p in single.named_parameters() if p.requires_grad}
    assert weights.keys() == rank0.keys()
    worst = max((weights[k] - rank0[k]).abs().max().item() for k in weights)
    assert worst < TOLERANCE, worst
    loss_ddp = read_json(out / "train_state.json")["loss"]  # written by rank 0: mean over both processes
    loss_one = read_json(tmp_path / "single" / "train_state.json")["loss"]
    assert loss_ddp == pytest.approx(loss_one, abs=TOLERANCE)
    assert sorted(p.name for p in out.glob("*.safetensors")) == ["encoder.safetensors", "rank0.safetensors",
                                                                  "rank1.safetensors", "train_state.safetensors"]
    assert read_json(out / "encoder.json")["config"]["decoder_path"] == "decoder"  # rank 0's copy: self-contained
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
