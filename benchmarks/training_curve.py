"""The shipped encoder's training curve over its resumable stretches: loss vs images seen, and dev-split points.

    python benchmarks/training_curve.py --batch 32 \
        --run seed0=runs/encB_s0.log,runs/encC_s0 --run seed1=runs/encB_s1.log,runs/encC_s1 \
        --run seed2=runs/encB_s2.log,runs/encC_s2 \
        --dev 2000=runs/dev_evalB --dev 4000=runs/dev_evalC --out benchmarks/training_curve
    python benchmarks/training_curve.py --extend benchmarks/training_curve/curve.json \
        --run seed0=benchmarks/training_curve/stage5_seed0.metrics.jsonl ... --dev 10000=REPORT --out ...

Each ``--run LABEL=PART,PART,...`` lists the stretches of one training run in order: a run folder with
``metrics.jsonl`` (written by the trainer; its ``loss`` is the decoder's denoising loss alone, without the
diversity or bigram terms, so every stretch shows the same objective), such a file itself (``*.jsonl``) or, for runs older than that file, the run's captured progress
bar (a log whose bar shows ``loss=``, the mean of the last 50 steps). A stretch's steps are counted on from
the previous one's last step, in steps of ``--batch`` images: ``PART@256`` is a stretch trained at batch 256
(each of its steps counts 256 / 32 = 8 at ``--batch 32``). ``--dev STEP=REPORT`` adds a dev-split ``dediffusion eval`` report of the
seed-0 run after STEP steps. ``--extend CURVE`` starts from an earlier ``curve.json`` (its runs and dev
points; each run's new parts continue after its last step), so a curve grows one stretch at a time
without the earlier logs. Writes ``curve.json`` (the points; what the plot shows) and ``curve.png``.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import re

BAR = re.compile(r"(\d+)/\d+ \[[^\]]*?loss=([0-9.eE+-]+)")


def stretch_points(part: str, every: int = 50) -> list[tuple[int, float]]:
    """(step within the stretch, mean loss of the last 50 steps) from metrics.jsonl or a progress-bar log."""
    path = pathlib.Path(part)
    if path.is_dir() or path.suffix == ".jsonl":
        rows = [json.loads(r) for r in (path / "metrics.jsonl" if path.is_dir() else path).read_text().splitlines()]
        return [(r["step"], r["loss"]) for r in rows if r["step"] % every == 0]
    last: dict[int, float] = {}
    for step, loss in BAR.findall(path.read_text(errors="replace")):
        last[int(step)] = float(loss)
    return [(s, v) for s, v in sorted(last.items()) if s and s % every == 0]


def run_curve(parts: list[str], start: list | None = None, batch: int = 32) -> list[tuple[int, float]]:
    out = [tuple(p) for p in start or []]
    offset = out[-1][0] if out else 0
    for part in parts:
        path, _, part_batch = part.partition("@")
        scale = int(part_batch or batch) / batch  # this stretch's steps in steps of ``batch`` images
        pts = stretch_points(path)
        out += [(offset + round(s * scale), v) for s, v in pts]
        offset += round(pts[-1][0] * scale) if pts else 0
    return out


def dev_point(step: int, folder: str) -> dict:
    r = json.loads((pathlib.Path(folder) / "report.json").read_text())
    s, g = r["sweep"], r["sweep"]["guidance"]
    return {"step": step, "guidance": g, "n": r["n"], "split": r.get("split"),
            "accuracy": s["accuracy"]["dediffusion"], "accuracy_strict": s["accuracy_strict"]["dediffusion"],
            "frechet_distance": s["frechet_distance"]["probe"]["dediffusion"],
            "kid": s["kid"]["probe"]["dediffusion"], "decoder_loss": r["denoising_loss"]["dediffusion"]}


def plot(curves: dict, dev: list[dict], batch: int, out: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    for label, pts in curves.items():
        a.plot([s * batch / 1000 for s, _ in pts], [v for _, v in pts], label=label, lw=1)
    a.set(xlabel="images seen (thousands)", ylabel="denoising loss (mean of 50 steps)", title="training loss")
    a.legend()
    xs = [d["step"] * batch / 1000 for d in dev]
    for key, name in (("accuracy", "raw"), ("accuracy_strict", "strict")):
        for i, g in enumerate(dev[0]["guidance"] if dev else []):
            b.plot(xs, [d[key][i] for d in dev], marker="o", label=f"{name}, guidance {g:g}")
    b.set(xlabel="images seen (thousands)", ylabel="probe accuracy", title="dev split (seed 1), run seed 0")
    b.legend()
    fig.tight_layout()
    fig.savefig(out / "curve.png", dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", action="append", default=[], metavar="LABEL=PART,PART")
    ap.add_argument("--dev", action="append", default=[], metavar="STEP=REPORT")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--extend", metavar="CURVE_JSON", help="an earlier curve.json to continue")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    prev = json.loads(pathlib.Path(a.extend).read_text()) if a.extend else {"runs": {}, "dev": []}
    curves = {lab: run_curve(parts.split(","), prev["runs"].get(lab), a.batch)
              for lab, parts in (r.split("=", 1) for r in a.run)}
    dev = sorted(prev["dev"] + [dev_point(int(s), f) for s, f in (d.split("=", 1) for d in a.dev)],
                 key=lambda d: d["step"])
    out = pathlib.Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "curve.json").write_text(json.dumps({"batch": a.batch, "runs": curves, "dev": dev}, indent=1))
    plot(curves, dev, a.batch, out)
    for lab, pts in curves.items():
        print(lab, "steps", pts[-1][0] if pts else 0, "loss at 2000/end", dict(pts).get(2000), pts[-1][1] if pts else None)
    for d in dev:
        print("dev", d["step"], [round(x, 3) for x in d["accuracy"]], [round(x, 3) for x in d["accuracy_strict"]])


if __name__ == "__main__":
    main()
