"""Step 1 of ``RULE.md``: the dev reports of the adaptive and the fixed texts, mean of the three runs per budget.

    python benchmarks/dev_adaptive/summary.py --out benchmarks/dev_adaptive/summary.json

Each budget's guidance for the test: its FD-best among {1.5, 2} on the mean of the runs (adaptive; 24 and 32
tokens, ``RULE.md`` addendum); the fixed text at its ``dev_tokens/RULE.md`` guidance (1.5 at 24 and 32). Pass: the adaptive text at 24 and 32
tokens each has a lower mean FD and a raw accuracy no lower than the fixed text of the same budget.
"""
from __future__ import annotations

import argparse
import json
import pathlib

import numpy as np

HERE = pathlib.Path(__file__).parent
FIXED_GUIDANCE = {24: 1.5, 32: 1.5}


def report(kind: str, run: int, k: int) -> dict:
    folder = HERE.parent / "dev_tokens" / f"K{k}" if (kind, run) == ("fixed", 0) else HERE / kind / f"run{run}" / f"K{k}"
    return json.loads((folder / "report.json").read_text())["sweep"]


def at(sweep: dict, g: float) -> dict:
    i = sweep["guidance"].index(g)
    return {"raw": sweep["accuracy"]["dediffusion"][i], "strict": sweep["accuracy_strict"]["dediffusion"][i],
            "content": sweep["accuracy_by_attribute"]["dediffusion"][i]["content"],
            "fd": sweep["frechet_distance"]["probe"]["dediffusion"][i], "kid": sweep["kid"]["probe"]["dediffusion"][i]}


def mean_over_runs(kind: str, k: int, g: float) -> dict:
    rows = [at(report(kind, r, k), g) for r in range(3)]
    return {m: {"mean": float(np.mean([x[m] for x in rows])), "runs": [x[m] for x in rows]} for m in rows[0]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    out, passed = {}, True
    for k in (24, 32):
        by_g = {g: mean_over_runs("adaptive", k, g) for g in (1.5, 2.0)}
        g = min(by_g, key=lambda x: by_g[x]["fd"]["mean"])
        fixed = mean_over_runs("fixed", k, FIXED_GUIDANCE[k])
        out[f"K{k}"] = {"adaptive_guidance": g, "adaptive": by_g[g], "fixed_guidance": FIXED_GUIDANCE[k], "fixed": fixed}
        ok = by_g[g]["fd"]["mean"] < fixed["fd"]["mean"] and by_g[g]["raw"]["mean"] >= fixed["raw"]["mean"]
        out[f"K{k}"]["passes"] = bool(ok)
        passed &= ok
        print(k, g, {m: round(v["mean"], 4) for m, v in by_g[g].items()}, "fixed",
              {m: round(v["mean"], 4) for m, v in fixed.items()}, flush=True)
    out["step_1_passes"] = bool(passed)
    print("step 1 passes:", passed)
    pathlib.Path(a.out).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
