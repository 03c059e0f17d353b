"""``dediffusion eval``: reconstruction quality of each prompt source (the paper's Table 1 in miniature).

For held-out scenes (``seed`` differs from the training seed; ``SPLITS`` names
a dev and a test stream), images are decoded from each prompt source with the
same starting noise per scene for every source and guidance scale, and judged
two ways: the probe reads every attribute back (raw and strict accuracy, and
chance-corrected: empty prompt = 0, full caption = 1), and FD and KID between
real and decoded images are taken in an offline feature space (``metrics.py``).
Beside them, the *floor*: FD and KID between the held-out scenes and as many
other real scenes (the same stream's scenes n..2n-1), what a perfect decoder
would score at this n. Per-scene probe hits are kept in the result, per-scene
features in ``features_out``; paired bootstrap intervals compare pairs of
sources on the same resampled scenes (``stats.py``).

Prompt sources: ``dediffusion`` (the encoder's text), ``human_caption`` and
``full_caption`` (the world's captions), ``random_tokens`` (random allowed
words, as many as the encoder emits), ``empty`` and ``inverted`` (per-image
prompt optimisation through the same decoder, ``invert.py``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import torch
from tqdm.auto import tqdm

from dediffusion.config import to_dict
from dediffusion.eval.compare import chance_corrected_sweep, paired_comparisons, per_scene_lists
from dediffusion.model.sampling import generate
from dediffusion.eval.invert import InvertConfig, invert_texts
from dediffusion.eval.metrics import Distances, feature_extractor, kernel_gamma, kid_subset_size
from dediffusion.model.tokenizer import decode_ids
from dediffusion.data.world.batches import images_tensor, scenes
from dediffusion.eval.probe import attribute_hits, concat_hits, summarise
from dediffusion.data.world.scenes import CELLS, COLOURS, Scene, full_caption, human_caption

CAPTIONS = {"human_caption": human_caption, "full_caption": full_caption, "empty": lambda scene: ""}
SOURCES = ("dediffusion", "human_caption", "full_caption", "random_tokens", "empty", "inverted")
DEFAULT_SOURCES = ("dediffusion", "human_caption", "full_caption", "empty")
SPLITS = {"dev": 1, "test": 7}  # held-out scene streams: tune on dev, report test once (training: seed 0)


def split_name(seed: int) -> str:
    """"dev" / "test" for their scene streams, "custom" for any other seed."""
    return next((k for k, v in SPLITS.items() if v == seed), "custom")


@dataclass(frozen=True)
class EvalConfig:
    seed: int = SPLITS["dev"]  # held-out scene stream
    n: int = 500
    steps: int = 25  # DDIM steps
    guidance: tuple[float, ...] = (3.0,)  # the sweep (paper, Table 1: 1.5, 2, 3, ..., 8)
    headline: float = 3.0  # guidance of the top-level ``accuracy`` keys (paper: best FID at 3.0, Table 6)
    sources: tuple[str, ...] = DEFAULT_SOURCES
    features: tuple[str, ...] = ("probe",)  # FD / KID feature spaces (metrics.FEATURES)
    batch: int = 100
    invert: InvertConfig = field(default_factory=InvertConfig)
    pairs: tuple[tuple[str, str], ...] = (("dediffusion", "human_caption"),)  # paired bootstrap: A vs B
    n_boot: int = 1000  # resamples for accuracy intervals
    n_boot_distance: int = 200  # for FD / KID intervals (each resample recomputes them from features)


def random_token_texts(model, count: int, generator: torch.Generator) -> list[str]:
    """Random allowed words, as many per text as the encoder emits."""
    allowed = model.head.allowed_ids
    n = model.cfg.head.inference_tokens or model.cfg.encoder.num_tokens  # as many as the encoder emits
    idx = torch.randint(len(allowed), (count, n), generator=generator)
    return [decode_ids(model.decoder.tokenizer, row) for row in allowed[idx]]


def _batches(cfg: EvalConfig, offset: int = 0):
    """(start, scenes) for the held-out scenes ``offset .. offset + n - 1``, ``cfg.batch`` at a time."""
    for start in range(0, cfg.n, cfg.batch):
        yield start, scenes(cfg.seed, offset + start, min(cfg.batch, cfg.n - start))


def _prompts(model, cfg: EvalConfig, dists: dict, probe, progress: bool):
    """Phase 1: every source's prompts, the real images' probe hits and features, prompt timings."""
    prompts = {k: [] for k in cfg.sources}
    seconds = dict.fromkeys(cfg.sources, 0.0)
    real_hits, dd_texts = [], []
    gen = torch.Generator().manual_seed(cfg.seed)
    for start, chunk in tqdm(_batches(cfg), disable=not progress, desc="prompts", total=-(-cfg.n // cfg.batch)):
        images = images_tensor(chunk, model.decoder.resolution)
        real_hits.append(attribute_hits(probe, images, chunk))
        for d in dists.values():
            d.update(images, real=True)
        for name in cfg.sources:
            t0 = time.perf_counter()
            if name == "dediffusion":
                texts = model.texts(images)
            elif name == "inverted":
                texts = invert_texts(model, images, cfg.invert, progress)
            elif name == "random_tokens":
                texts = random_token_texts(model, len(chunk), gen)
            else:
                texts = [CAPTIONS[name](s) for s in chunk]
            seconds[name] += time.perf_counter() - t0
            prompts[name] += texts
        dd_texts += prompts["dediffusion"][start:] if "dediffusion" in prompts else model.texts(images)
    per_image = {k: v / cfg.n for k, v in seconds.items()}
    return prompts, concat_hits(real_hits), dd_texts, per_image


def _floor(model, cfg: EvalConfig, dists: dict) -> dict:
    """FD / KID between the held-out scenes and n other real scenes of the stream (n..2n-1): the floor."""
    for _, chunk in _batches(cfg, offset=cfg.n):
        for d in dists.values():
            d.update(images_tensor(chunk, model.decoder.resolution), real=False)
    return {f: d.compute() for f, d in dists.items()}


def _decode_and_judge(model, probe, cfg: EvalConfig, prompts: dict, dists: dict, progress: bool) -> dict:
    """Phase 2: decode every source at every guidance; per-scene probe hits, FD / KID and features per cell."""
    hits = {k: [] for k in cfg.sources}
    dist = {f: {k: [] for k in cfg.sources} for f in dists}
    bar = tqdm(total=len(cfg.sources) * len(cfg.guidance) * len(range(0, cfg.n, cfg.batch)), disable=not progress,
               desc="decode")
    for name in cfg.sources:
        for g in cfg.guidance:
            parts = []
            for start, chunk in _batches(cfg):
                out = generate(model.decoder, prompts[name][start : start + len(chunk)], steps=cfg.steps, guidance=g,
                               seed=cfg.seed * 100_003 + start)  # the same starting noise per scene for every source
                parts.append(attribute_hits(probe, out, chunk))
                for d in dists.values():
                    d.update(out, real=False)
                bar.update(1)
            hits[name].append(concat_hits(parts))
            for f, d in dists.items():
                dist[f][name].append(d.compute())  # and forget this fake set; the real one stays
    bar.close()
    return {"hits": hits, "distances": dist}


def _sweep(cfg: EvalConfig, hits: dict, dist: dict, floor: dict) -> dict:
    """Every cell (source x guidance) of accuracy (raw, strict, chance-corrected), FD, KID, and the floor."""
    by_attr = {k: [summarise(h) for h in v] for k, v in hits.items()}
    acc = {k: [a["all"] for a in v] for k, v in by_attr.items()}
    strict = {k: [a["strict"] for a in v] for k, v in by_attr.items()}
    cell = lambda key: {f: {k: [c[key] for c in v] for k, v in per.items()} for f, per in dist.items()}  # noqa: E731
    return {"guidance": list(cfg.guidance), "sources": list(cfg.sources), "features": list(cfg.features),
            "accuracy": acc, "accuracy_strict": strict,
            "accuracy_chance_corrected": chance_corrected_sweep(acc), "accuracy_strict_chance_corrected":
            chance_corrected_sweep(strict), "accuracy_by_attribute": by_attr,
            "frechet_distance": cell("frechet_distance"), "kid": cell("kid"), "kid_std": cell("kid_std"),
            "floor": {f: {k: v for k, v in c.items() if k != "features"} for f, c in floor.items()}}


def evaluate_sweep(model, probe, cfg: EvalConfig, progress: bool = True, features_out: dict | None = None) -> dict:
    """Probe accuracy, FD and KID per prompt source and guidance, with intervals; JSON-ready dict.

    The top-level keys (``accuracy``, ``accuracy_by_attribute``, ...) are those at the headline
    guidance; ``sweep`` holds every cell, ``per_scene`` every scene's probe hits, ``paired_bootstrap``
    the intervals. ``features_out``, if given, receives every image set's features (n, d), keyed
    ``{feature}/real``, ``{feature}/floor`` and ``{feature}/{source}/g{guidance}``.
    """
    unknown = set(cfg.sources) - set(SOURCES)
    if unknown or not cfg.sources or not cfg.guidance:
        raise ValueError(f"unknown prompt source(s) {sorted(unknown)}; known: {', '.join(SOURCES)}" if unknown
                         else "eval needs at least one prompt source and one guidance scale")
    t0 = time.time()
    dists, gammas = _distances(model, probe, cfg)
    prompts, real_hits, dd_texts, per_image = _prompts(model, cfg, dists, probe, progress)
    floor = _floor(model, cfg, dists)
    judged = _decode_and_judge(model, probe, cfg, prompts, dists, progress)
    feats = _features(cfg, dists, floor, judged["distances"])
    if features_out is not None:
        features_out.update(feats)
    sweep = _sweep(cfg, judged["hits"], judged["distances"], floor)
    sweep["feature_dims"] = {f: int(feats[f"{f}/real"].shape[1]) for f in cfg.features}
    sweep["kid_gamma"], sweep["kid_subset_size"] = gammas, kid_subset_size(cfg.n)
    head = cfg.guidance.index(cfg.headline) if cfg.headline in cfg.guidance else 0
    at = lambda per: {k: v[head] for k, v in per.items()} if per is not None else None  # noqa: E731
    return {
        "accuracy": at(sweep["accuracy"]), "accuracy_strict": at(sweep["accuracy_strict"]),
        "accuracy_chance_corrected": at(sweep["accuracy_chance_corrected"]),
        "accuracy_strict_chance_corrected": at(sweep["accuracy_strict_chance_corrected"]),
        "accuracy_by_attribute": at(sweep["accuracy_by_attribute"]),
        "frechet_distance": {f: at(per) for f, per in sweep["frechet_distance"].items()},
        "kid": {f: at(per) for f, per in sweep["kid"].items()}, "floor": sweep["floor"],
        "real_image_probe_accuracy": summarise(real_hits)["all"],
        "real_image_probe_accuracy_strict": summarise(real_hits)["strict"],
        "distinct_text_fraction": len(set(dd_texts)) / len(dd_texts),
        "split": split_name(cfg.seed), "seed": cfg.seed, "n": cfg.n, "steps": cfg.steps, "guidance": cfg.guidance[head],
        "train_seed": model.cfg.train_seed,
        "examples": [{k: prompts[k][i] for k in cfg.sources} for i in range(min(5, cfg.n))],
        "denoising_loss": caption_losses(model.decoder, cfg.seed, min(cfg.n, 256), model),
        "sweep": sweep,
        "best_guidance": best_guidance(sweep["frechet_distance"], cfg.guidance),
        "prompt_seconds_per_image": per_image,
        "inversion": to_dict(cfg.invert) if "inverted" in cfg.sources else None,
        "per_scene": per_scene_lists(real_hits, judged["hits"]),
        "paired_bootstrap": paired_comparisons(cfg, judged["hits"], feats, gammas),
        "seconds": round(time.time() - t0, 1),
    }


def _distances(model, probe, cfg: EvalConfig) -> tuple[dict, dict[str, float]]:
    """One FD/KID accumulator per feature space; KID's kernel scale from 256 scenes of the training stream
    (fixed: the same kernel for every split and n)."""
    reference = images_tensor(scenes(model.cfg.train_seed, 0, 256), model.decoder.resolution)
    dists, gammas = {}, {}
    for f in cfg.features:
        module = feature_extractor(f, probe)
        gammas[f] = kernel_gamma(module, reference)
        dists[f] = Distances(module, cfg.n, seed=cfg.seed, gamma=gammas[f])
    return dists, gammas


def _features(cfg: EvalConfig, dists: dict, floor: dict, dist: dict) -> dict[str, torch.Tensor]:
    out = {}
    for f, d in dists.items():
        out[f"{f}/real"], out[f"{f}/floor"] = d.real_features(), floor[f]["features"]
        for name, cells in dist[f].items():
            out.update({f"{f}/{name}/g{g:g}": c.pop("features") for g, c in zip(cfg.guidance, cells)})
    return out


def best_guidance(fd: dict, guidance) -> dict:
    """Per feature space and source: the guidance with the lowest Frechet distance, and that distance."""
    out = {f: {} for f in fd}
    for f, per in fd.items():
        for k, values in per.items():
            scored = [(v, g) for v, g in zip(values, guidance) if v is not None]
            if scored:
                v, g = min(scored)
                out[f][k] = {"guidance": g, "frechet_distance": v}
    return out


@torch.no_grad()
def caption_losses(decoder, seed: int, n: int = 256, model=None, t_min: int = 200, t_max: int = 999) -> dict[str, float]:
    """Mean denoising loss given each prompt source, with fixed noise and noise levels.

    A decoder that learned the words for every attribute ranks them
    full < human-like < empty; with ``model`` the De-Diffusion text is ranked
    too. This check costs seconds (no sampling).
    """
    chunk = scenes(seed, 0, n)
    prompts = {k: [f(s) for s in chunk] for k, f in CAPTIONS.items()}
    if model is not None:
        prompts["dediffusion"] = model.texts(images_tensor(chunk, decoder.resolution))
    return _fixed_noise_losses(decoder, chunk, prompts, seed, t_min, t_max)


def _fixed_noise_losses(decoder, chunk: list[Scene], prompts: dict[str, list[str]], seed: int, t_min: int,
                        t_max: int) -> dict[str, float]:
    """Mean denoising loss of ``chunk``'s images given each prompt list, all with the same (t, noise) draws."""
    images = images_tensor(chunk, decoder.resolution)
    gen = torch.Generator().manual_seed(seed)
    t = torch.randint(t_min, t_max + 1, (len(chunk),), generator=gen)
    noise = torch.randn(images.shape, generator=gen)
    dev = decoder.token_embedding.device  # draws on the CPU, so a GPU run gives the same numbers
    images, t, noise = images.to(dev), t.to(dev), noise.to(dev)
    return {k: float(decoder.loss(images, decoder.text_states(p), t, noise).mean()) for k, p in prompts.items()}


