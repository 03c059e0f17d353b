"""The evaluation report folder: ``report.json``, ``report.md`` (RESULTS-style tables) and PNG plots.

``write_report(result, folder, command)`` takes the dict of
``evaluate.evaluate_sweep`` and writes:

- ``report.json``: the dict as is (per-scene probe hits included), plus the command;
- ``features.safetensors``: every image set's per-scene features, if given (``evaluate_sweep(features_out=)``);
- ``report.md``: FD and KID (each beside the real-vs-real floor at the same n),
  probe accuracy raw / strict / chance-corrected per source x guidance, paired
  bootstrap margins, the best guidance per source with per-attribute accuracy,
  seconds per image to obtain each prompt, and examples;
- ``fd_vs_guidance.png`` (one panel per feature space) and ``accuracy_vs_guidance.png``.
"""
from __future__ import annotations

import json
import math
import pathlib

import torch

from dediffusion.checkpoint import atomic_write_text, save_tensors


def fmt(v, digits: int = 3) -> str:
    """At least ``digits`` significant digits, no exponent for ordinary magnitudes (17895.3 -> 17895)."""
    if v is None:
        return "-"
    if v == 0:
        return "0"
    if not 1e-3 <= abs(v) < 1e6:
        return f"{v:.{digits}g}"
    return f"{v:.{max(0, digits - 1 - math.floor(math.log10(abs(v))))}f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(r) + " |" for r in rows]


def _sweep_table(values: dict[str, list], guidance: list[float], digits: int, best: dict | None = None) -> list[str]:
    rows = []
    for source, vals in values.items():
        cells = [fmt(v, digits) for v in vals]
        if best and source in best:  # bold the best guidance of each source
            i = guidance.index(best[source]["guidance"])
            cells[i] = f"**{cells[i]}**"
        rows.append([f"`{source}`"] + cells)
    return _table(["source"] + [f"g={g:g}" for g in guidance], rows)


def _speed_lines(seconds: dict[str, float]) -> list[str]:
    lines = _table(["source", "seconds per image to obtain the prompt"],
                   [[f"`{k}`", f"{v:.4f}"] for k, v in seconds.items()])
    enc, inv = seconds.get("dediffusion"), seconds.get("inverted")
    if enc and inv:
        lines += ["", f"Per-image optimisation took {inv / enc:,.0f}x as long per image as the encoder's forward pass "
                      f"({inv:.3f} s vs {enc:.5f} s, both batched as in this run)."]
    return lines


def _floor_row(value, guidance: list) -> list[str]:
    return ["*real vs real (floor)*"] + [value] * len(guidance)


def _distance_lines(result: dict) -> list[str]:
    """FD and KID tables per feature space, each with the real-vs-real floor at the same n as a last row."""
    sweep, g, n = result["sweep"], result["sweep"]["guidance"], result["n"]
    out = []
    for feature, per in sweep["frechet_distance"].items():
        floor, d = sweep["floor"][feature], sweep.get("feature_dims", {}).get(feature, "d")
        out += [f"## Frechet distance ({feature} features, n = {n}; lower is better; bold = best guidance)", ""]
        out += _sweep_table(per, g, 4, result["best_guidance"].get(feature))
        out += ["| " + " | ".join(_floor_row(fmt(floor["frechet_distance"], 4), g)) + " |", ""]
        out += [f"FD fits a {d}x{d} covariance to n = {n} images per set: at this n it is ill-conditioned and biased "
                f"upwards, so compare FDs only at equal n. The floor is the held-out scenes vs {n} *other* real scenes "
                f"of the same stream: what an unrelated real sample scores. Reconstructions are paired with their "
                f"scenes, so a faithful source can score below it (a perfect copy scores 0).", ""]
        std = sweep["kid_std"][feature]
        kid = {k: [None if m is None else f"{fmt(m, 3)} ± {fmt(s, 2)}" for m, s in zip(v, std[k])]
               for k, v in sweep["kid"][feature].items()}
        out += [f"## KID ({feature} features, n = {n}; unbiased MMD^2, mean ± std over 100 subsets of "
                f"{sweep.get('kid_subset_size', '?')}; lower is better; floor as for FD)", ""]
        gamma = sweep.get("kid_gamma", {}).get(feature)
        if gamma:
            out += [f"Kernel (gamma x.y + 1)^3 with gamma = {gamma:.3g} = 1 / E|f|^2 over 256 training-stream "
                    f"scenes (the same kernel for every split and n). Values near 0 or below: indistinguishable.", ""]
        rows = [[f"`{k}`"] + [c or "-" for c in v] for k, v in kid.items()]
        rows.append(_floor_row(f"{fmt(floor['kid'], 3)} ± {fmt(floor['kid_std'], 2)}", g))
        out += _table(["source"] + [f"g={x:g}" for x in g], rows) + [""]
    return out


