"""Pieces shared by the training runners: lr schedule, EMA, exact save/resume."""
from __future__ import annotations

import json
import math
import pathlib
import time

import numpy as np
import torch
from tqdm.auto import tqdm

from dediffusion.checkpoint import load_tensors, read_metadata, save_tensors, write_json


def lr_at(step: int, base: float, warmup: int, total: int, final_fraction: float = 0.01) -> float:
    """Linear warm-up then cosine decay to ``final_fraction * base`` (paper: 3e-4 -> 3e-6)."""
    if step < warmup:
        return base * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return base * (final_fraction + (1 - final_fraction) * 0.5 * (1 + math.cos(math.pi * progress)))


def step_generator(seed: int, step: int, part: int = 0) -> torch.Generator:
    """A generator that depends only on (seed, step, part): resumed runs draw the same noise, and
    micro-batch ``part`` of a step draws the same noise in whichever process computes it."""
    if part == 0:
        return torch.Generator().manual_seed(seed * 1_000_003 + step)
    return torch.Generator().manual_seed(int(np.random.SeedSequence([seed, step, part]).generate_state(1)[0]))


class EMA:
    """Exponential moving average of parameters (kept in float32)."""

    def __init__(self, params: dict[str, torch.Tensor], decay: float):
        self.decay = decay
        self.shadow = {k: v.detach().clone().float() for k, v in params.items()}

    @torch.no_grad()
    def update(self, params: dict[str, torch.Tensor]) -> None:
        for k, v in params.items():
            self.shadow[k].lerp_(v.detach().float(), 1 - self.decay)


def optimizer_tensors(opt: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """Optimizer state as flat tensors (safetensors-friendly)."""
    out = {}
    for idx, state in opt.state_dict()["state"].items():
        for name, value in state.items():
            out[f"{idx}.{name}"] = value if torch.is_tensor(value) else torch.tensor(value)
    return out


def load_optimizer_tensors(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor]) -> None:
    sd = opt.state_dict()
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = value
    sd["state"] = state
    opt.load_state_dict(sd)


TRAIN_STATE = "train_state.safetensors"
_GROUPS = ("params", "ema", "optimizer")


def save_train_state(folder, step: int, params: dict, ema: EMA | None, opt, extra: dict | None = None) -> None:
    """Write the whole resumable state (fp32) as one safetensors file, atomically.

    One file renamed into place means a kill at any moment leaves the previous
    checkpoint or the new one, never parameters of one step beside the
    optimizer of another. The step lives in the file's metadata;
    ``train_state.json`` (written after it) is a copy for people.
    """
    folder = pathlib.Path(folder)
    tensors = {f"params/{k}": v for k, v in params.items()}
    if ema is not None:
        tensors.update({f"ema/{k}": v for k, v in ema.shadow.items()})
    tensors.update({f"optimizer/{k}": v for k, v in optimizer_tensors(opt).items()})
    meta = {"step": step, **(extra or {})}
    save_tensors(folder / TRAIN_STATE, tensors, metadata={"train_state": json.dumps(meta)})
    write_json(folder / "train_state.json", meta)


def read_train_state(folder) -> tuple[dict, dict[str, dict[str, torch.Tensor]]]:
    """(meta with ``step``, {"params"|"ema"|"optimizer": tensors}) as ``save_train_state`` wrote them."""
    path = pathlib.Path(folder) / TRAIN_STATE
    meta = json.loads(read_metadata(path).get("train_state", "null"))
    if not isinstance(meta, dict) or not isinstance(meta.get("step"), int):
        raise ValueError(f"{path}: no training step in its metadata")
    groups: dict[str, dict[str, torch.Tensor]] = {g: {} for g in _GROUPS}
    for key, value in load_tensors(path, dtype=None).items():
        group, name = key.split("/", 1)
        groups[group][name] = value
    return meta, groups