def _moved(scene: Scene) -> Scene:
    o = scene.objects[0]
    return Scene(scene.background, (replace(o, cell=(o.cell + 1) % len(CELLS)),))


def _recoloured(scene: Scene) -> Scene:
    names = list(COLOURS)
    o = scene.objects[0]
    return Scene(scene.background, (replace(o, colour=names[(names.index(o.colour) + 1) % len(names)]),))


@torch.no_grad()
def word_sensitivity(decoder, seed: int, n: int = 200, t_min: int = 950, t_max: int = 999) -> dict[str, float]:
    """Does the decoder read position and colour words? Mean loss on ``n`` single-object scenes, fixed noise.

    Compares the full caption with the same caption with the object's cell changed
    (``position_changed``) or its colour changed (``colour_changed``), and the empty prompt.
    At t >= 950 the noisy image no longer shows where the object is, so a decoder that reads
    position words scores ``full_caption`` clearly below ``position_changed``.
    """
    chunk = [s for s in scenes(seed, 0, 8 * n) if len(s.objects) == 1][:n]
    prompts = {"full_caption": [full_caption(s) for s in chunk],
               "position_changed": [full_caption(_moved(s)) for s in chunk],
               "colour_changed": [full_caption(_recoloured(s)) for s in chunk], "empty": [""] * len(chunk)}
    return _fixed_noise_losses(decoder, chunk, prompts, seed, t_min, t_max)
