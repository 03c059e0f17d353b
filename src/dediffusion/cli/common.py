"""What the subcommands share: common flags, one-line errors, threads."""
from __future__ import annotations

import os
import sys

import torch
from tqdm.auto import tqdm

from dediffusion.model.sampling import DEFAULT_GUIDANCE, DEFAULT_STEPS


def threads() -> None:
    n = os.environ.get("DEDIFFUSION_THREADS")
    if n:
        torch.set_num_threads(int(n))


def err(msg: str) -> None:
    print(f"error: {msg}", file=sys.stderr)


def backbone_flag(p) -> None:
    p.add_argument("--backbone", metavar="hf:PATH_OR_ID", help="where the encoder's hf: backbone is, e.g. your copy "
                   "of it (default: as recorded, if a hub id or inside the encoder folder)")


def report_bad(key: str, message: str) -> None:
    """One line per bad input, printed above a running progress bar."""
    tqdm.write(f"error: {message}", file=sys.stderr)


def sampling_flags(p) -> None:
    p.add_argument("--cfg", type=float, default=DEFAULT_GUIDANCE, help="classifier-free guidance scale")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="DDIM sampling steps")
    p.add_argument("--seed", type=int, default=0)


def encoder_flags(p, decoder_default: str = "the one the encoder was trained against") -> None:
    """--model, --decoder, --tokens and --backbone: which encoder, read how."""
    p.add_argument("--model", help="encoder checkpoint folder (default: shipped)")
    decoder_flag(p, decoder_default)
    p.add_argument("--tokens", type=int, metavar="K", help="emit the first K tokens of each text (default: all; "
                   "the shipped encoder is trained with TailDrop, so any K is a usable text)")
    p.add_argument("--adaptive-length", action="store_true", help="let the frozen decoder cut each text to the "
                   "prefix (4, 8, 16, 24, ... up to K tokens) under which it denoises the image best: fewer phantom "
                   "objects in sparse images; costs 16 decoder passes per candidate length")
    backbone_flag(p)


def decoder_flag(p, default: str) -> None:
    p.add_argument("--decoder", metavar="PATH_OR_ID", help="built-in decoder folder, or Stable Diffusion as a diffusers "
                   f"folder or hub id (default: {default})")