def _accuracy_lines(result: dict) -> list[str]:
    sweep, g, n = result["sweep"], result["sweep"]["guidance"], result["n"]
    out = [f"## Probe accuracy, strict (n = {n}; higher is better)", "",
           "Colour and size count only where the probe also reads an object in that cell of the reconstruction.", ""]
    out += _sweep_table(sweep["accuracy_strict"], g, 3) + [""]
    out += [f"## Probe accuracy, raw 'all' (n = {n}; with chance credit)", "",
            "Colour and size are read in every cell that holds an object in the source scene, even where the "
            "reconstruction has none, so an empty reconstruction still earns some of them.", ""]
    out += _sweep_table(sweep["accuracy"], g, 3) + [""]
    for key, label in (("accuracy_strict_chance_corrected", "strict"), ("accuracy_chance_corrected", "raw")):
        if sweep.get(key):
            out += [f"## Chance-corrected probe accuracy, {label} (n = {n}; empty prompt = 0, full caption = 1)", ""]
            out += _sweep_table(sweep[key], g, 3) + [""]
    out += [f"Probe accuracy on the real images: raw {result['real_image_probe_accuracy']:.3f}, strict "
            f"{result.get('real_image_probe_accuracy_strict', float('nan')):.3f}.", ""]
    return out


def _margin(m: dict | None) -> str:
    """``diff [lo, hi]`` with signs."""
    if m is None:
        return "-"
    sign = lambda v: ("+" if v >= 0 else "") + fmt(v, 3)  # noqa: E731
    return f"{sign(m['diff'])} [{sign(m['lo'])}, {sign(m['hi'])}]"


def _bootstrap_lines(result: dict) -> list[str]:
    """One table per pair: rows = metric, columns = guidance, cells = margin A - B [95% interval]."""
    boot, n = result.get("paired_bootstrap"), result["n"]
    if not boot or not boot["comparisons"]:
        return []
    out = [f"## Paired bootstrap: A vs B (n = {n} scenes; margin = A - B [95% interval])", "",
           f"Scenes resampled with replacement, the same resamples for both sources ({boot['n_boot_accuracy']} for "
           f"accuracy, {boot['n_boot_distance']} for FD / KID, recomputed from per-scene features). Accuracy: "
           f"positive favours A; FD / KID: negative favours A. FD intervals are basic-bootstrap intervals (FD is "
           f"biased at this n; they target the large-sample difference and need not contain the observed margin); "
           f"KID margins use the unbiased MMD^2 over all n scenes.", ""]
    pairs = list(dict.fromkeys((c["a"], c["b"]) for c in boot["comparisons"]))
    for a, b in pairs:
        rows_by_g = [c for c in boot["comparisons"] if (c["a"], c["b"]) == (a, b)]
        metrics = [("accuracy (strict)", lambda c: c["accuracy_strict"]), ("accuracy (raw)", lambda c: c["accuracy"])]
        for f in rows_by_g[0]["frechet_distance"]:
            metrics += [(f"FD ({f})", lambda c, f=f: c["frechet_distance"][f]),
                        (f"KID ({f})", lambda c, f=f: c["kid"][f])]
        out += [f"`{a}` vs `{b}`:", ""]
        out += _table(["metric"] + [f"g={c['guidance']:g}" for c in rows_by_g],
                      [[name] + [_margin(get(c)) for c in rows_by_g] for name, get in metrics]) + [""]
    return out


