"""Reading and writing images for the commands: one clear error per bad file, never a crash."""
from __future__ import annotations

import errno
import io
import os
import pathlib
import stat
import warnings

import numpy as np
import torch
from PIL import Image, ImageOps

MAX_PIXELS = 64_000_000  # decompression-bomb guard: checked on the header, before any pixel is decoded
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
_WIDE_MODES = {"I;16": 65535.0, "I;16B": 65535.0, "I;16L": 65535.0, "I;16N": 65535.0, "I": 65535.0, "F": 1.0}


class ImageInputError(Exception):
    """An input image could not be used; the message names the file and the reason."""


def display_path(path) -> str:
    """A printable one-line form of any path: undecodable bytes and control characters escaped."""
    text = os.fsencode(os.fspath(path)).decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in text)


def check_readable(path) -> None:
    """Raise ImageInputError unless ``path`` names a non-empty regular file (links followed)."""
    name = display_path(path)
    try:
        os.fsencode(os.fspath(path)).decode("utf-8")
    except UnicodeDecodeError:
        raise ImageInputError(f"{name}: file name is not valid UTF-8 (rename the file)") from None
    try:
        st = os.stat(path)
    except OSError as e:
        raise ImageInputError(f"{name}: {_os_reason(path, e)}") from None
    if stat.S_ISDIR(st.st_mode):
        raise ImageInputError(f"{name}: is a directory")
    if not stat.S_ISREG(st.st_mode):  # FIFOs and devices would block or never end
        raise ImageInputError(f"{name}: not a regular file")
    if st.st_size == 0:
        raise ImageInputError(f"{name}: empty file (0 bytes)")


def _os_reason(path, e: OSError) -> str:
    if e.errno == errno.ELOOP:
        return "symbolic link loop"
    if e.errno == errno.ENOENT:
        return "broken symbolic link" if os.path.islink(path) else "no such file"
    if e.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    return (e.strerror or type(e).__name__).lower()


def load_image(path, resolution: int) -> torch.Tensor:
    """File -> (3, resolution, resolution) float32 in [0, 1]; anything unusable raises ImageInputError.

    The pixel count is checked on the header before decoding (decompression
    bombs); the first frame of animations is used; EXIF orientation is
    honoured; 16-bit and float images keep their range; transparency is
    composited on white; any mode is converted to RGB; the image is resized
    (area-averaged) to the square resolution the decoder works at.
    """
    check_readable(path)
    return _decode(path, display_path(path), resolution, path)


def load_image_bytes(data: bytes, name: str, resolution: int) -> torch.Tensor:
    """Encoded image bytes (e.g. a tar member) -> like ``load_image``; ``name`` names it in errors."""
    if not data:
        raise ImageInputError(f"{name}: empty file (0 bytes)")
    return _decode(io.BytesIO(data), name, resolution, None)


def _decode(source, name: str, resolution: int, path) -> torch.Tensor:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # bomb and EXIF warnings: the checks below decide
            with Image.open(source) as im:
                if im.width * im.height > MAX_PIXELS:
                    raise ImageInputError(f"{name}: {im.width}x{im.height} pixels exceeds the limit of "
                                          f"{MAX_PIXELS} (decompression bomb guard)")
                return pil_image_tensor(im, resolution)
    except ImageInputError:
        raise
    except Image.DecompressionBombError as e:
        raise ImageInputError(f"{name}: refused as a decompression bomb ({e})") from None
    except OSError as e:
        if path is not None and (isinstance(e, (PermissionError, FileNotFoundError)) or e.errno == errno.ELOOP):
            raise ImageInputError(f"{name}: {_os_reason(path, e)}") from None
        raise ImageInputError(f"{name}: {_reason(e)}") from None
    except Exception as e:  # PIL raises many types (SyntaxError, ValueError, ...) for corrupt files
        raise ImageInputError(f"{name}: {_reason(e)}") from None


def _reason(e: Exception) -> str:
    text = str(e)
    if "cannot identify image file" in text:
        return "not an image or unsupported format"
    if "truncated" in text.lower() or "broken data stream" in text:
        return f"truncated or corrupt image data ({text.splitlines()[0] if text else type(e).__name__})"
    return " ".join(text.split()) or type(e).__name__


def pil_image_tensor(im, resolution: int) -> torch.Tensor:
    """An opened PIL image -> (3, resolution, resolution) float32 in [0, 1], converted as files are."""
    return torch.from_numpy(_pixels(im, resolution)).permute(2, 0, 1).contiguous()


def _pixels(im, resolution: int) -> np.ndarray:
    """An opened PIL image -> (resolution, resolution, 3) float32 in [0, 1]."""
    im.seek(0)  # first frame of animations
    if im.format == "JPEG":
        im.draft("RGB", (resolution, resolution))  # decode large JPEGs at a reduced scale
    im = ImageOps.exif_transpose(im)
    size = (resolution, resolution)
    if im.mode in _WIDE_MODES:  # 16-bit / 32-bit greyscale: scale the full range, not clip at 255
        grey = np.asarray(im, dtype=np.float32) / _WIDE_MODES[im.mode]
        grey = np.clip(np.nan_to_num(grey, nan=0.0), 0.0, 1.0)
        grey = np.asarray(Image.fromarray(grey).resize(size, Image.Resampling.BOX), dtype=np.float32)
        return np.repeat(np.clip(grey, 0.0, 1.0)[:, :, None], 3, axis=2)
    if im.mode in _ALPHA_MODES or "transparency" in im.info:
        rgba = im.convert("RGBA")
        im = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    im = im.convert("RGB").resize(size, Image.Resampling.BOX)
    return np.asarray(im, dtype=np.float32) / 255.0


def to_pil(image, scale: int = 1):
    """(3,H,W) tensor in [0,1] or (H,W,3)-uint8 array -> PIL image, optionally upscaled (nearest) for viewing."""
    if torch.is_tensor(image):
        image = (image.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    im = Image.fromarray(image)
    return im.resize((im.width * scale, im.height * scale), Image.Resampling.NEAREST) if scale != 1 else im


def save_image(images: torch.Tensor, path, scale: int = 1) -> None:
    """(3,H,W) or (H,W,3)-uint8 array -> PNG, optionally upscaled (nearest) for viewing."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    to_pil(images, scale).save(path)


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
