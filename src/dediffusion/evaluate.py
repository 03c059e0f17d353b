"""``dediffusion eval``: reconstruction quality of each prompt source, judged by the probe.

For held-out scenes (``seed`` differs from the training seed), images are
decoded from (a) the De-Diffusion text of the scene's image, (b) the human-like
caption, (c) the full caption and (d) the empty prompt, with the same starting
noise for every source; the probe reads all attributes back from each.
"""
from __future__ import annotations

import time

import torch
from tqdm.auto import tqdm

from .generate import generate
from .world.data import images_tensor, scenes
from .world.probe import attribute_hits, concat_hits, summarise
from .world.scenes import full_caption, human_caption

SOURCES = {
    "dediffusion": None,  # filled from the encoder
    "human_caption": human_caption,
    "full_caption": full_caption,
    "empty": lambda scene: "",
}


def evaluate(model, probe, seed: int, n: int, steps: int = 25, guidance: float = 3.0, batch: int = 100,
             progress: bool = True) -> dict:
    """Probe accuracy per prompt source on ``n`` scenes of stream ``seed``; JSON-ready dict."""
    train_seed = model.cfg.train_seed
    hits: dict[str, list] = {k: [] for k in SOURCES}
    real_hits, texts, examples = [], [], []
    t0 = time.time()
    for start in tqdm(range(0, n, batch), disable=not progress, desc="eval"):
        chunk = scenes(seed, start, min(batch, n - start))
        images = images_tensor(chunk, model.decoder.resolution)
        real_hits.append(attribute_hits(probe, images, chunk))
        dd_texts = model.texts(images)
        texts += dd_texts
        prompts = {k: dd_texts if k == "dediffusion" else [f(s) for s in chunk] for k, f in SOURCES.items()}
        for name, p in prompts.items():
            out = generate(model.decoder, p, steps=steps, guidance=guidance, seed=seed * 100_003 + start)
            hits[name].append(attribute_hits(probe, out, chunk))
        if not examples:
            examples = [{"human_caption": prompts["human_caption"][i], "full_caption": prompts["full_caption"][i],
                         "dediffusion": dd_texts[i]} for i in range(min(5, len(chunk)))]
    per_source = {k: summarise(concat_hits(v)) for k, v in hits.items()}
    return {
        "accuracy": {k: v["all"] for k, v in per_source.items()},
        "accuracy_by_attribute": per_source,
        "real_image_probe_accuracy": summarise(concat_hits(real_hits))["all"],
        "distinct_text_fraction": len(set(texts)) / len(texts),
        "seed": seed, "n": n, "steps": steps, "guidance": guidance, "train_seed": train_seed,
        "seconds": round(time.time() - t0, 1),
        "examples": examples,
        "denoising_loss": caption_losses(model.decoder, seed, min(n, 256), model),
    }


@torch.no_grad()
def caption_losses(decoder, seed: int, n: int = 256, model=None, t_min: int = 200, t_max: int = 999) -> dict[str, float]:
    """Mean denoising loss given each prompt source, with fixed noise and noise levels.

    A decoder that learned the words for every attribute ranks them
    full < human-like < empty; with ``model`` the De-Diffusion text is ranked
    too. This check costs seconds (no sampling).
    """
    chunk = scenes(seed, 0, n)
    images = images_tensor(chunk, decoder.resolution)
    gen = torch.Generator().manual_seed(seed)
    t = torch.randint(t_min, t_max + 1, (n,), generator=gen)
    noise = torch.randn(images.shape, generator=gen)
    prompts = {k: [f(s) for s in chunk] for k, f in SOURCES.items() if f is not None}
    if model is not None:
        prompts["dediffusion"] = model.texts(images)
    return {k: float(decoder.loss(images, decoder.text_states(p), t, noise).mean()) for k, p in prompts.items()}