def markdown(result: dict, command: str = "") -> str:
    """RESULTS-style Markdown for one ``evaluate_sweep`` result."""
    sweep = result["sweep"]
    out = ["# Evaluation report", ""]
    if command:
        out += ["Command:", "", f"    {command}", ""]
    out += [f"Split **{result.get('split', 'custom')}**: held-out scene seed {result['seed']} (training seed "
            f"{result['train_seed']}), n = {result['n']} scenes, DDIM {result['steps']} steps, the same starting noise "
            f"per scene for every source and guidance; {result['seconds']:.0f} s in all.", ""]
    if result.get("decoder"):
        out += [f"Decoder: `{result['decoder']}`.", ""]
    out += _distance_lines(result) + _accuracy_lines(result) + _bootstrap_lines(result) + _best_lines(result)
    out += ["## Seconds per image to obtain each prompt", ""] + _speed_lines(result["prompt_seconds_per_image"]) + [""]
    out += ["## Examples", ""]
    keys = sweep["sources"]
    out += _table([f"`{k}`" for k in keys], [[e[k] or "(empty)" for k in keys] for e in result["examples"]]) + [""]
    out += [f"De-Diffusion distinct text fraction: {result['distinct_text_fraction']:.3f}.", ""]
    return "\n".join(out)


def _best_lines(result: dict) -> list[str]:
    """Per-attribute accuracy of each source at its best guidance (first feature space's FD)."""
    sweep = result["sweep"]
    if not sweep["features"]:
        return []
    feature = sweep["features"][0]
    best = result["best_guidance"][feature]
    attrs = [a for a in next(iter(sweep["accuracy_by_attribute"].values()))[0] if a not in ("all", "strict")]
    rows = []
    for source, b in best.items():
        acc = sweep["accuracy_by_attribute"][source][sweep["guidance"].index(b["guidance"])]
        rows.append([f"`{source}`", f"{b['guidance']:g}", fmt(b["frechet_distance"], 4)] +
                    [f"{acc[a]:.3f}" for a in attrs + ["all", "strict"]])
    lines = [f"## At each source's best guidance (by {feature} Frechet distance; n = {result['n']})", ""]
    return lines + _table(["source", "guidance", "FD"] + attrs + ["all (raw)", "strict"], rows) + [""]


def plot(result: dict, folder) -> list[pathlib.Path]:
    """FD vs guidance (one panel per feature space, floor dashed) and accuracy (strict, raw) vs guidance."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = pathlib.Path(folder)
    sweep, g = result["sweep"], result["sweep"]["guidance"]
    floor = sweep.get("floor", {})
    written = []
    panels = [(f"Frechet distance ({f} features, n = {result['n']})", per, floor.get(f, {}).get("frechet_distance"))
              for f, per in sweep["frechet_distance"].items()]
    accuracy = [(f"probe accuracy, {k} (n = {result['n']})", sweep[key], None)
                for k, key in (("strict", "accuracy_strict"), ("raw", "accuracy")) if key in sweep]
    for name, items in (("fd_vs_guidance.png", panels), ("accuracy_vs_guidance.png", accuracy)):
        if not items:
            continue
        fig, axes = plt.subplots(1, len(items), figsize=(5 * len(items), 3.6), squeeze=False)
        for ax, (title, per, level) in zip(axes[0], items):
            for source, vals in per.items():
                ax.plot(g, [float("nan") if v is None else v for v in vals], marker="o", label=source)
            if level is not None:
                ax.axhline(level, color="grey", linestyle="--", label="real vs real (floor)")
            ax.set(title=title, xlabel="guidance scale")
            ax.grid(alpha=0.3)
        axes[0][0].legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(folder / name, dpi=100)
        plt.close(fig)
        written.append(folder / name)
    return written


def write_report(result: dict, folder, command: str = "", features: dict | None = None) -> list[pathlib.Path]:
    """Write report.json, report.md, the plots and (if given) features.safetensors into ``folder``; returns paths."""
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    if features:
        save_tensors(folder / "features.safetensors", features, dtype=torch.float16)  # re-analysis only
        result = {**result, "features_file": "features.safetensors"}
        written.append(folder / "features.safetensors")
    atomic_write_text(folder / "report.json", json.dumps({"command": command, **result}, indent=2) + "\n")
    atomic_write_text(folder / "report.md", markdown(result, command))
    return [folder / "report.json", folder / "report.md"] + written + plot(result, folder)
