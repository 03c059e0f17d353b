"""Step 2 of ``RULE.md``: the test token table of the adaptive budgets (``tokens_test_adaptive/``) beside the
fixed ones (``tokens_test_best/``), and the paired comparisons (``compare_reports.py --any-guidance``).

    OMP_NUM_THREADS=1 python benchmarks/dev_adaptive/test_summary.py --out benchmarks/tokens_test_adaptive/summary.json

Per training run: each adaptive budget minus the fixed text of the same budget, and minus the next smaller
budget (adaptive where measured, else fixed; 4 tokens is the same text either way).
"""
from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys

import numpy as np

BENCH = pathlib.Path(__file__).resolve().parent.parent
ADAPTIVE, FIXED = BENCH / "tokens_test_adaptive", BENCH / "tokens_test_best"
BUDGETS = (4, 8, 16, 24, 32)


def folder(run: int, k: int) -> tuple[pathlib.Path, str]:
    adaptive = ADAPTIVE / f"run{run}" / f"K{k}"
    if k > 4 and (adaptive / "report.json").exists():
        return adaptive, "adaptive"
    return FIXED / f"seed{run}" / f"K{k}", "fixed"


def metrics(path: pathlib.Path) -> dict:
    d = json.loads((path / "report.json").read_text())["sweep"]
    return {"raw": d["accuracy"]["dediffusion"][0], "strict": d["accuracy_strict"]["dediffusion"][0],
            "fd": d["frechet_distance"]["probe"]["dediffusion"][0], "kid": d["kid"]["probe"]["dediffusion"][0]}


def compare(new: pathlib.Path, old: pathlib.Path, out: pathlib.Path) -> dict:
    if not out.exists():
        subprocess.run([sys.executable, str(BENCH / "compare_reports.py"), str(new), str(old), "--any-guidance",
                        "--out", str(out)], check=True, stdout=subprocess.DEVNULL)
    c = json.loads(out.read_text())["comparisons"][0]
    return {"raw": c["accuracy"], "strict": c["accuracy_strict"], "fd": c["frechet_distance"]["probe"],
            "kid": c["kid"]["probe"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    out = {"table": {}, "vs_fixed": {}, "vs_previous_budget": {}}
    for run in range(3):
        rows, prev = {}, None
        for k in BUDGETS:
            path, kind = folder(run, k)
            rows[f"K{k}"] = {"kind": kind, **metrics(path)}
            if kind == "adaptive":
                out["vs_fixed"][f"run{run}/K{k}"] = compare(path, FIXED / f"seed{run}" / f"K{k}",
                                                           ADAPTIVE / f"run{run}" / f"K{k}_minus_fixed_K{k}.json")
            if prev is not None and kind == "adaptive":
                out["vs_previous_budget"][f"run{run}/K{k}"] = compare(
                    path, prev[0], ADAPTIVE / f"run{run}" / f"K{k}_minus_{prev[1]}_K{prev[2]}.json")
            prev = (path, kind, k)
        out["table"][f"run{run}"] = rows
    ks = [f"K{k}" for k in BUDGETS]
    out["mean"] = {k: {m: float(np.mean([out["table"][f"run{r}"][k][m] for r in range(3)])) for m in
                       ("raw", "strict", "fd", "kid")} for k in ks}
    for k in ks:
        print(k, [out["table"][f"run{r}"][k]["kind"] for r in range(3)], {m: round(v, 4) for m, v in out["mean"][k].items()})
    pathlib.Path(a.out).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
