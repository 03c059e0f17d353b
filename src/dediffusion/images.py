"""Reading and writing images for the commands: one clear error per bad file, never a crash."""
from __future__ import annotations

import pathlib

import numpy as np
import torch

MAX_PIXELS = 64_000_000  # decompression-bomb guard


class ImageInputError(Exception):
    """An input image could not be used; the message names the file and the reason."""


def load_image(path, resolution: int) -> torch.Tensor:
    """File -> (3, resolution, resolution) float32 in [0, 1].

    EXIF orientation is honoured, transparency is composited on white, any
    mode is converted to RGB, and the image is resized (area-averaged) to the
    square resolution the decoder works at.
    """
    from PIL import Image, ImageOps

    path = pathlib.Path(path)
    if not path.exists():
        raise ImageInputError(f"{path}: no such file")
    if path.is_dir():
        raise ImageInputError(f"{path}: is a directory")
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    try:
        with Image.open(path) as im:
            if im.width * im.height > MAX_PIXELS:
                raise ImageInputError(f"{path}: {im.width}x{im.height} pixels exceeds the {MAX_PIXELS} limit")
            im.seek(0)  # first frame of animations
            im = ImageOps.exif_transpose(im)
            if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
                rgba = im.convert("RGBA")
                im = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
            im = im.convert("RGB").resize((resolution, resolution), Image.Resampling.BOX)
            arr = np.asarray(im, dtype=np.float32) / 255.0
    except ImageInputError:
        raise
    except PermissionError:
        raise ImageInputError(f"{path}: permission denied") from None
    except Image.DecompressionBombError as e:
        raise ImageInputError(f"{path}: refused as a decompression bomb ({e})") from None
    except Exception as e:  # PIL raises many types for unreadable files
        reason = "not an image or unsupported format" if "cannot identify" in str(e) else str(e) or type(e).__name__
        raise ImageInputError(f"{path}: {reason}") from None
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous()  # (3,H,W)


def save_image(images: torch.Tensor, path, scale: int = 1) -> None:
    """(3,H,W) or (H,W,3)-uint8 array -> PNG, optionally upscaled (nearest) for viewing."""
    from PIL import Image

    if torch.is_tensor(images):
        images = (images.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    im = Image.fromarray(images)
    if scale != 1:
        im = im.resize((im.width * scale, im.height * scale), Image.Resampling.NEAREST)
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path)


def grid(rows: list[list[torch.Tensor]], pad: int = 1) -> torch.Tensor:
    """Rows of equal-size (3,H,W) images -> one (3, H', W') image with white gutters."""
    h, w = rows[0][0].shape[-2:]
    ncol = max(len(r) for r in rows)
    out = torch.ones(3, len(rows) * (h + pad) + pad, ncol * (w + pad) + pad)
    for i, row in enumerate(rows):
        for j, img in enumerate(row):
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            out[:, y : y + h, x : x + w] = img
    return out
