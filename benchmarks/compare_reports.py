"""Paired bootstrap between two encoders' ``dediffusion eval`` reports on the same split.

    python benchmarks/compare_reports.py NEW_REPORT OLD_REPORT [--source dediffusion] [--out compare.json]

Both reports must hold the same split, scenes (n) and guidance, so every scene was decoded from the
same starting noise in both (``dediffusion eval`` seeds the noise per scene). ``--any-guidance`` compares
two single-guidance reports made at different guidance (each source at its own best guidance, e.g. token
budgets: ``benchmarks/tokens_test_best/``); the scenes and starting noise are still the same. The interval is that of
NEW - OLD for raw and strict probe accuracy (per-scene hits) and for FD / KID (the stored per-scene
probe features), resampling scenes jointly - ``eval/compare.py``'s ``paired_comparisons``, unchanged.
"""
from __future__ import annotations

import argparse
import json
import pathlib
from dataclasses import dataclass

import torch
from safetensors.torch import load_file

from dediffusion.eval.compare import paired_comparisons


@dataclass(frozen=True)
class _Cfg:  # the fields of EvalConfig that paired_comparisons reads
    pairs: tuple
    guidance: tuple
    features: tuple
    n: int
    n_boot: int = 1000
    n_boot_distance: int = 200


def _load(folder: pathlib.Path, source: str, name: str, as_guidance: float | None = None):
    r = json.loads((folder / "report.json").read_text())
    if as_guidance is not None:  # a single-guidance report read as if made at ``as_guidance``
        if len(r["sweep"]["guidance"]) != 1:
            raise SystemExit(f"--any-guidance needs single-guidance reports; {folder} has {r['sweep']['guidance']}")
        own = f"/g{r['sweep']['guidance'][0]:g}"
    rename = (lambda k: k.replace(own, f"/g{as_guidance:g}")) if as_guidance is not None else (lambda k: k)
    checks = {f"{a}_total": torch.tensor(v, dtype=torch.float) for a, v in r["per_scene"]["checks"].items()}
    hits = [{**checks, **{f"{k}_hits": torch.tensor(v, dtype=torch.float) for k, v in h.items()}}
            for h in r["per_scene"]["hits"][source]]
    feats = {rename(k.replace(f"/{source}/", f"/{name}/")): v for k, v in load_file(folder / "features.safetensors").items()}
    return r, hits, feats


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("new")
    ap.add_argument("old")
    ap.add_argument("--source", default="dediffusion")
    ap.add_argument("--out")
    ap.add_argument("--any-guidance", action="store_true",
                    help="compare two single-guidance reports made at different guidance")
    a = ap.parse_args()
    common = 0.0 if a.any_guidance else None  # both read as if at one guidance label
    rn, hn, fn = _load(pathlib.Path(a.new), a.source, "new", common)
    ro, ho, fo = _load(pathlib.Path(a.old), a.source, "old", common)
    for key in ("split", "seed", "n", "steps") + (() if a.any_guidance else ("guidance",)):
        if rn[key] != ro[key]:
            raise SystemExit(f"reports differ in {key}: {rn[key]} vs {ro[key]}")
    # the same scenes give the same probe features up to float rounding (another thread count moves the last bits)
    if not torch.allclose(fn["probe/real"].float(), fo["probe/real"].float(), atol=0.02, rtol=0.0):
        raise SystemExit("reports were made on different real scenes")
    guidance = (common,) if a.any_guidance else tuple(rn["sweep"]["guidance"])
    cfg = _Cfg(pairs=(("new", "old"),), guidance=guidance, features=("probe",), n=rn["n"])
    result = paired_comparisons(cfg, {"new": hn, "old": ho}, {**fo, **fn}, rn["sweep"]["kid_gamma"])
    if a.any_guidance:
        result["guidance"] = {"new": rn["sweep"]["guidance"][0], "old": ro["sweep"]["guidance"][0]}
    text = json.dumps(result, indent=1)
    if a.out:
        pathlib.Path(a.out).write_text(text + "\n")
    for row in result["comparisons"]:
        f = lambda d, p: f"{d['diff']:+.{p}f} [{d['lo']:+.{p}f}, {d['hi']:+.{p}f}]"  # noqa: E731
        where = f"g={rn['sweep']['guidance'][0]:g} vs {ro['sweep']['guidance'][0]:g}" if a.any_guidance \
            else f"g={row['guidance']:g}"
        print(f"{where}: raw {f(row['accuracy'], 3)}  strict {f(row['accuracy_strict'], 3)}  "
              f"FD {f(row['frechet_distance']['probe'], 0)}  KID {f(row['kid']['probe'], 4)}")


if __name__ == "__main__":
    main()