def load_train_state(folder, params: dict, ema: EMA | None, opt) -> dict:
    """Restore what ``save_train_state`` wrote; returns the metadata (with ``step``)."""
    meta, saved = read_train_state(folder)
    missing = sorted(set(params) - set(saved["params"]))
    if missing:
        raise ValueError(f"{pathlib.Path(folder) / TRAIN_STATE} does not match the model: no {missing[0]!r}")
    with torch.no_grad():
        for k, p in params.items():
            p.copy_(saved["params"][k])
    if ema is not None:
        ema.shadow = {k: v.to(params[k].device) for k, v in saved["ema"].items()}
    load_optimizer_tensors(opt, saved["optimizer"])
    return meta


def has_train_state(folder) -> bool:
    return (pathlib.Path(folder) / TRAIN_STATE).is_file()


LOG_EVERY = 50  # steps per row of metrics.jsonl (and one row at every checkpoint)


def log_metrics(out, step: int, recent: list[dict], lr: float, seconds: float) -> None:
    """Append a row to ``out/metrics.jsonl`` (the training curve): each logged value's mean over ``recent``
    (the steps since the previous row), the learning rate and the seconds since this process started."""
    row = {"step": step, **{k: round(sum(float(h[k]) for h in recent) / len(recent), 6) for k in recent[0]},
           "lr": lr, "seconds": round(seconds, 1)}
    folder = pathlib.Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "metrics.jsonl").open("a") as f:
        f.write(json.dumps(row) + "\n")


def optimizer_step(opt: torch.optim.Optimizer, loss: torch.Tensor, lr: float, clip_params=None) -> None:
    """One update at learning rate ``lr``: backward, gradient norm clipped to 1 over ``clip_params`` (if
    given), optimizer step."""
    for g in opt.param_groups:
        g["lr"] = lr
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if clip_params is not None:
        torch.nn.utils.clip_grad_norm_(clip_params, 1.0)
    opt.step()


def run_training(*, name: str, out, step_fn, params: dict, opt, steps: int, start: int, lr: float, warmup: int,
                 checkpoint_every: int, save_model, ema: EMA | None = None, progress: bool = True,
                 stop_at: int | None = None, main: bool = True) -> None:
    """The one training loop: ``step_fn(step) -> (loss, logs)``; checkpoints are exact-resume states.

    ``save_model()`` writes the inference checkpoint beside the training state. With several
    processes (``distributed.py``) only the ``main`` one shows progress and writes.
    """
    bar = tqdm(range(start, steps), initial=start, total=steps, disable=not (progress and main), desc=name)
    t0, hist, logged = time.time(), [], start
    for step in bar:
        loss, logs = step_fn(step)
        optimizer_step(opt, loss, lr_at(step, lr, warmup, steps), params.values())
        if ema is not None:
            ema.update(params)
        hist.append(logs)
        recent = float(np.mean([h["loss"] for h in hist[-50:]]))
        bar.set_postfix({k: f"{v:.3g}" for k, v in {**logs, "loss": recent}.items()})
        stopping = stop_at is not None and step + 1 >= stop_at
        checkpoint = (step + 1) % checkpoint_every == 0 or step + 1 == steps or stopping
        if main and (checkpoint or (step + 1) % LOG_EVERY == 0):
            log_metrics(out, step + 1, hist[logged - step - 1:], opt.param_groups[0]["lr"], time.time() - t0)
            logged = step + 1
        if main and checkpoint:
            save_train_state(out, step + 1, params, ema, opt, {"loss": recent, "seconds": time.time() - t0})
            save_model()
        if stopping:  # time-sliced runs: continue later with resume
            break


def copy_start_weights(state: dict[str, torch.Tensor], saved: dict[str, torch.Tensor], folder) -> None:
    """Copy ``saved`` into a model's ``state`` (same keys and shapes) for ``init_from=folder``."""
    with torch.no_grad():
        for k, v in state.items():
            if k not in saved or saved[k].shape != v.shape:
                raise ValueError(f"init_from={folder}: no matching {k!r} (was it trained with this config?)")
            v.copy_(saved[k])
