"""The evaluation report folder: ``report.json``, ``report.md`` (RESULTS-style tables) and PNG plots.

``write_report(result, folder, command)`` takes the dict of
``evaluate.evaluate_sweep`` and writes:

- ``report.json``: the dict as is, plus the command that produced it;
- ``report.md``: Frechet distance and probe accuracy per source x guidance,
  the best guidance per source, per-attribute accuracy there, seconds per image
  to obtain each prompt (encoder forward vs per-image optimisation) and examples;
- ``fd_vs_guidance.png`` (one panel per feature space) and ``accuracy_vs_guidance.png``.
"""
from __future__ import annotations

import json
import math
import pathlib

from .checkpoint import atomic_write_text


def _fmt(v, digits: int = 3) -> str:
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
        cells = [_fmt(v, digits) for v in vals]
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


def markdown(result: dict, command: str = "") -> str:
    """RESULTS-style Markdown for one ``evaluate_sweep`` result."""
    sweep, g = result["sweep"], result["sweep"]["guidance"]
    out = ["# Evaluation report", ""]
    if command:
        out += ["Command:", "", f"    {command}", ""]
    out += [f"Held-out scenes: seed {result['seed']} (training seed {result['train_seed']}), n = {result['n']}, "
            f"DDIM {result['steps']} steps, the same starting noise for every source and guidance; "
            f"{result['seconds']:.0f} s in all.", ""]
    if result.get("decoder"):
        out += [f"Decoder: `{result['decoder']}`.", ""]
    for feature, per in sweep["frechet_distance"].items():
        out += [f"## Frechet distance ({feature} features; lower is better; bold = best guidance)", ""]
        out += _sweep_table(per, g, 4, result["best_guidance"].get(feature)) + [""]
    out += ["## Probe accuracy over all attributes (higher is better)", ""]
    out += _sweep_table(sweep["accuracy"], g, 3) + [""]
    out += [f"Probe accuracy on the real images: {result['real_image_probe_accuracy']:.3f}.", ""]
    out += _best_lines(result)
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
    attrs = [a for a in next(iter(sweep["accuracy_by_attribute"].values()))[0] if a != "all"]
    rows = []
    for source, b in best.items():
        acc = sweep["accuracy_by_attribute"][source][sweep["guidance"].index(b["guidance"])]
        rows.append([f"`{source}`", f"{b['guidance']:g}", _fmt(b["frechet_distance"], 4)] +
                    [f"{acc[a]:.3f}" for a in attrs + ["all"]])
    lines = [f"## At each source's best guidance (by {feature} Frechet distance)", ""]
    return lines + _table(["source", "guidance", "FD"] + attrs + ["all"], rows) + [""]


def plot(result: dict, folder) -> list[pathlib.Path]:
    """FD vs guidance (one panel per feature space) and accuracy vs guidance, one line per source."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = pathlib.Path(folder)
    sweep, g = result["sweep"], result["sweep"]["guidance"]
    written = []
    panels = [(f"Frechet distance ({f} features)", per) for f, per in sweep["frechet_distance"].items()]
    for name, items in (("fd_vs_guidance.png", panels), ("accuracy_vs_guidance.png",
                                                         [("probe accuracy (all attributes)", sweep["accuracy"])])):
        if not items:
            continue
        fig, axes = plt.subplots(1, len(items), figsize=(5 * len(items), 3.6), squeeze=False)
        for ax, (title, per) in zip(axes[0], items):
            for source, vals in per.items():
                ax.plot(g, [float("nan") if v is None else v for v in vals], marker="o", label=source)
            ax.set(title=title, xlabel="guidance scale")
            ax.grid(alpha=0.3)
        axes[0][0].legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(folder / name, dpi=100)
        plt.close(fig)
        written.append(folder / name)
    return written


def write_report(result: dict, folder, command: str = "") -> list[pathlib.Path]:
    """Write report.json, report.md and the plots into ``folder``; returns the paths written."""
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / "report.json", json.dumps({"command": command, **result}, indent=2) + "\n")
    atomic_write_text(folder / "report.md", markdown(result, command))
    return [folder / "report.json", folder / "report.md"] + plot(result, folder)
