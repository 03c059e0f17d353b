"""What ``dediffusion eval`` adds to the raw tables: per-scene hits, chance-corrected accuracy, paired intervals.

``paired_comparisons`` puts a 95% paired-bootstrap interval (``stats.py``) on the
difference A - B between two prompt sources at every guidance: raw and strict
probe accuracy (``cfg.n_boot`` resamples), and FD / KID recomputed from the
stored per-scene features (``cfg.n_boot_distance`` resamples). Both sources are
evaluated on the same resampled scenes, whose starting noise was the same too.
"""
from __future__ import annotations

import time

import torch

from dediffusion.eval.stats import FrechetResampled, KidResampled, accuracy, chance_corrected, paired_bootstrap
from dediffusion.eval.probe import ATTRIBUTES, STRICT, scene_scores

BOOT_SEED = 0


def chance_corrected_sweep(acc: dict[str, list]) -> dict[str, list] | None:
    """Per source and guidance ``(acc - acc_empty) / (acc_full - acc_empty)``; None unless both were evaluated."""
    if "empty" not in acc or "full_caption" not in acc:
        return None
    return {k: [chance_corrected(a, e, f) for a, e, f in zip(v, acc["empty"], acc["full_caption"])]
            for k, v in acc.items()}


def _ints(hits: dict[str, torch.Tensor], keys) -> dict[str, list[int]]:
    return {k: hits[f"{k}_hits"].round().int().tolist() for k in keys}


def per_scene_lists(real: dict[str, torch.Tensor], hits: dict[str, list]) -> dict:
    """JSON-ready per-scene probe hits: ``checks`` per attribute (the same for every image set), the real images'
    hits, and ``hits[source][guidance index]`` per attribute (``colour_strict``/``size_strict`` included)."""
    keys = ATTRIBUTES + tuple(f"{a}_strict" for a in STRICT)
    return {"attributes": list(keys),
            "checks": {a: real[f"{a}_total"].round().int().tolist() for a in ATTRIBUTES},
            "real": _ints(real, keys),
            "hits": {k: [_ints(h, keys) for h in v] for k, v in hits.items()}}


def _scores(h: dict[str, torch.Tensor], strict: bool):
    hit, total = scene_scores(h, strict)
    return hit.double().cpu().numpy(), total.double().cpu().numpy()


def paired_comparisons(cfg, hits: dict[str, list], feats: dict[str, torch.Tensor], gammas: dict[str, float]) -> dict:
    """Intervals for every pair in ``cfg.pairs`` whose sources were both evaluated, at every guidance.

    ``gammas``: KID's kernel scale per feature space (as in the KID tables)."""
    t0 = time.perf_counter()
    pairs = [(a, b) for a, b in cfg.pairs if a in hits and b in hits]
    dist = cfg.n >= 3 and cfg.n_boot_distance > 0
    metrics = {f: (FrechetResampled(feats[f"{f}/real"]), KidResampled(feats[f"{f}/real"], gammas[f]))
               for f in cfg.features}
    out = []
    for a, b in pairs:
        for i, g in enumerate(cfg.guidance):
            row = {"a": a, "b": b, "guidance": g}
            for key, strict in (("accuracy", False), ("accuracy_strict", True)):
                row[key] = paired_bootstrap(accuracy, _scores(hits[a][i], strict), _scores(hits[b][i], strict),
                                            cfg.n_boot, BOOT_SEED)
            fa, fb = ({f: feats[f"{f}/{s}/g{g:g}"] for f in cfg.features} for s in (a, b))
            row["frechet_distance"] = {f: paired_bootstrap(fd, fa[f], fb[f], cfg.n_boot_distance, BOOT_SEED, "basic")
                                       if dist else None for f, (fd, _) in metrics.items()}
            row["kid"] = {f: paired_bootstrap(kid, fa[f], fb[f], cfg.n_boot_distance, BOOT_SEED)
                          if dist else None for f, (_, kid) in metrics.items()}
            out.append(row)
    return {"n_boot_accuracy": cfg.n_boot, "n_boot_distance": cfg.n_boot_distance, "seed": BOOT_SEED, "level": 0.95,
            "kid_estimator": "unbiased MMD^2 over all n scenes (the KID tables average subsets)",
            "comparisons": out, "seconds": round(time.perf_counter() - t0, 2)}
