"""World scenes written as image files and WebDataset shards, for the data and bulk-encoding tests."""
import io
import tarfile

import numpy as np
from PIL import Image

from dediffusion.data.world.scenes import render, sample_scene


def png(arr: np.ndarray) -> bytes:
    """An (H,W,3) uint8 image as PNG bytes."""
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()


def scene_png(i: int, px: int = 16) -> bytes:
    return png(render(sample_scene(3, i), px))


def write_scenes(folder, n: int, per_folder: int = 4) -> list:
    """n scene PNGs in sub-folders of ``folder`` (the walk's order: sub-folders sorted, names sorted)."""
    paths = []
    for i in range(n):
        path = folder / f"d{i // per_folder}" / f"{i:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(scene_png(i))
        paths.append(path)
    return paths


def write_shard(path, members: list[tuple[str, bytes]], mode: str = "w"):
    with tarfile.open(path, mode) as tf:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def scene_members(n: int) -> list[tuple[str, bytes]]:
    return [m for i in range(n) for m in ((f"s{i:02d}.png", scene_png(i)), (f"s{i:02d}.txt", b"caption"))]
