"""The encoder's probe accuracy as a share of 300-step optimisation's, pooled over ``quality_vs_budget.py`` parts.

    python benchmarks/encoder_vs_inversion.py PART0 PART1 --out DIR

Each PART is a ``quality_vs_budget.py --out`` folder whose rows carry per-scene hits (``scene_hits``,
``scene_checks``). Pools the scenes, then reports acc(encoder), acc(invert_K) (K = ``--steps``, 300), their
ratio and its paired bootstrap 95% interval over scenes (2,000 resamples). Writes ``ratio.json`` / ``ratio.md``.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys

import numpy as np


def main(argv=None) -> int:
    from dediffusion.eval.stats import counts, resample_indices

    ap = argparse.ArgumentParser()
    ap.add_argument("parts", nargs="+")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    rows = [json.loads((pathlib.Path(p) / "quality_vs_budget.json").read_text())["rows"] for p in a.parts]
    key = f"invert_{a.steps}"

    def pooled(name):
        return (np.concatenate([r[name]["scene_hits"] for r in rows]).astype(float),
                np.concatenate([r[name]["scene_checks"] for r in rows]).astype(float))

    (eh, ec), (ih, ic) = pooled("encoder"), pooled(key)
    n = len(eh)
    w = counts(resample_indices(n, 2000, 0), n)
    boot = ((w @ eh) / (w @ ec)) / ((w @ ih) / (w @ ic))
    enc, inv = eh.sum() / ec.sum(), ih.sum() / ic.sum()
    lo, hi = (float(q) for q in np.quantile(boot, [0.025, 0.975]))
    result = {"parts": a.parts, "scenes": n, "encoder": enc, key: inv, "ratio": enc / inv, "lo": lo, "hi": hi,
              "met_0.90": bool(enc / inv >= 0.90)}
    out = pathlib.Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ratio.json").write_text(json.dumps(result, indent=2) + "\n")
    md = (f"# Encoder vs {a.steps}-step optimisation, {n} scenes of seed 3\n\n    python benchmarks/encoder_vs_inversion.py "
          f"{' '.join(a.parts)} --out {a.out}\n\n| encoder | {key} | ratio | 95% interval |\n|---|---|---|---|\n"
          f"| {enc:.3f} | {inv:.3f} | **{enc / inv:.3f}** | [{lo:.3f}, {hi:.3f}] |\n")
    (out / "ratio.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
