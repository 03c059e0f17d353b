"""``make demo``: fresh scenes -> De-Diffusion text -> images, beside the human-like caption."""
from __future__ import annotations

import pathlib

from dediffusion.apps.reading import READER_FUSION, reader_texts
from dediffusion.model.autoencoder import load_model
from dediffusion.model.sampling import generate
from dediffusion.data.images import grid, save_image
from dediffusion.data.world.batches import images_tensor, scenes
from dediffusion.data.world.scenes import human_caption


def run_demo(out, n: int = 6, seed: int = 12345, steps: int = 25, guidance: float = 3.0) -> pathlib.Path:
    """Print text (and the LLM's reading of it) vs caption for ``n`` unseen scenes; write ``grid.png`` (original | from text | from caption)."""
    model = load_model()  # the shipped encoder
    batch = scenes(seed, 0, n)
    images = images_tensor(batch, model.decoder.resolution)
    texts = model.texts(images)
    readings = reader_texts(model, images)
    captions = [human_caption(s) for s in batch]
    from_text = generate(model.decoder, texts, steps=steps, guidance=guidance, seed=seed)
    from_caption = generate(model.decoder, captions, steps=steps, guidance=guidance, seed=seed)
    for i, (t, r, c) in enumerate(zip(texts, readings, captions)):
        print(f"[{i}] caption        : {c}\n    De-Diffusion   : {t}\n    as an LLM reads: {r}")
    out = pathlib.Path(out)
    path = out / "grid.png"
    rows = [[images[i], from_text[i], from_caption[i]] for i in range(n)]
    save_image(grid(rows), path, scale=8)
    print(f"wrote {path} (columns: original | from De-Diffusion text | from human-like caption); the decoder reads "
          f"the De-Diffusion text, ask/chat sentences written from the same logits (--fusion {READER_FUSION}; "
          "dediffusion.apps.reading)")
    return path

