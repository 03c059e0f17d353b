"""Step 3 of ``RULE.md``: the encoder continued against decoder A2 (``step3/runN/KK``), mean of the three
runs per budget, against the stage-12b control continued and decoded with decoder A (``dev_lowt/t200_sN``).

    python benchmarks/dev_padded_decoder/summary_step3.py --out benchmarks/dev_padded_decoder/summary_step3.json

Each budget's guidance: FD-best among {1.5, 2} on the mean of the runs (the control at its ``dev_tokens``
guidances 2 / 1.5 / 1.5). Pass: (a) raw accuracy and FD both improve from 16 to 24 and from 24 to 32 tokens;
(b) at 32 tokens raw accuracy at least the control's - 0.005 and FD lower than the control's.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import pathlib

HERE = pathlib.Path(__file__).parent
_spec = importlib.util.spec_from_file_location("dev_padded_decoder_summary", HERE / "summary.py")
_step1 = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_step1)
mean_of = _step1.mean_of  # reports at one guidance: per metric, the mean and each run's value
CONTROL, CONTROL_GUIDANCE = HERE.parent / "dev_lowt", {16: 2.0, 24: 1.5, 32: 1.5}
BUDGETS = (16, 24, 32)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    out = {}
    for k in BUDGETS:
        by_g = {g: mean_of([HERE / "step3" / f"run{r}" / f"K{k}" for r in range(3)], g) for g in (1.5, 2.0)}
        g = min(by_g, key=lambda x: by_g[x]["fd"]["mean"])
        control = mean_of([CONTROL / f"t200_s{r}" / f"K{k}" for r in range(3)], CONTROL_GUIDANCE[k])
        out[f"K{k}"] = {"guidance": g, "a2": by_g[g], "control_guidance": CONTROL_GUIDANCE[k], "control": control}
        print(k, g, {m: round(v["mean"], 4) for m, v in by_g[g].items()}, "control",
              {m: round(v["mean"], 4) for m, v in control.items()}, flush=True)
    mean = {k: out[f"K{k}"]["a2"] for k in BUDGETS}
    steps_ok = all(mean[b]["raw"]["mean"] > mean[a]["raw"]["mean"] and mean[b]["fd"]["mean"] < mean[a]["fd"]["mean"]
                   for a, b in ((16, 24), (24, 32)))
    c32 = out["K32"]["control"]
    beats = (mean[32]["raw"]["mean"] >= c32["raw"]["mean"] - 0.005 and mean[32]["fd"]["mean"] < c32["fd"]["mean"])
    out["a_steps_16_24_32_improve"], out["b_K32_vs_control"] = bool(steps_ok), bool(beats)
    out["step_3_passes"] = bool(steps_ok and beats)
    print("steps improve:", steps_ok, "K32 vs control:", beats, "step 3 passes:", out["step_3_passes"])
    pathlib.Path(a.out).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
