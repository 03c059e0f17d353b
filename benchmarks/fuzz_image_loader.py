"""Fuzz `dediffusion.data.images.load_image`: any bytes must give a tensor or an ImageInputError, nothing else.

    OMP_NUM_THREADS=1 python benchmarks/fuzz_image_loader.py --seconds 300

Uses atheris (coverage-guided, libFuzzer; `pip install atheris==3.0.0`) when it imports, else a
seeded random-mutation loop. Seeds are small valid images of every format and mode the
loader supports. Writes benchmarks/fuzz_image_loader.{json,md}; a finding is any exception other
than ImageInputError, or an input that takes longer than --slow seconds.
"""
from __future__ import annotations

import argparse
import base64
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
MAX_LEN = 8192


def seed_inputs() -> dict[str, bytes]:
    """Small valid images: every format/mode the loader meets in practice."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (12, 10, 3), dtype=np.uint8))

    def enc(im, fmt, **kw):
        buf = io.BytesIO()
        im.save(buf, fmt, **kw)
        return buf.getvalue()

    exif = Image.Exif()
    exif[0x0112] = 6
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 0, 255))]
    return {
        "rgb.png": enc(rgb, "PNG"), "rgba.png": enc(rgb.convert("RGBA"), "PNG"),
        "grey16.png": enc(Image.fromarray(rng.integers(0, 65535, (9, 7), dtype=np.uint16)), "PNG"),
        "palette.png": enc(rgb.convert("P"), "PNG", transparency=0), "rgb.jpg": enc(rgb, "JPEG"),
        "cmyk.jpg": enc(rgb.convert("CMYK"), "JPEG"), "exif.jpg": enc(rgb, "JPEG", exif=exif.tobytes()),
        "progressive.jpg": enc(rgb, "JPEG", progressive=True), "anim.gif": enc(frames[0], "GIF", save_all=True,
                                                                                append_images=frames[1:]),
        "rgb.bmp": enc(rgb, "BMP"), "rgb.tif": enc(rgb, "TIFF"), "rgb.webp": enc(rgb, "WEBP"),
        "grey.pgm": enc(rgb.convert("L"), "PPM"), "rgb.ico": enc(rgb, "ICO"), "rgb.tga": enc(rgb, "TGA"),
    }


class Recorder:
    """Runs one input through the loader and keeps counts, findings and the slowest input."""

    def __init__(self, stats_path: str, slow: float):
        from dediffusion.data.images import ImageInputError, load_image

        self.load, self.expected = load_image, ImageInputError
        self.stats_path, self.slow = stats_path, slow
        self.path = os.path.join(os.path.dirname(stats_path), "input.img")  # removed with the work folder
        self.stats = {"runs": 0, "ok": 0, "image_input_error": 0, "findings": {}, "slowest_s": 0.0, "reasons": {}}
        self.t0 = time.time()

    def __call__(self, data: bytes) -> None:
        with open(self.path, "wb") as f:
            f.write(data)
        start = time.perf_counter()
        try:
            x = self.load(self.path, 16)
            assert x.shape == (3, 16, 16) and bool(x.isfinite().all()) and 0 <= float(x.min()) <= float(x.max()) <= 1
            self.stats["ok"] += 1
        except self.expected as e:
            self.stats["image_input_error"] += 1
            reason = re.sub(r"\d+", "N", str(e).split(": ", 1)[-1].split(" (")[0][:60])  # group by kind
            self.stats["reasons"][reason] = self.stats["reasons"].get(reason, 0) + 1
        except Exception as e:  # a finding: anything else escaping the loader
            self._finding(f"{type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''}", data,
                          traceback.format_exc(limit=4))
        took = time.perf_counter() - start
        self.stats["slowest_s"] = max(self.stats["slowest_s"], took)
        if took > self.slow:
            self._finding(f"slow input: {took:.2f} s", data, "")
        self.stats["runs"] += 1
        if self.stats["runs"] % 200 == 0:
            self.save()

    def _finding(self, key: str, data: bytes, trace: str) -> None:
        entry = self.stats["findings"].setdefault(key, {"count": 0, "example_b64": base64.b64encode(data).decode(),
                                                        "trace": trace})
        entry["count"] += 1
        self.save()

    def save(self) -> None:
        self.stats["seconds"] = round(time.time() - self.t0, 1)
        with open(self.stats_path + ".tmp", "w") as f:
            json.dump(self.stats, f)
        os.replace(self.stats_path + ".tmp", self.stats_path)


def run_atheris(corpus: str, stats: str, seconds: int, slow: float) -> None:
    import atheris

    with atheris.instrument_imports():
        from PIL import Image

        Image.init()  # import every format plugin inside the instrumentation
        import dediffusion.data.images  # noqa: F401
    rec = Recorder(stats, slow)
    atheris.Setup([sys.argv[0], corpus, f"-max_total_time={seconds}", f"-max_len={MAX_LEN}", "-rss_limit_mb=4096",
                   "-print_final_stats=1"], rec)
    atheris.Fuzz()


def run_mutations(seeds: dict[str, bytes], stats: str, seconds: int, slow: float) -> None:
    """Fallback: random byte-level mutations of the seeds (flip, insert, delete, splice, truncate)."""
    import random

    rec, rng, pool = Recorder(stats, slow), random.Random(0), list(seeds.values())
    end = time.time() + seconds
    while time.time() < end:
        data = bytearray(rng.choice(pool))
        for _ in range(rng.randint(1, 8)):
            op, i = rng.randrange(5), rng.randrange(max(1, len(data)))
            if op == 0 and data:
                data[i] = rng.randrange(256)
            elif op == 1:
                data[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
            elif op == 2:
                del data[i:i + rng.randint(1, 16)]
            elif op == 3:
                other = rng.choice(pool)
                data[i:] = other[rng.randrange(len(other)):]
            else:
                del data[i:]
        rec(bytes(data[:MAX_LEN]))
    rec.save()


def report(stats: dict, engine: str, command: str, out: str) -> None:
    top = dict(sorted(stats["reasons"].items(), key=lambda kv: -kv[1])[:30])
    result = {"command": command, "engine": engine, "python": sys.version.split()[0], **stats, "reasons": top,
              "distinct_reasons": len(stats["reasons"]), "findings_count": len(stats["findings"])}
    with open(out + ".json", "w") as f:
        json.dump(result, f, indent=2, sort_keys=True)
    rate = stats["runs"] / max(stats.get("seconds", 1), 1e-9)
    lines = [f"# Fuzzing the image loader ({engine})", "", f"Command: `{command}`", "",
             "| runs | seconds | inputs/s | loaded | ImageInputError | other exceptions / slow inputs | slowest (s) |",
             "|---|---|---|---|---|---|---|",
             f"| {stats['runs']} | {stats.get('seconds')} | {rate:.0f} | {stats['ok']} | {stats['image_input_error']} | "
             f"{len(stats['findings'])} | {stats['slowest_s']:.3f} |", "", "## Findings", ""]
    lines += [f"- `{k}` x{v['count']}" for k, v in stats["findings"].items()] or ["None."]
    lines += ["", "## Error reasons seen (top 12)", ""]
    top = sorted(stats["reasons"].items(), key=lambda kv: -kv[1])[:12]
    lines += [f"- {k}: {v}" for k, v in top]
    with open(out + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=120)
    ap.add_argument("--slow", type=float, default=2.0, help="an input slower than this is a finding")
    ap.add_argument("--engine", choices=("auto", "atheris", "mutate"), default="auto")
    ap.add_argument("--out", default=os.path.join(HERE, "fuzz_image_loader"))
    ap.add_argument("--child", nargs=2, metavar=("CORPUS", "STATS"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:  # the atheris process: libFuzzer exits the interpreter itself when time is up
        run_atheris(a.child[0], a.child[1], a.seconds, a.slow)
        return
    engine = a.engine
    if engine == "auto":
        try:
            import atheris  # noqa: F401
            engine = "atheris"
        except ImportError:
            engine = "mutate"
    seeds = seed_inputs()
    work = tempfile.mkdtemp()
    stats = os.path.join(work, "stats.json")
    if engine == "atheris":
        corpus = os.path.join(work, "corpus")
        os.makedirs(corpus)
        for name, data in seeds.items():
            with open(os.path.join(corpus, name), "wb") as f:
                f.write(data)
        subprocess.run([sys.executable, __file__, "--child", corpus, stats, "--seconds", str(a.seconds),
                        "--slow", str(a.slow)], check=False)
        from importlib.metadata import version

        engine = f"atheris {version('atheris')} (coverage-guided, libFuzzer)"
    else:
        run_mutations(seeds, stats, a.seconds, a.slow)
        engine = "random byte mutations of valid seeds (no atheris)"
    with open(stats) as f:
        stats_data = json.load(f)
    shutil.rmtree(work, ignore_errors=True)
    report(stats_data, engine, "OMP_NUM_THREADS=1 python " + " ".join(sys.argv), a.out)
    print(open(a.out + ".md").read())


if __name__ == "__main__":
    main()
