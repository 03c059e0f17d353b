"""`dediffusion train` killed with SIGKILL and restarted with --resume ends with an uninterrupted run's weights."""
import json
import os
import signal
import subprocess
import sys
import time

import torch

from dediffusion.checkpoint import load_tensors, read_metadata
from dediffusion.cli.main import main
from dediffusion.train.loop import TRAIN_STATE, read_train_state

from .train_helpers import SRC

STEPS = 60
TINY = ["model.encoder.backbone=cnn", "model.encoder.backbone_width=8", "model.encoder.width=16",
        "model.encoder.heads=2", "model.encoder.blocks=1", "model.encoder.num_tokens=6",
        "batch_size=4", f"steps={STEPS}", "checkpoint_every=5", "warmup=5"]


def _args(out, decoder):
    return ["train", "--out", str(out), "--decoder", str(decoder), *(x for s in TINY for x in ("--set", s))]


def _checkpoint_step(out) -> int:
    try:
        return json.loads(read_metadata(out / TRAIN_STATE)["train_state"])["step"]
    except (FileNotFoundError, ValueError, KeyError):
        return 0


def test_sigkilled_training_resumes_to_identical_weights(tiny_decoder_dir, tmp_path, monkeypatch):
    killed = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1", "DEDIFFUSION_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "dediffusion.cli", *_args(killed, tiny_decoder_dir)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while _checkpoint_step(killed) < 10 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, err.decode()[-2000:]
    at_kill = read_train_state(killed)[0]["step"]
    assert 10 <= at_kill < STEPS, at_kill  # killed in the middle, after a checkpoint

    import dediffusion.train.fit_encoder as runner

    steps_run, real_step = [], runner.encoder_step

    def counted(model, cfg, step, *args):
        steps_run.append(step)
        return real_step(model, cfg, step, *args)

    monkeypatch.setattr(runner, "encoder_step", counted)
    assert main(_args(killed, tiny_decoder_dir) + ["--resume"]) == 0
    assert steps_run == list(range(at_kill, STEPS))  # it continued; it did not start again
    monkeypatch.undo()
    assert main(_args(tmp_path / "straight", tiny_decoder_dir)) == 0
    (meta_a, a), (meta_b, b) = read_train_state(killed), read_train_state(tmp_path / "straight")
    assert meta_a["step"] == meta_b["step"] == STEPS
    for group in ("params", "optimizer"):
        assert a[group].keys() == b[group].keys()
        assert all(torch.equal(a[group][k], b[group][k]) for k in a[group]), group
    wa, wb = (load_tensors(d / "encoder.safetensors", None) for d in (killed, tmp_path / "straight"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
