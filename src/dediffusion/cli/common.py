"""What the subcommands share: loading an encoder, common flags, one-line errors."""
from __future__ import annotations

import os
import sys

from dediffusion.model.sampling import DEFAULT_GUIDANCE, DEFAULT_STEPS


def threads() -> None:
    import torch

    n = os.environ.get("DEDIFFUSION_THREADS")
    if n:
        torch.set_num_threads(int(n))


def err(msg: str) -> None:
    print(f"error: {msg}", file=sys.stderr)


def load_model(path, decoder=None, tokens: int | None = None, backbone: str | None = None):
    """An encoder checkpoint; ``tokens``: emit only its first K tokens (``--tokens``, TailDrop-trained encoders);
    ``backbone``: where its ``hf:`` backbone is (``--backbone``)."""
    from dediffusion.model.autoencoder import load_dediffusion
    from dediffusion.pretrained import resolve

    model = load_dediffusion(resolve(path, "encoder"), decoder_folder=decoder, backbone=backbone)
    return model.set_inference(inference_tokens=tokens) if tokens else model


def backbone_flag(p) -> None:
    p.add_argument("--backbone", metavar="hf:PATH_OR_ID", help="where the encoder's hf: backbone is, e.g. your copy "
                   "of it (default: as recorded, if a hub id or inside the encoder folder)")


def tokens_flag(p) -> None:
    p.add_argument("--tokens", type=int, metavar="K", help="emit the first K tokens of each text (default: all; "
                   "the shipped encoder is trained with TailDrop, so any K is a usable text)")


def report_bad(key: str, message: str) -> None:
    """One line per bad input, printed above a running progress bar."""
    from tqdm.auto import tqdm

    tqdm.write(f"error: {message}", file=sys.stderr)


def sampling_flags(p) -> None:
    p.add_argument("--cfg", type=float, default=DEFAULT_GUIDANCE, help="classifier-free guidance scale")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="DDIM sampling steps")
    p.add_argument("--seed", type=int, default=0)


def decoder_flag(p, default: str) -> None:
    p.add_argument("--decoder", metavar="PATH_OR_ID", help="built-in decoder folder, or Stable Diffusion as a diffusers "
                   f"folder or hub id (default: {default})")
