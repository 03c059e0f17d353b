"""Paired differences between two context sources of ``dediffusion vqa-eval`` runs (same questions, same episodes).

    python benchmarks/vqa_compare.py benchmarks/vqa_test.json:dediffusion benchmarks/vqa_test.json:human_caption \
        --out benchmarks/vqa_compare/fused_minus_caption.json

A source is ``FILE:SOURCE`` (runs written with per-question ``hits``), or several joined by ``+`` (training runs
of one recipe: per question the mean hit of the runs, e.g. ``r0.json:dediffusion+r1.json:dediffusion``). For
every cell both share (VQA per shot count, classification): accuracy of each, A - B and its paired bootstrap 95%
interval over questions / episodes (``dediffusion.eval.stats.paired_bootstrap``, 2,000 resamples); a cell asked
of different numbers of questions or episodes in the two runs is skipped. Writes JSON and prints Markdown rows.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys

import numpy as np


def cells(path_source: str) -> tuple[dict, dict]:
    path, _, source = path_source.rpartition(":")
    run = json.loads(pathlib.Path(path).read_text())
    out = {f"VQA {k}-shot": c["hits"] for k, c in run["vqa"][source].items() if "hits" in c}
    if "hits" in run.get("classification", {}).get(source, {}):
        out["classification"] = run["classification"][source]["hits"]
    if not out:
        raise SystemExit(f"{path_source}: no per-question hits (rerun vqa-eval with this version)")
    # settings that do not change which questions a cell asks (question and episode counts: cells of
    # different lengths are skipped)
    ignored = ("sources", "fusion", "shape_decoder", "layout", "select", "shots", "n_episodes", "n_questions")
    return out, {k: v for k, v in run["config"].items() if k not in ignored}


def mean_cells(sources: str) -> tuple[dict, dict]:
    """``cells`` of one source, or the per-question mean hits of several joined by ``+`` (the same questions)."""
    parts = [cells(s) for s in sources.split("+")]
    if any(p[1] != parts[0][1] for p in parts):
        raise SystemExit(f"{sources}: the runs differ in settings that change the questions")
    names = [k for k in parts[0][0] if all(k in c for c, _ in parts)]
    return {k: np.mean([np.asarray(c[k], float) for c, _ in parts], axis=0).tolist() for k in names}, parts[0][1]


def main(argv=None) -> int:
    from dediffusion.eval.stats import accuracy, paired_bootstrap

    ap = argparse.ArgumentParser()
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--out")
    a = ap.parse_args(argv)
    (ca, sa), (cb, sb) = mean_cells(a.a), mean_cells(a.b)
    if sa != sb:
        raise SystemExit("the runs differ in settings that change the questions: not the same questions")
    rows = {}
    for name in [k for k in ca if k in cb]:
        ha, hb = np.asarray(ca[name], float), np.asarray(cb[name], float)
        if len(ha) != len(hb):
            print(f"| {name} | skipped: {len(ha)} vs {len(hb)} questions or episodes |")
            continue
        one = np.ones_like(ha)
        ci = paired_bootstrap(accuracy, (ha, one), (hb, one), n_boot=2000)
        rows[name] = {"a": float(ha.mean()), "b": float(hb.mean()), "n": len(ha), **ci}
        print(f"| {name} | {ha.mean():.3f} | {hb.mean():.3f} | {ci['diff']:+.3f} [{ci['lo']:+.3f}, {ci['hi']:+.3f}] |")
    if a.out:
        pathlib.Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        pathlib.Path(a.out).write_text(json.dumps({"a": a.a, "b": a.b, "cells": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
