"""Load and fault test of `dediffusion serve` on loopback (shipped models; issue 14, item 5).

    OMP_NUM_THREADS=1 python benchmarks/serve_load.py --clients 64 --seconds 10 --rounds 3

Starts two servers as child processes, micro-batched (--max-batch 32) and one request at a time
(--max-batch 1), and measures, in interleaved rounds of S seconds: N concurrent keep-alive clients on
each, and one client sending one request at a time; every request one 16 px world scene uploaded as
multipart to POST /encode. Reports images/s, p50/p99 latency, errors (anything but a 200 with a text; a
text that differs between rows for the same image) and the server's RSS per round (psutil). images/s is
wall-clock: on a shared machine it follows the CPU share the server got, so images per server CPU-second
is reported beside it. During the micro-batched rounds a fault client keeps opening connections that
hang up mid-upload or before their answer. Then the bad-image corpus of tests/image_corpus.py goes over
HTTP (each bad file alone: a 4xx naming it; all in one request: every bad part named, every good one
answered), and the server gets SIGTERM with decodes in flight (they must finish, then it exits).
Writes benchmarks/serve_load/results.{json,md}.
"""
from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BOUNDARY = "dediffusionload"


@dataclass(frozen=True)
class LoadConfig:
    clients: int = 16
    seconds: float = 15.0  # per round
    rounds: int = 3
    warmup_s: float = 3.0
    max_batch: int = 32
    max_wait_ms: float = 5.0
    images: int = 64  # distinct scenes the clients cycle through
    fault_interval_s: float = 0.25
    threads: int = 1  # torch threads of each server (1: the machine is shared)
    model: str | None = None
    decoder: str | None = None


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    texts: dict[int, str] = field(default_factory=dict)
    faults: int = 0


# --- the server ------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(cfg: LoadConfig, max_batch: int) -> tuple[subprocess.Popen, int]:
    port = free_port()
    cmd = [sys.executable, "-m", "dediffusion.cli", "serve", "--port", str(port), "--max-batch", str(max_batch),
           "--max-wait-ms", str(cfg.max_wait_ms), "--log-level", "warning", "--graceful-timeout", "600"]
    cmd += (["--model", cfg.model] if cfg.model else []) + (["--decoder", cfg.decoder] if cfg.decoder else [])
    env = {**os.environ, "PYTHONPATH": os.path.join(ROOT, "src"), "OMP_NUM_THREADS": str(cfg.threads),
           "DEDIFFUSION_THREADS": str(cfg.threads)}
    return subprocess.Popen(cmd, env=env), port


def wait_ready(proc: subprocess.Popen, port: int, timeout_s: float = 1800) -> None:
    """Until /health answers (a busy machine can take minutes to import torch and load the models)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            status, _ = asyncio.run(get(port, "/health"))
            if status == 200:
                return
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"server did not start (exit {proc.poll()})")
        time.sleep(0.2)


def rss_mb(pid: int) -> float:
    import psutil  # the bench extra

    return round(psutil.Process(pid).memory_info().rss / 2**20, 1)


def cpu_s(pid: int) -> float:
    """CPU seconds the server process has used (all threads): what it got from a shared machine."""
    import psutil

    return sum(psutil.Process(pid).cpu_times()[:2])  # user + system


# --- a small HTTP/1.1 client (keep-alive, nothing between it and the socket) ----------------------
def multipart(name: str, data: bytes) -> bytes:
    return (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{name}\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + data + f"\r\n--{BOUNDARY}--\r\n".encode()


def request(path: str, body: bytes, ctype: str = f"multipart/form-data; boundary={BOUNDARY}") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


async def read_response(reader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return int(lines[0].split()[1]), body


async def get(port: int, path: str) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    try:
        return await read_response(reader)
    finally:
        writer.close()


async def post(port: int, path: str, body: bytes, ctype: str | None = None) -> tuple[int, dict]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request(path, body, *([ctype] if ctype else [])))
    try:
        status, data = await read_response(reader)
        return status, json.loads(data)
    finally:
        writer.close()


def scene_pngs(n: int, seed: int = 4242) -> list[bytes]:
    from PIL import Image

    from dediffusion.data.world.scenes import render, sample_scene

    out = []
    for i in range(n):
        buf = io.BytesIO()
        Image.fromarray(render(sample_scene(seed, i))).save(buf, "PNG")
        out.append(buf.getvalue())
    return out


async def client(port: int, bodies: list[bytes], start: int, stop_at: float, tally: Tally) -> None:
    """One keep-alive connection sending one-image /encode requests until ``stop_at``."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    i = start
    try:
        while time.monotonic() < stop_at:
            k = i % len(bodies)
            t0 = time.perf_counter()
            writer.write(bodies[k])
            try:
                status, data = await read_response(reader)
            except (OSError, asyncio.IncompleteReadError) as e:
                tally.errors.append(f"connection: {type(e).__name__}")
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                continue
            tally.latencies.append(time.perf_counter() - t0)
            text = json.loads(data)["results"][0].get("text") if status == 200 else None
            if text is None:
                tally.errors.append(f"HTTP {status}: {data[:200]!r}")
            elif tally.texts.setdefault(k, text) != text:
                tally.errors.append(f"image {k}: text changed between requests")
            i += 1
    finally:
        writer.close()


