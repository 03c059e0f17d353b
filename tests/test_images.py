"""The image loader on odd-but-valid and broken files, and the folder walker."""
import os

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from dediffusion.data.images import ImageInputError, display_path, load_image
from dediffusion.data.inputs import iter_inputs

from .image_corpus import IS_ROOT, build_corpus, encoded, exif_rotated_jpeg, noise_image, png_bytes


def _write(tmp_path, name, data):
    p = tmp_path / name
    p.write_bytes(data)
    return p


def test_exif_orientation_is_honoured(tmp_path):
    data, upright = exif_rotated_jpeg()  # wide image that views as tall, red on top
    x = load_image(_write(tmp_path, "r.jpg", data), 16)
    top, bottom = x[:, :6].mean((1, 2)), x[:, -6:].mean((1, 2))
    assert top[0] > 0.8 and top[2] < 0.2 and bottom[2] > 0.8 and bottom[0] < 0.2
    assert upright[0, 0].tolist() == [255, 0, 0]


def test_first_frame_of_an_animation(tmp_path):
    frames = [Image.new("RGB", (8, 8), c) for c in ((0, 255, 0), (255, 0, 0))]
    x = load_image(_write(tmp_path, "a.gif", encoded(frames[0], "GIF", save_all=True, append_images=frames[1:])), 8)
    assert torch.allclose(x.mean((1, 2)), torch.tensor([0.0, 1.0, 0.0]), atol=0.01)


def test_sixteen_bit_keeps_its_range_and_transparency_becomes_white(tmp_path):
    grey16 = Image.fromarray(np.full((4, 4), 32768, np.uint16))
    assert torch.allclose(load_image(_write(tmp_path, "g.png", encoded(grey16, "PNG")), 4), torch.tensor(0.5), atol=1e-3)
    clear = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    assert torch.equal(load_image(_write(tmp_path, "c.png", encoded(clear, "PNG")), 4), torch.ones(3, 4, 4))


def test_bomb_is_refused_from_the_header(tmp_path, monkeypatch):
    # 9000 x 9000 is under Pillow's own limit: our guard must refuse it before any decoding
    import dediffusion.data.images as images

    def no_decode(*a, **k):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(images, "_pixels", no_decode)
    with pytest.raises(ImageInputError, match="decompression bomb"):
        load_image(_write(tmp_path, "b.png", png_bytes(9000, 9000, 8, 2, None)), 16)
    with pytest.raises(ImageInputError, match="decompression bomb"):
        load_image(_write(tmp_path, "b2.png", png_bytes(50_000, 50_000, 8, 2, None)), 16)


@pytest.mark.skipif(IS_ROOT, reason="root reads files whatever their mode")
def test_permission_denied(tmp_path):
    p = _write(tmp_path, "p.png", encoded(noise_image(4, 4), "PNG"))
    p.chmod(0)
    with pytest.raises(ImageInputError, match="permission denied"):
        load_image(p, 8)


def test_permission_denied_is_one_line_even_as_root(tmp_path, monkeypatch):
    from PIL import Image as PILImage

    def deny(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(PILImage, "open", deny)
    with pytest.raises(ImageInputError, match=r"p.png: permission denied$"):
        load_image(_write(tmp_path, "p.png", b"x"), 8)


def test_display_path_is_one_printable_line():
    name = display_path(os.fsdecode(b"a\xff\nb\tc.png"))
    assert name.isprintable() and "\\xff" in name and "\n" not in name


def test_walker_yields_every_image_and_reports_loops(tmp_path):
    good, bad = build_corpus(tmp_path)
    items = list(iter_inputs([tmp_path]))
    keys = [it.key for it in items]
    assert len(keys) == len(set(keys))  # nothing twice, even with a link back to the top folder
    assert set(good) | set(bad) == set(keys)
    assert not any(k.endswith("readme.txt") for k in keys)
    loop = [it for it in items if it.key.endswith("back_to_top")]
    assert loop and "symbolic link loop" in loop[0].error


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=2000), prefix=st.sampled_from([b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0",
                                                               b"GIF89a", b"BM", b"RIFF"]))
def test_random_bytes_raise_only_image_input_error(tmp_path, data, prefix):
    p = _write(tmp_path, "x.img", prefix + data)
    try:
        x = load_image(p, 8)
    except ImageInputError as e:
        assert str(e).startswith(str(p)) and "\n" not in str(e)
    else:
        assert x.shape == (3, 8, 8) and torch.isfinite(x).all()


MODES = ["1", "L", "P", "RGB", "RGBA", "LA", "CMYK", "I;16", "I", "F", "YCbCr"]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(w=st.integers(1, 40), h=st.integers(1, 40), mode=st.sampled_from(MODES),
       fmt=st.sampled_from(["PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP"]), seed=st.integers(0, 2**16),
       cut=st.one_of(st.none(), st.floats(0.0, 1.0)))
def test_valid_and_cut_images_load_or_raise_image_input_error(tmp_path, w, h, mode, fmt, seed, cut):
    im = noise_image(w, h, seed).convert(mode if mode not in ("I;16", "I", "F") else "L")
    if mode in ("I;16", "I", "F"):
        im = Image.fromarray(np.asarray(im).astype({"I;16": np.uint16, "I": np.int32, "F": np.float32}[mode]) * 200)
    try:
        data = encoded(im, fmt)
    except (OSError, ValueError, KeyError):
        return  # this format cannot store this mode
    if cut is not None:
        data = data[: int(len(data) * cut)]
    try:
        x = load_image(_write(tmp_path, f"x.{fmt.lower()}", data), 12)
    except ImageInputError:
        assert cut is not None, f"a valid {mode} {fmt} {w}x{h} image was refused"
        return
    assert x.shape == (3, 12, 12) and x.dtype == torch.float32
    assert torch.isfinite(x).all() and x.min() >= 0 and x.max() <= 1


@pytest.mark.skipif(not IS_ROOT, reason="covered by test_permission_denied")
def test_permission_denied_for_a_real_unprivileged_reader():
    """As root, fork and become 'nobody': an unreadable file and an unreadable folder each give one error."""
    import shutil
    import tempfile

    top = tempfile.mkdtemp()
    os.chmod(top, 0o755)
    locked, closed = os.path.join(top, "locked.png"), os.path.join(top, "closed")
    with open(locked, "wb") as f:
        f.write(encoded(noise_image(4, 4), "PNG"))
    os.chmod(locked, 0)
    os.makedirs(closed)
    os.chmod(closed, 0)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: drop root, report one line per input, exit without running pytest's teardown
        code = 0
        try:
            os.setgid(65534)
            os.setuid(65534)
            lines = []
            for it in iter_inputs([top]):
                try:
                    lines.append(it.error or str(tuple(load_image(it.path, 4).shape)))
                except ImageInputError as e:
                    lines.append(str(e))
            os.write(write_end, "\n".join(lines).encode())
        except BaseException as e:  # noqa: BLE001 - reported to the parent
            os.write(write_end, f"child failed: {e!r}".encode())
            code = 1
        os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end) as f:
        out = f.read()
    os.waitpid(pid, 0)
    os.chmod(closed, 0o755)
    shutil.rmtree(top)
    assert sorted(out.splitlines()) == sorted([f"{closed}: permission denied", f"{locked}: permission denied"]), out
