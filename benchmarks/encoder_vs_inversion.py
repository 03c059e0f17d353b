"""The encoder's probe accuracy as a share of 300-step optimisation's, pooled over ``quality_vs_budget.py`` parts.

    python benchmarks/encoder_vs_inversion.py PART0 PART1 --out DIR

Each PART is a ``quality_vs_budget.py --out`` folder whose rows carry per-scene hits (``scene_hits``,
``scene_checks``). Pools the scenes, then reports acc(invert_K) (K = ``--steps``, 300) and, for each encoder row
("encoder", "encoder:<folder>": other training runs), its accuracy, its ratio to acc(invert_K) and the ratio's
paired bootstrap 95% interval over scenes (2,000 resamples), and the mean ratio over the encoders. Writes ``ratio.json`` / ``ratio.md``.
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
    ap.add_argument("--seed", type=int, default=3, help="the parts' scene stream (for the title)")
    a = ap.parse_args(argv)
    rows = [json.loads((pathlib.Path(p) / "quality_vs_budget.json").read_text())["rows"] for p in a.parts]
    key = f"invert_{a.steps}"

    def pooled(name):
        return (np.concatenate([r[name]["scene_hits"] for r in rows]).astype(float),
                np.concatenate([r[name]["scene_checks"] for r in rows]).astype(float))

    (ih, ic) = pooled(key)
    n, inv = len(ih), ih.sum() / ic.sum()
    w = counts(resample_indices(n, 2000, 0), n)
    encoders = [k for k in rows[0] if k == "encoder" or k.startswith("encoder:")]  # the shipped run first
    per = {}
    for name in encoders:
        eh, ec = pooled(name)
        boot = ((w @ eh) / (w @ ec)) / ((w @ ih) / (w @ ic))
        lo, hi = (float(q) for q in np.quantile(boot, [0.025, 0.975]))
        per[name] = {"encoder": eh.sum() / ec.sum(), "ratio": eh.sum() / ec.sum() / inv, "lo": lo, "hi": hi}
    ratios = np.array([r["ratio"] for r in per.values()])
    result = {"parts": a.parts, "scenes": n, key: inv, **per["encoder"], "runs": per,
              "mean_ratio": float(ratios.mean()), "sd_ratio": float(ratios.std(ddof=1)) if len(ratios) > 1 else 0.0,
              "met_0.90": bool(per["encoder"]["ratio"] >= 0.90)}
    out = pathlib.Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ratio.json").write_text(json.dumps(result, indent=2) + "\n")
    md = [f"# Encoder vs {a.steps}-step optimisation, {n} scenes of seed {a.seed}\n", "    python benchmarks/"
          f"encoder_vs_inversion.py {' '.join(a.parts)}{'' if a.steps == 300 else f' --steps {a.steps}'} --seed {a.seed} "
          f"--out {a.out}\n",
          f"| encoder | accuracy | {key} | ratio | 95% interval |", "|---|---|---|---|---|"]
    md += [f"| {k} | {r['encoder']:.3f} | {inv:.3f} | **{r['ratio']:.3f}** | [{r['lo']:.3f}, {r['hi']:.3f}] |"
           for k, r in per.items()]
    if len(per) > 1:
        md.append(f"\nMean ratio over the {len(per)} encoders: {result['mean_ratio']:.3f} +- {result['sd_ratio']:.3f}.")
    (out / "ratio.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
