"""Step 1 of ``RULE.md``: decoder A2's dev reports, mean of the three training runs per token budget.

    python benchmarks/dev_padded_decoder/summary.py --out benchmarks/dev_padded_decoder/summary.json

Each budget's guidance for the test: its FD-best among {1.5, 2} on the mean of the runs. Pass: (a) raw
accuracy and FD both improve from 16 to 24 and from 24 to 32 tokens, and (b) at 32 tokens FD is lower and raw
accuracy no lower than decoder A's fixed 32-token text (dev mean at g = 1.5, as ``dev_adaptive/summary.py``
reads it).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import pathlib

import numpy as np

HERE = pathlib.Path(__file__).parent
_spec = importlib.util.spec_from_file_location("dev_adaptive_summary", HERE.parent / "dev_adaptive" / "summary.py")
_adaptive = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_adaptive)
at, mean_over_runs = _adaptive.at, _adaptive.mean_over_runs  # decoder A's dev reports, as that rule read them

BUDGETS = (4, 8, 16, 24, 32)


def mean_of(folders: list[pathlib.Path], g: float) -> dict:
    """The reports in ``folders`` at guidance ``g``: per metric, the mean and each run's value."""
    rows = [at(json.loads((f / "report.json").read_text())["sweep"], g) for f in folders]
    return {m: {"mean": float(np.mean([x[m] for x in rows])), "runs": [x[m] for x in rows]} for m in rows[0]}


def mean_a2(k: int, g: float) -> dict:
    return mean_of([HERE / f"run{r}" / f"K{k}" for r in range(3)], g)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    out = {}
    for k in BUDGETS:
        by_g = {g: mean_a2(k, g) for g in (1.5, 2.0)}
        g = min(by_g, key=lambda x: by_g[x]["fd"]["mean"])
        out[f"K{k}"] = {"guidance": g, **by_g[g]}
        print(k, g, {m: round(v["mean"], 4) for m, v in by_g[g].items()}, flush=True)
    mean = {k: {m: out[k][m]["mean"] for m in ("raw", "fd")} for k in ("K16", "K24", "K32")}
    steps_ok = all(mean[b]["raw"] > mean[a]["raw"] and mean[b]["fd"] < mean[a]["fd"]
                   for a, b in (("K16", "K24"), ("K24", "K32")))
    decoder_a = mean_over_runs("fixed", 32, 1.5)
    out["decoder_A_K32_g1.5"] = decoder_a
    beats_a = mean["K32"]["fd"] < decoder_a["fd"]["mean"] and mean["K32"]["raw"] >= decoder_a["raw"]["mean"]
    out["a_steps_16_24_32_improve"], out["b_K32_beats_decoder_A"] = bool(steps_ok), bool(beats_a)
    out["step_1_passes"] = bool(steps_ok and beats_a)
    print("decoder A K32:", {m: round(v["mean"], 4) for m, v in decoder_a.items()})
    print("steps improve:", steps_ok, "beats A at 32:", beats_a, "step 1 passes:", out["step_1_passes"])
    pathlib.Path(a.out).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
