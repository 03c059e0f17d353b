"""Step 2 of ``RULE.md``: decoder A2's test token table (``tokens_test_padded/``), each budget against the
next smaller one and against decoder A's fixed text of the same budget (``tokens_test_best/``), paired
(``compare_reports.py --any-guidance``: the budgets' guidances differ).

    OMP_NUM_THREADS=1 python benchmarks/dev_padded_decoder/test_summary.py tokens_test_padded_encoder \
        --out benchmarks/tokens_test_padded_encoder/summary.json

(``tokens_test_padded`` for step 2, ``tokens_test_padded_encoder`` for step 3.)
"""
from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys

import numpy as np

BENCH = pathlib.Path(__file__).resolve().parent.parent
FIXED = BENCH / "tokens_test_best"
BUDGETS = (4, 8, 16, 24, 32)
METRICS = ("raw", "strict", "fd", "kid")


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


def clearly_worse(c: dict) -> list[str]:
    """Metrics whose paired interval lies entirely on the worse side (accuracy down, FD / KID up)."""
    return [m for m in METRICS if (c[m]["hi"] < 0 if m in ("raw", "strict") else c[m]["lo"] > 0)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("table", help="folder under benchmarks/ with runN/KK reports")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    table = BENCH / a.table
    out = {"table": {}, "vs_previous_budget": {}, "vs_decoder_A": {}, "clearly_worse_steps": {}}
    for run in range(3):
        rows = {}
        for i, k in enumerate(BUDGETS):
            path = table / f"run{run}" / f"K{k}"
            rows[f"K{k}"] = metrics(path)
            out["vs_decoder_A"][f"run{run}/K{k}"] = compare(path, FIXED / f"seed{run}" / f"K{k}",
                                                            table / f"run{run}" / f"K{k}_minus_decoder_A.json")
            if i:
                c = compare(path, table / f"run{run}" / f"K{BUDGETS[i - 1]}",
                            table / f"run{run}" / f"K{k}_minus_K{BUDGETS[i - 1]}.json")
                out["vs_previous_budget"][f"run{run}/K{k}"] = c
                out["clearly_worse_steps"][f"run{run}/K{k}"] = clearly_worse(c)
        out["table"][f"run{run}"] = rows
    ks = [f"K{k}" for k in BUDGETS]
    out["mean"] = {k: {m: float(np.mean([out["table"][f"run{r}"][k][m] for r in range(3)])) for m in METRICS}
                   for k in ks}
    for k in ks:
        print(k, {m: round(v, 4) for m, v in out["mean"][k].items()})
    print("clearly worse steps:", {k: v for k, v in out["clearly_worse_steps"].items() if v})
    pathlib.Path(a.out).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
