"""A folder of messy image inputs: the bad ones (each with the reason its error must give) and good odd ones."""
from __future__ import annotations

import io
import os
import struct
import zlib

import numpy as np
from PIL import Image

from dediffusion.data.world.batches import scenes
from dediffusion.data.world.scenes import render

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0  # root reads files whatever their mode


def png_bytes(width: int, height: int, bit_depth: int, colour_type: int, rows: bytes | None) -> bytes:
    """A PNG written by hand (so headers can lie); ``rows`` is the raw scanline data (filter bytes included)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    idat = zlib.compress(rows if rows is not None else b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def rgb16_png(arr: np.ndarray) -> bytes:
    """(H, W, 3) uint16 -> 16-bit RGB PNG (Pillow cannot write one)."""
    h, w, _ = arr.shape
    rows = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h))
    return png_bytes(w, h, 16, 2, rows)


def noise_image(w: int, h: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


def encoded(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def exif_rotated_jpeg() -> tuple[bytes, np.ndarray]:
    """A wide JPEG tagged orientation 6 (rotate 90 clockwise to view) and the upright pixels it should give."""
    arr = np.zeros((8, 16, 3), np.uint8)
    arr[:, :8] = (255, 0, 0)  # left half red, right half blue
    arr[:, 8:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encoded(Image.fromarray(arr), "JPEG", quality=100, exif=exif.tobytes())
    return data, np.rot90(arr, k=-1)  # (16, 8, 3): red on top


def good_files(folder) -> dict[str, bytes]:
    """Name -> bytes of images that must encode."""
    files = {f"scene{i}.png": encoded(Image.fromarray(render(s, 16)), "PNG") for i, s in enumerate(scenes(5, 0, 3))}
    grey16 = Image.fromarray((np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16))
    files["grey16.png"] = encoded(grey16, "PNG")
    files["rgb16.png"] = rgb16_png((np.random.default_rng(1).integers(0, 65536, (12, 20, 3))).astype(np.uint16))
    files["cmyk.jpg"] = encoded(noise_image(24, 24).convert("CMYK"), "JPEG")
    pal = noise_image(16, 16).convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    files["palette_transparent.png"] = encoded(pal, "PNG", transparency=0)
    files["grey.jpg"] = encoded(noise_image(20, 20).convert("L"), "JPEG")
    files["bilevel.png"] = encoded(noise_image(20, 20).convert("1"), "PNG")
    rgba = noise_image(16, 16).convert("RGBA")
    rgba.putalpha(Image.fromarray(np.tile(np.arange(16, dtype=np.uint8) * 16, (16, 1))))
    files["rgba.png"] = encoded(rgba, "PNG")
    frames = [Image.new("RGB", (16, 16), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    files["animated.gif"] = encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    files["exif_rotated.jpg"] = exif_rotated_jpeg()[0]
    files["one_pixel.png"] = encoded(Image.new("RGB", (1, 1), (10, 200, 30)), "PNG")
    files["tall.png"] = encoded(noise_image(1, 3000), "PNG")
    files["wide.png"] = encoded(noise_image(3000, 1), "PNG")
    files["uppercase.JPEG"] = encoded(noise_image(16, 16), "JPEG")
    return files


def build_corpus(folder) -> tuple[list[str], dict[str, str]]:
    """Write the corpus into ``folder`` (nested). Returns (good paths, {bad path: expected reason})."""
    folder = os.fspath(folder)
    sub = os.path.join(folder, "nested", "deeper")
    os.makedirs(sub)
    good = []
    for i, (name, data) in enumerate(sorted(good_files(folder).items())):
        path = os.path.join(sub if i % 3 == 0 else folder, name)
        with open(path, "wb") as f:
            f.write(data)
        good.append(path)
    bad: dict[str, str] = {}

    def put(name: str, data: bytes, reason: str, where: str = folder) -> str:
        path = os.path.join(where, name)
        with open(path, "wb") as f:
            f.write(data)
        bad[path] = reason
        return path

    jpeg = encoded(noise_image(64, 64), "JPEG", quality=95)
    png = encoded(noise_image(64, 64), "PNG")
    put("empty.png", b"", "empty file")
    put("truncated.jpg", jpeg[: len(jpeg) // 2], "truncated")
    put("truncated.png", png[: len(png) // 2], "truncated")
    put("notes.jpg", b"this is a text file, not a photo\n" * 4, "not an image")
    put("bomb.png", png_bytes(50_000, 50_000, 8, 2, None), "decompression bomb", where=sub)
    put("garbage.gif", bytes(np.random.default_rng(3).integers(0, 256, 300, dtype=np.uint8)), "not an image")
    locked = os.path.join(folder, "locked.png")
    with open(locked, "wb") as f:
        f.write(encoded(noise_image(8, 8), "PNG"))
    os.chmod(locked, 0)
    (good.append(locked) if IS_ROOT else bad.__setitem__(locked, "permission denied"))
    os.symlink(os.path.join(folder, "gone.png"), os.path.join(folder, "broken_link.png"))
    bad[os.path.join(folder, "broken_link.png")] = "broken symbolic link"
    os.symlink("self_loop.png", os.path.join(folder, "self_loop.png"))
    bad[os.path.join(folder, "self_loop.png")] = "symbolic link loop"
    os.symlink(folder, os.path.join(sub, "back_to_top"))  # a folder link to an ancestor
    bad[os.path.join(sub, "back_to_top")] = "symbolic link loop"
    latin1 = os.path.join(os.fsencode(folder), b"caf\xe9.png")  # not valid UTF-8
    with open(latin1, "wb") as f:
        f.write(encoded(noise_image(8, 8), "PNG"))
    bad[os.fsdecode(latin1)] = "not valid UTF-8"
    os.mkfifo(os.path.join(folder, "pipe.png"))
    bad[os.path.join(folder, "pipe.png")] = "not a regular file"
    with open(os.path.join(folder, "readme.txt"), "w") as f:  # not an image extension: not an input at all
        f.write("ignored")
    return good, bad
