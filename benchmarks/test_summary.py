"""One table from the test-split reports of several training runs of the shipped recipe.

    python benchmarks/test_summary.py benchmarks/report_test_v5 benchmarks/report_test_v5_seed1 \
        benchmarks/report_test_v5_seed2 --out benchmarks/report_test_summary.md

The first report is the shipped encoder (training seed 0); every report holds ``dediffusion`` and
``human_caption``, decoded with the same scenes and starting noise; the full caption and the empty
prompt come from the first report, or from ``--references REPORT`` (same scenes and noise; the
reference sources do not depend on the encoder). De-Diffusion rows give mean +- sd over the runs and each run's
paired bootstrap interval against the human-like caption.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import statistics


def _cell(r: dict, key: str, source: str) -> float:
    sweep = r["sweep"]
    if key in ("frechet_distance", "kid"):
        return sweep[key]["probe"][source][0]
    return sweep[key][source][0]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("reports", nargs="+")
    ap.add_argument("--out", required=True)
    ap.add_argument("--references", help="the report that holds the full caption and the empty prompt, decoded "
                    "from the same scenes and noise (default: the first report)")
    a = ap.parse_args()
    runs = [json.loads((pathlib.Path(p) / "report.json").read_text()) for p in a.reports]
    base = json.loads((pathlib.Path(a.references) / "report.json").read_text()) if a.references else runs[0]
    for r in runs:
        if (r["seed"], r["n"], r["guidance"]) != (base["seed"], base["n"], base["guidance"]):
            raise SystemExit("the reports differ in split, n or guidance")
    empty, full = (_cell(base, "accuracy_strict", s) for s in ("empty", "full_caption"))
    keys = ("accuracy", "accuracy_strict", "frechet_distance", "kid")
    lines = [f"Test split (seed {base['seed']}), n = {base['n']}, guidance {base['guidance']}; "
             f"{len(runs)} training runs of the shipped recipe (seeds {', '.join(str(i) for i in range(len(runs)))}).", "",
             "| source | raw accuracy | strict accuracy | chance-corrected (strict) | FD (floor %.0f) | KID (floor %.4f) |"
             % (base["sweep"]["floor"]["probe"]["frechet_distance"], base["sweep"]["floor"]["probe"]["kid"]),
             "|---|---|---|---|---|---|"]
    vals = {k: [_cell(r, k, "dediffusion") for r in runs] for k in keys}
    cc = [(v - empty) / (full - empty) for v in vals["accuracy_strict"]]

    def ms(xs, d):
        return f"{statistics.mean(xs):.{d}f} ± {statistics.stdev(xs):.{d}f}" if len(xs) > 1 else f"{xs[0]:.{d}f}"

    lines.append(f"| De-Diffusion text, mean ± sd over {len(runs)} runs | {ms(vals['accuracy'], 3)} | "
                 f"{ms(vals['accuracy_strict'], 3)} | {ms(cc, 3)} | {ms(vals['frechet_distance'], 0)} | {ms(vals['kid'], 4)} |")
    for i, r in enumerate(runs):
        c = (_cell(r, "accuracy_strict", "dediffusion") - empty) / (full - empty)
        lines.append(f"| De-Diffusion text, run {i}{' (shipped)' if i == 0 else ''} | {_cell(r, 'accuracy', 'dediffusion'):.3f} | "
                     f"{_cell(r, 'accuracy_strict', 'dediffusion'):.3f} | {c:.3f} | "
                     f"{_cell(r, 'frechet_distance', 'dediffusion'):.0f} | {_cell(r, 'kid', 'dediffusion'):.4f} |")
    for s, name in (("human_caption", "human-like caption"), ("full_caption", "full caption"), ("empty", "empty prompt")):
        c = (_cell(base, "accuracy_strict", s) - empty) / (full - empty)
        lines.append(f"| {name} | {_cell(base, 'accuracy', s):.3f} | {_cell(base, 'accuracy_strict', s):.3f} | {c:.3f} | "
                     f"{_cell(base, 'frechet_distance', s):.0f} | {_cell(base, 'kid', s):.4f} |")
    lines += ["", "De-Diffusion text minus human-like caption, paired bootstrap 95% intervals, per run:", "",
              "| run | raw accuracy | strict accuracy | FD | KID |", "|---|---|---|---|---|"]
    for i, r in enumerate(runs):
        c = r["paired_bootstrap"]["comparisons"][0]
        f = lambda d, p: f"{d['diff']:+.{p}f} [{d['lo']:+.{p}f}, {d['hi']:+.{p}f}]"  # noqa: E731
        lines.append(f"| {i} | {f(c['accuracy'], 3)} | {f(c['accuracy_strict'], 3)} | {f(c['frechet_distance']['probe'], 0)} | "
                     f"{f(c['kid']['probe'], 4)} |")
    pathlib.Path(a.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
