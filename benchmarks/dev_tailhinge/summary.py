"""Stages 13, 13b and 14 against their control (RULE.md here, ``dev_epsloss/RULE.md``): dev accuracy / FD / KID
per run and budget, the rules' three conditions, and the content-error counts.
    python benchmarks/dev_tailhinge/summary.py --stage 13 --out benchmarks/dev_tailhinge/summary_13.json
(``--stage 13b``: reports ``b_s*``, content errors ``content_errors_hingeb_s*.json``; ``--stage 14``: reports and
content errors in ``dev_epsloss/``)."""
import argparse
import json
import pathlib

import numpy as np

HERE = pathlib.Path(__file__).parent
CONTROL = HERE.parent / "dev_lowt" / "t200_s{s}"
K = (16, 24, 32)


def cell(folder: pathlib.Path) -> dict:
    d = json.loads((folder / "report.json").read_text())
    return {"raw": d["accuracy"]["dediffusion"], "strict": d["accuracy_strict"]["dediffusion"],
            "fd": d["frechet_distance"]["probe"]["dediffusion"], "kid": d["kid"]["probe"]["dediffusion"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--stage", choices=("13", "13b", "14"), default="13")
    ap.add_argument("--out")
    a = ap.parse_args()
    tag = "b" if a.stage == "13b" else ""
    where = HERE.parent / "dev_epsloss" if a.stage == "14" else HERE
    name = "epsloss" if a.stage == "14" else "hinge"
    arms = {name: where / f"{tag}{'_' if tag else ''}s{{s}}", "control": CONTROL}
    cells = {arm: {s: {k: cell(pathlib.Path(str(p).format(s=s)) / f"K{k}") for k in K} for s in range(3)}
             for arm, p in arms.items()}
    steps = {arm: sum(c[s][b]["fd"] < c[s][a]["fd"] for s in range(3) for a, b in ((16, 24), (24, 32)))
             for arm, c in cells.items()}
    mean = {arm: {k: {m: float(np.mean([c[s][k][m] for s in range(3)])) for m in ("raw", "strict", "fd", "kid")}
                  for k in K} for arm, c in cells.items()}
    h, c = mean[name], mean["control"]
    rule = {"1_fd_improving_steps": [steps[name], steps["control"], steps[name] >= 4],
            "2_at_32_raw_and_fd": [h[32]["raw"] - c[32]["raw"], h[32]["fd"] - c[32]["fd"],
                                   h[32]["raw"] >= c[32]["raw"] - 0.005 and h[32]["fd"] < c[32]["fd"]],
            "3_at_16_raw": [h[16]["raw"] - c[16]["raw"], h[16]["raw"] >= c[16]["raw"] - 0.01]}
    files = {f"{arm}_s{s}": HERE / f"content_errors_{arm}{tag if arm == name else ''}_s{s}.json"
             for arm in arms for s in range(3)}
    if a.stage == "14":
        files.update({f"{name}_s{s}": where / f"content_errors_s{s}.json" for s in range(3)})
    errors = {k: json.loads(f.read_text()) for k, f in files.items() if f.is_file()}
    out = {"cells": cells, "mean": mean, "rule": rule, "adopted": all(v[-1] for v in rule.values()),
           "content_errors": errors}
    for arm in arms:
        for s in range(3):
            print(arm, s, " | ".join(f"K{k} {v['raw']:.3f}/{v['strict']:.3f}/{v['fd']:.0f}/{v['kid']:+.4f}"
                                     for k, v in cells[arm][s].items()))
        print(arm, "mean", " | ".join(f"K{k} {v['raw']:.3f}/{v['strict']:.3f}/{v['fd']:.0f}" for k, v in mean[arm].items()))
    print("rule", rule, "adopted", out["adopted"])
    if a.out:
        pathlib.Path(a.out).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
