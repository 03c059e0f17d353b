"""Resident memory while `dediffusion encode` streams 10,000 images into JSONL (shipped encoder).

    OMP_NUM_THREADS=1 python benchmarks/rss_encode.py --n 10000

Renders N scenes of the embedded world as 16 px PNGs into a temporary folder tree (100 per folder),
runs `python -m dediffusion.cli encode FOLDER --out captions.jsonl` as a child process and samples
its RSS (psutil) every 0.25 s together with the number of lines already written. With --compare SRC
it also runs another checkout's `encode` (e.g. the pre-streaming one, which loads every image before
encoding) on the same files listed one by one, printing to stdout. Writes benchmarks/rss_encode.{json,md}.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.path.dirname(HERE), "src")


def make_images(folder: str, n: int, seed: int = 999) -> list[str]:
    from PIL import Image

    from dediffusion.data.world.scenes import render, sample_scene

    paths = []
    for i in range(n):
        sub = os.path.join(folder, f"{i // 100:03d}")
        os.makedirs(sub, exist_ok=True)
        path = os.path.join(sub, f"{i:05d}.png")
        Image.fromarray(render(sample_scene(seed, i), 16)).save(path)
        paths.append(path)
    return paths


def _count_lines(path: str | None, stdout_file: str | None) -> int:
    target = path or stdout_file
    if not target or not os.path.exists(target):
        return 0
    with open(target, "rb") as f:
        return f.read().count(b"\n")


def sample_run(cmd: list[str], env: dict, out_path: str | None, stdout_file: str | None = None,
               every: float = 0.25) -> dict:
    """Run ``cmd``; sample (seconds, RSS MiB, lines written to ``out_path`` or stdout) until it exits."""
    import psutil

    with open(stdout_file or os.devnull, "wb") as so:
        t0 = time.time()
        proc = subprocess.Popen(cmd, env=env, stdout=so, stderr=subprocess.PIPE)
        ps, samples = psutil.Process(proc.pid), []
        while proc.poll() is None:
            try:
                rss = ps.memory_info().rss / 2**20
            except psutil.NoSuchProcess:
                break
            if rss > 0:  # a zombie (exited, not yet reaped) reports 0
                samples.append((round(time.time() - t0, 2), round(rss, 1), _count_lines(out_path, stdout_file)))
            time.sleep(every)
        _, err = proc.communicate()
    return {"exit_code": proc.returncode, "wall_s": round(time.time() - t0, 1), "samples": samples,
            "lines": _count_lines(out_path, stdout_file), "stderr_tail": err.decode(errors="replace")[-300:]}


def summarise(run: dict) -> dict:
    """RSS when the first lines are out (model loaded, images flowing) and at the last sample still encoding."""
    done = run["lines"]
    working = [s for s in run["samples"] if 0 < s[2] < done]
    if not working:
        return {}
    first, last = working[0], working[-1]
    return {"rss_start_mib": first[1], "rss_end_mib": last[1], "rss_max_mib": max(s[1] for s in working),
            "growth_mib": round(last[1] - first[1], 1), "lines_at_start": first[2], "lines_at_end": last[2]}


def curve_table(run: dict, rows: int = 15) -> list[str]:
    s = run["samples"]
    pick = [s[round(i * (len(s) - 1) / (rows - 1))] for i in range(rows)] if len(s) > rows else s
    return ["| seconds | RSS (MiB) | lines written |", "|---|---|---|"] + [f"| {t} | {r} | {n} |" for t, r, n in pick]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--compare", help="src folder of another checkout to run the same encode with")
    ap.add_argument("--out", default=os.path.join(HERE, "rss_encode"))
    ap.add_argument("--markdown-only", action="store_true", help="rewrite the .md from an existing .json")
    a = ap.parse_args()
    if a.markdown_only:
        with open(a.out + ".json") as f:
            write_markdown(json.load(f), a.out + ".md")
        return
    work = tempfile.mkdtemp()
    paths = make_images(os.path.join(work, "images"), a.n)
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1", "DEDIFFUSION_THREADS": "1"}
    jsonl = os.path.join(work, "captions.jsonl")
    cmd = [sys.executable, "-m", "dediffusion.cli", "encode", os.path.join(work, "images"), "--out", jsonl,
           "--batch-size", str(a.batch_size)]
    result = {"command": "OMP_NUM_THREADS=1 python " + " ".join(sys.argv), "n_images": a.n, "image_px": 16,
              "batch_size": a.batch_size, "model": "shipped encoder (default)", "encode_cmd": " ".join(cmd[1:]),
              "streaming": sample_run(cmd, env, jsonl)}
    result["streaming"].update(summarise(result["streaming"]))
    if a.compare:
        old = [sys.executable, "-m", "dediffusion.cli", "encode", *paths, "--format", "jsonl", "--batch-size",
               str(a.batch_size)]
        result["compare_src"] = a.compare
        result["compare"] = sample_run(old, {**env, "PYTHONPATH": a.compare}, None, os.path.join(work, "stdout"))
        result["compare"].update(summarise(result["compare"]))
    shutil.rmtree(work, ignore_errors=True)
    with open(a.out + ".json", "w") as f:
        json.dump(result, f, indent=2)
    write_markdown(result, a.out + ".md")
    print(open(a.out + ".md").read())


def write_markdown(r: dict, path: str) -> None:
    s = r["streaming"]
    lines = [f"# RSS while encoding {r['n_images']} images", "", f"Command: `{r['command']}`", "",
             f"Encode command measured: `{r['encode_cmd']}` ({r['model']}, {r['image_px']} px PNGs, "
             f"batch {r['batch_size']}); RSS of that process sampled every 0.25 s with psutil.", "",
             "Start: the first sample with lines written; end: the last sample before the final line.", "",
             "| run | exit | wall (s) | lines | start: lines, RSS (MiB) | end: lines, RSS (MiB) | max (MiB) | growth (MiB) |",
             "|---|---|---|---|---|---|---|---|"]
    runs = [("streaming (`encode DIR --out`)", s)]
    if "compare" in r:
        runs.append((f"load-all-first (`{r['compare_src']}`, files listed, stdout)", r["compare"]))
    for name, x in runs:
        lines.append(f"| {name} | {x['exit_code']} | {x['wall_s']} | {x['lines']} | {x.get('lines_at_start')}, "
                     f"{x.get('rss_start_mib')} | {x.get('lines_at_end')}, {x.get('rss_end_mib')} | "
                     f"{x.get('rss_max_mib')} | {x.get('growth_mib')} |")
    if "compare" in r and s.get("rss_max_mib") and r["compare"].get("rss_max_mib"):
        held = r["n_images"] * 3 * r["image_px"] ** 2 * 4 / 2**20
        lines += ["", f"Max RSS, load-all-first / streaming: {r['compare']['rss_max_mib'] / s['rss_max_mib']:.3f} "
                  f"({r['compare']['rss_max_mib'] - s['rss_max_mib']:+.1f} MiB; the {r['n_images']} decoded "
                  f"{r['image_px']} px float32 images alone are {held:.1f} MiB and grow linearly with N). "
                  "Both are flat while encoding because the old code had already loaded everything."]
    lines += ["", "## Curve (streaming run)", ""] + curve_table(s)
    if "compare" in r:
        lines += ["", "## Curve (load-all-first run)", ""] + curve_table(r["compare"])
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
