"""``dediffusion eval``: reconstruction quality of each prompt source (the paper's Table 1 in miniature).

For held-out scenes (``seed`` differs from the training seed), images are
decoded from each prompt source with the same starting noise for every source
and guidance scale, and judged two ways: the probe reads every attribute back
(accuracy), and the Frechet distance between real and decoded images is taken
in an offline feature space (``metrics.py``).

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

from .config import to_dict
from .generate import generate
from .invert import InvertConfig, invert_texts
from .metrics import feature_extractor, frechet_metric
from .tokenizer import decode_ids
from .world.data import images_tensor, scenes
from .world.probe import attribute_hits, concat_hits, summarise
from .world.scenes import CELLS, COLOURS, Scene, full_caption, human_caption

CAPTIONS = {"human_caption": human_caption, "full_caption": full_caption, "empty": lambda scene: ""}
SOURCES = ("dediffusion", "human_caption", "full_caption", "random_tokens", "empty", "inverted")
DEFAULT_SOURCES = ("dediffusion", "human_caption", "full_caption", "empty")
PAPER_GUIDANCE = (1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0)  # paper, Table 1


@dataclass(frozen=True)
class EvalConfig:
    seed: int = 1  # held-out scene stream
    n: int = 500
    steps: int = 25  # DDIM steps
    guidance: tuple[float, ...] = (3.0,)  # the sweep; PAPER_GUIDANCE for Table 1
    headline: float = 3.0  # guidance of the top-level ``accuracy`` keys (paper: best FID at 3.0, Table 6)
    sources: tuple[str, ...] = DEFAULT_SOURCES
    features: tuple[str, ...] = ("probe",)  # Frechet-distance feature spaces (metrics.FEATURES)
    batch: int = 100
    invert: InvertConfig = field(default_factory=InvertConfig)


def random_token_texts(model, count: int, generator: torch.Generator) -> list[str]:
    """Random allowed words, as many per text as the encoder emits."""
    allowed = model.head.allowed_ids
    idx = torch.randint(len(allowed), (count, model.cfg.encoder.num_tokens), generator=generator)
    return [decode_ids(model.decoder.tokenizer, row) for row in allowed[idx]]


def _prompts(model, cfg: EvalConfig, metrics: dict, probe, progress: bool):
    """Phase 1: every source's prompts, the real images' probe hits and Frechet statistics, prompt timings."""
    prompts = {k: [] for k in cfg.sources}
    seconds = dict.fromkeys(cfg.sources, 0.0)
    real_hits, dd_texts = [], []
    gen = torch.Generator().manual_seed(cfg.seed)
    for start in tqdm(range(0, cfg.n, cfg.batch), disable=not progress, desc="prompts"):
        chunk = scenes(cfg.seed, start, min(cfg.batch, cfg.n - start))
        images = images_tensor(chunk, model.decoder.resolution)
        real_hits.append(attribute_hits(probe, images, chunk))
        for metric in metrics.values():
            metric.update(images, real=True)
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


def _decode_and_judge(model, probe, cfg: EvalConfig, prompts: dict, metrics: dict, progress: bool) -> dict:
    """Phase 2: decode every source at every guidance; probe accuracy and Frechet distance per cell."""
    acc = {k: [] for k in cfg.sources}
    fd = {f: {k: [] for k in cfg.sources} for f in metrics}
    bar = tqdm(total=len(cfg.sources) * len(cfg.guidance) * len(range(0, cfg.n, cfg.batch)), disable=not progress,
               desc="decode")
    for name in cfg.sources:
        for g in cfg.guidance:
            hits = []
            for start in range(0, cfg.n, cfg.batch):
                chunk = scenes(cfg.seed, start, min(cfg.batch, cfg.n - start))
                out = generate(model.decoder, prompts[name][start : start + len(chunk)], steps=cfg.steps, guidance=g,
                               seed=cfg.seed * 100_003 + start)  # the same starting noise for every source
                hits.append(attribute_hits(probe, out, chunk))
                for metric in metrics.values():
                    metric.update(out, real=False)
                bar.update(1)
            acc[name].append(summarise(concat_hits(hits)))
            for f, metric in metrics.items():
                fd[f][name].append(float(metric.compute()) if cfg.n >= 2 else None)
                metric.reset()  # fake statistics only: reset_real_features=False
    bar.close()
    return {"accuracy_by_attribute": acc, "frechet_distance": fd}


def evaluate_sweep(model, probe, cfg: EvalConfig, progress: bool = True) -> dict:
    """Probe accuracy and Frechet distance per prompt source and guidance; JSON-ready dict.

    The top-level keys (``accuracy``, ``accuracy_by_attribute``, ...) are those
    of :func:`evaluate` at the headline guidance; ``sweep`` holds every cell.
    """
    unknown = set(cfg.sources) - set(SOURCES)
    if unknown or not cfg.sources or not cfg.guidance:
        raise ValueError(f"unknown prompt source(s) {sorted(unknown)}; known: {', '.join(SOURCES)}" if unknown
                         else "eval needs at least one prompt source and one guidance scale")
    t0 = time.time()
    metrics = {f: frechet_metric(feature_extractor(f, probe)) for f in cfg.features}
    prompts, real_hits, dd_texts, per_image = _prompts(model, cfg, metrics, probe, progress)
    sweep = _decode_and_judge(model, probe, cfg, prompts, metrics, progress)
    head = cfg.guidance.index(cfg.headline) if cfg.headline in cfg.guidance else 0
    by_attr = {k: v[head] for k, v in sweep["accuracy_by_attribute"].items()}
    fd = sweep["frechet_distance"]
    return {
        "accuracy": {k: v["all"] for k, v in by_attr.items()},
        "accuracy_by_attribute": by_attr,
        "frechet_distance": {f: {k: v[head] for k, v in per.items()} for f, per in fd.items()},
        "real_image_probe_accuracy": summarise(real_hits)["all"],
        "distinct_text_fraction": len(set(dd_texts)) / len(dd_texts),
        "seed": cfg.seed, "n": cfg.n, "steps": cfg.steps, "guidance": cfg.guidance[head],
        "train_seed": model.cfg.train_seed,
        "seconds": round(time.time() - t0, 1),
        "examples": [{k: prompts[k][i] for k in cfg.sources} for i in range(min(5, cfg.n))],
        "denoising_loss": caption_losses(model.decoder, cfg.seed, min(cfg.n, 256), model),
        "sweep": {"guidance": list(cfg.guidance), "sources": list(cfg.sources), "features": list(cfg.features),
                  "accuracy": {k: [a["all"] for a in v] for k, v in sweep["accuracy_by_attribute"].items()}, **sweep},
        "best_guidance": best_guidance(fd, cfg.guidance),
        "prompt_seconds_per_image": per_image,
        "inversion": to_dict(cfg.invert) if "inverted" in cfg.sources else None,
    }


def best_guidance(fd: dict, guidance) -> dict:
    """Per feature space and source: the guidance with the lowest Frechet distance, and that distance."""
    out = {}
    for f, per in fd.items():
        out[f] = {}
        for k, values in per.items():
            scored = [(v, g) for v, g in zip(values, guidance) if v is not None]
            if scored:
                v, g = min(scored)
                out[f][k] = {"guidance": g, "frechet_distance": v}
    return out


def evaluate(model, probe, seed: int, n: int, steps: int = 25, guidance: float = 3.0, batch: int = 100,
             progress: bool = True) -> dict:
    """Probe accuracy (and probe-feature Frechet distance) of the four classic sources at one guidance."""
    cfg = EvalConfig(seed=seed, n=n, steps=steps, guidance=(guidance,), headline=guidance, batch=batch)
    return evaluate_sweep(model, probe, cfg, progress)


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