async def fault_client(port: int, body: bytes, stop_at: float, interval: float, tally: Tally) -> None:
    """Connections that hang up mid-upload, and ones that leave before their answer."""
    while time.monotonic() < stop_at:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        whole = request("/encode", body)
        writer.write(whole if tally.faults % 2 else whole[: len(whole) - len(body) // 2])
        await writer.drain()
        writer.transport.abort()  # RST, no goodbye
        tally.faults += 1
        await asyncio.sleep(interval)


async def load_round(port: int, cfg: LoadConfig, bodies: list[bytes], tally: Tally, faults: bool) -> float:
    stop_at = time.monotonic() + cfg.seconds
    before = len(tally.latencies)
    t0 = time.perf_counter()
    tasks = [client(port, bodies, j * 7, stop_at, tally) for j in range(cfg.clients)]
    if faults:
        tasks.append(fault_client(port, bodies[0][bodies[0].index(b"\r\n\r\n") + 4:], stop_at,
                                  cfg.fault_interval_s, tally))
    await asyncio.gather(*tasks)
    return (len(tally.latencies) - before) / (time.perf_counter() - t0)


@dataclass
class Phase:
    """One server under one kind of load, measured over several rounds."""

    name: str
    proc: subprocess.Popen
    port: int
    max_batch: int
    clients: int
    faults: bool
    tally: Tally = field(default_factory=Tally)
    rates: list[float] = field(default_factory=list)
    rss: list[float] = field(default_factory=list)
    cpu: float = 0.0
    wall: float = 0.0

    def round(self, cfg: LoadConfig, bodies: list[bytes]) -> None:
        cpu0, wall0 = cpu_s(self.proc.pid), time.time()
        load = LoadConfig(**{**asdict(cfg), "clients": self.clients})
        self.rates.append(asyncio.run(load_round(self.port, load, bodies, self.tally, self.faults)))
        self.cpu += cpu_s(self.proc.pid) - cpu0
        self.wall += time.time() - wall0
        self.rss.append(rss_mb(self.proc.pid))

    def result(self) -> dict:
        lat = sorted(self.tally.latencies)
        health = json.loads(asyncio.run(get(self.port, "/health"))[1])
        return {"name": self.name, "max_batch": self.max_batch, "clients": self.clients, "requests": len(lat),
                "images_per_s": round(statistics.mean(self.rates), 1),
                "images_per_s_by_round": [round(r, 1) for r in self.rates],
                "server_cpu_share": round(self.cpu / self.wall, 3),
                "images_per_server_cpu_s": round(len(lat) / self.cpu, 1),
                "p50_ms": round(1000 * lat[len(lat) // 2], 1), "p99_ms": round(1000 * lat[int(len(lat) * 0.99)], 1),
                "errors": len(self.tally.errors), "error_examples": self.tally.errors[:5],
                "fault_connections": self.tally.faults, "rss_mb_after_each_round": self.rss,
                "server_mean_batch": health["mean_batch"], "server_largest_batch": health["largest_batch"]}


def measure(cfg: LoadConfig, bodies: list[bytes]) -> tuple[list[Phase], dict]:
    """Both servers up; rounds interleaved (batched, one-at-a-time, one client), so each sees the same machine."""
    servers = {b: start_server(cfg, b) for b in (cfg.max_batch, 1)}  # both load at once: one wait
    rss_warm = {}
    for b, (proc, port) in servers.items():
        wait_ready(proc, port)
        warm = LoadConfig(**{**asdict(cfg), "seconds": cfg.warmup_s})
        asyncio.run(load_round(port, warm, bodies, Tally(), False))
        rss_warm[b] = rss_mb(proc.pid)
    phases = [Phase("micro-batched", *servers[cfg.max_batch], cfg.max_batch, cfg.clients, faults=True),
              Phase("one at a time (server)", *servers[1], 1, cfg.clients, faults=False),
              Phase("one client, sequential", *servers[1], 1, 1, faults=False)]
    for _ in range(cfg.rounds):
        for phase in phases:
            phase.round(cfg, bodies)
    return phases, rss_warm


# --- faults: the bad-image corpus over HTTP, and SIGTERM with requests in flight ---------------------
def corpus_files() -> tuple[dict[str, bytes], dict[str, tuple[bytes, str]]]:
    """(good name -> bytes, bad name -> (bytes, expected reason)): the corpus files that can travel over HTTP
    (regular, readable; links, FIFOs and undecodable names are file-system faults, not HTTP ones)."""
    sys.path.insert(0, ROOT)
    from tests.image_corpus import build_corpus

    with tempfile.TemporaryDirectory() as d:
        good, bad = build_corpus(d)
        def ok(p):
            return os.path.isfile(p) and not os.path.islink(p) and os.access(p, os.R_OK) and p.isprintable()

        def read(p):
            with open(p, "rb") as f:
                return f.read()

        return ({os.path.basename(p): read(p) for p in good if ok(p)},
                {os.path.basename(p): (read(p), r) for p, r in bad.items() if ok(p)})


def multipart_many(files: dict[str, bytes]) -> bytes:
    parts = [multipart(name, data)[: -len(f"--{BOUNDARY}--\r\n")] for name, data in files.items()]
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


async def corpus_over_http(port: int) -> dict:
    good, bad = corpus_files()
    alone = []
    for name, (data, reason) in bad.items():
        status, body = await post(port, "/encode", multipart(name, data))
        alone.append(400 <= status < 500 and body.get("part") == "files[0]" and body.get("name") == name
                     and reason in body.get("error", ""))
    names = list(good) + list(bad)
    status, body = await post(port, "/encode", multipart_many({**good, **{n: d for n, (d, _) in bad.items()}}))
    results = body.get("results", [])
    named = sum(r.get("name") == n and bad[n][1] in r.get("error", "") for n, r in zip(names, results) if n in bad)
    answered = sum(bool(r.get("text")) for n, r in zip(names, results) if n in good)
    return {"bad_files": len(bad), "bad_alone_4xx_named": sum(alone), "together_status": status,
            "bad_together_named": named, "good_files": len(good), "good_together_answered": answered,
            "ok": sum(alone) == len(bad) == named and answered == len(good) and status == 200}


async def sigterm_in_flight(port: int, proc, n: int = 4) -> dict:
    """n decodes in flight, then SIGTERM: each must finish with 200, then the server exits."""
    bodies = [json.dumps({"text": "a red circle", "seed": i, "steps": 10}).encode() for i in range(n)]
    tasks = [asyncio.create_task(post(port, "/decode", b, "application/json")) for b in bodies]
    deadline = time.monotonic() + 60
    while json.loads((await get(port, "/health"))[1])["pending"] < n and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    answers = await asyncio.gather(*tasks, return_exceptions=True)
    codes = [a[0] if isinstance(a, tuple) else type(a).__name__ for a in answers]
    exit_code = await asyncio.to_thread(proc.wait, 120)
    return {"in_flight": n, "statuses": codes, "exit_code": exit_code,  # uvicorn re-raises SIGTERM once done
            "ok": codes == [200] * n and exit_code in (0, -signal.SIGTERM)}


# --- the run ---------------------------------------------------------------------------------------
def run(cfg: LoadConfig) -> dict:
    bodies = [request("/encode", multipart(f"scene{i}.png", p)) for i, p in enumerate(scene_pngs(cfg.images))]
    started = time.time()
    phases, rss_warm = measure(cfg, bodies)
    batched, serial, single = (p.result() for p in phases)
    corpus = asyncio.run(corpus_over_http(phases[0].port))
    shutdown = asyncio.run(sigterm_in_flight(phases[0].port, phases[0].proc))
    phases[1].proc.send_signal(signal.SIGTERM)
    phases[1].proc.wait(600)
    texts = [p.tally.texts for p in phases]
    same = all(t.get(k, v) == v for t in texts[1:] for k, v in texts[0].items())
    growth = batched["rss_mb_after_each_round"][-1] - rss_warm[cfg.max_batch]
    ratio = {}
    for other, name in ((serial, "vs_one_at_a_time_server"), (single, "vs_one_client")):
        ratio[name] = round(batched["images_per_s"] / other["images_per_s"], 2)
        ratio[name + "_per_cpu_s"] = round(batched["images_per_server_cpu_s"] / other["images_per_server_cpu_s"], 2)
    bar = {"speedup_3x_wall_vs_one_client": ratio["vs_one_client"] >= 3,
           "speedup_3x_wall_vs_one_at_a_time_server": ratio["vs_one_at_a_time_server"] >= 3,
           "zero_errors": batched["errors"] == serial["errors"] == single["errors"] == 0 and same,
           "rss_flat": growth <= max(20.0, 0.05 * rss_warm[cfg.max_batch]),
           "corpus": corpus["ok"], "graceful_shutdown": shutdown["ok"]}
    return {"config": asdict(cfg), "cpu_count": os.cpu_count(), "seconds": round(time.time() - started, 1),
            "phases": [batched, serial, single], "speedup": ratio, "same_texts_in_every_phase": same,
            "rss_mb_after_warmup": rss_warm, "rss_growth_mb_micro_batched": round(growth, 1),
            "corpus_over_http": corpus, "sigterm_with_requests_in_flight": shutdown, "bar": bar}


def markdown(r: dict, command: str) -> str:
    rows = [f"| {m['name']} | {m['max_batch']} | {m['clients']} | {m['images_per_s']} | {m['server_cpu_share']} | "
            f"{m['images_per_server_cpu_s']} | {m['p50_ms']} | {m['p99_ms']} | {m['errors']} | "
            f"{m['server_mean_batch']} | {', '.join(map(str, m['rss_mb_after_each_round']))} |" for m in r["phases"]]
    c, g, x, b = r["corpus_over_http"], r["sigterm_with_requests_in_flight"], r["speedup"], r["phases"][0]
    cfg = r["config"]
    return "\n".join([
        "# `dediffusion serve` under load (loopback, shipped models)", "", "```bash", command, "```", "",
        f"{cfg['rounds']} rounds of {cfg['seconds']} s per row, interleaved (every row sees the same machine); every "
        f"request one 16 px scene, multipart POST /encode, keep-alive; {r['cpu_count']} CPU cores, "
        f"{cfg.get('threads', 1)} torch thread(s) per server. Total {r['seconds']} s.", "",
        "| load | --max-batch | clients | images/s (wall) | server CPU share | images per server CPU-s | p50 ms "
        "| p99 ms | errors | server mean batch | server RSS MB per round |",
        "|---|---|---|---|---|---|---|---|---|---|---|", *rows, "",
        f"Micro-batched vs one client: **{x['vs_one_client']}x** wall-clock, {x['vs_one_client_per_cpu_s']}x per "
        f"server CPU-second; vs the one-at-a-time server under the same {cfg['clients']} clients: "
        f"{x['vs_one_at_a_time_server']}x wall-clock, {x['vs_one_at_a_time_server_per_cpu_s']}x per CPU-second. "
        f"Same text for every image in every row: {r['same_texts_in_every_phase']}. RSS after warm-up "
        f"{r['rss_mb_after_warmup']} MB; micro-batched growth to the last round {r['rss_growth_mb_micro_batched']} MB.",
        "",
        f"- Fault client during the micro-batched rounds: {b['fault_connections']} connections that hung up "
        f"mid-upload or before their answer; errors of the other clients: {b['errors']}.",
        f"- Bad-image corpus over HTTP: {c['bad_alone_4xx_named']}/{c['bad_files']} bad files alone -> 4xx naming "
        f"them; all {c['bad_files'] + c['good_files']} in one request -> HTTP {c['together_status']}, "
        f"{c['bad_together_named']}/{c['bad_files']} bad parts named, {c['good_together_answered']}/{c['good_files']} "
        "good ones answered.",
        f"- SIGTERM with {g['in_flight']} decodes in flight: statuses {g['statuses']}, exit code {g['exit_code']} "
        "(uvicorn re-raises SIGTERM after its graceful shutdown).", "",
        "Bar: " + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in r["bar"].items()) + ".", ""])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    d = LoadConfig()
    for name in ("clients", "seconds", "rounds", "max_batch", "max_wait_ms", "threads", "model", "decoder"):
        ap.add_argument("--" + name.replace("_", "-"), type=type(getattr(d, name)) if getattr(d, name) is not None
                        else str, default=getattr(d, name))
    ap.add_argument("--out", default=os.path.join(HERE, "serve_load"))
    ap.add_argument("--note", default="", help="a line for the report (e.g. what else the machine was doing)")
    a = ap.parse_args(argv)
    cfg = LoadConfig(clients=a.clients, seconds=a.seconds, rounds=a.rounds, max_batch=a.max_batch,
                     max_wait_ms=a.max_wait_ms, threads=a.threads, model=a.model, decoder=a.decoder)
    result = run(cfg)
    result["note"] = a.note
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump(result, f, indent=2)
    command = "OMP_NUM_THREADS=1 python benchmarks/serve_load.py " + " ".join(sys.argv[1:] if argv is None else argv)
    with open(os.path.join(a.out, "results.md"), "w") as f:
        f.write(markdown(result, command.strip()) + (f"\n{a.note}\n" if a.note else ""))
    print(json.dumps({k: result[k] for k in ("speedup", "bar")}, indent=2))
    return 0 if all(result["bar"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
