"""The service's limits and shutdown: every bad request is a 4xx JSON naming the part; a real uvicorn server
survives a client that disconnects mid-upload and finishes in-flight requests when told to stop."""
import base64
import http.client
import json
import socket
import threading
import time

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install 'dediffusion[serve]'")

from dediffusion.cli.main import build_parser
from dediffusion.serve import ServeConfig, create_app
from dediffusion.cli.serving import config_from_args

from .data_helpers import png  # noqa: E402
from .serve_helpers import files, make_client, start_server  # noqa: E402


@pytest.fixture(scope="module")
def client(tiny_dediffusion):
    with make_client(tiny_dediffusion, max_upload_mb=0.05, max_pixels=10_000, max_images=3, max_steps=10) as c:
        yield c


def expect(r, status: int, part: str, words: str = ""):
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert body["part"] == part and words in body["error"], body


def test_request_shape_errors_name_the_part(client, scene_pngs):
    expect(client.post("/encode", files=files(scene_pngs[:4])), 413, "files", "limit is 3")
    expect(client.post("/encode", json={"images": ["x"] * 4}), 413, "images", "limit is 3")
    expect(client.post("/encode", content=b"{nope", headers={"content-type": "application/json"}), 400, "body", "JSON")
    expect(client.post("/encode", content=b"[1]", headers={"content-type": "application/json"}), 422, "body")
    expect(client.post("/encode", content=b"abc", headers={"content-type": "text/plain"}), 415, "content-type")
    expect(client.post("/encode", json={"images": [5]}), 422, "images[0]", "base64")
    expect(client.post("/encode", json={"imgs": ["x"]}), 422, "imgs", "Extra")
    expect(client.post("/encode", json={}), 422, "files", "no image")
    expect(client.post("/decode", json={"text": "red", "steps": 11}), 422, "steps", "limit of 10")
    expect(client.post("/decode", json={"text": "red", "steps": 0}), 422, "steps")
    expect(client.post("/decode", json={"text": "red", "guidance": "lots"}), 422, "guidance")
    expect(client.post("/decode", json={"text": "red", "scale": 99, "steps": 1}), 422, "scale")
    expect(client.post("/decode", json={"text": "red", "seed": -1}), 422, "seed")
    expect(client.post("/decode", json={"steps": 2}), 422, "text")
    expect(client.post("/decode", json={"text": " \x00\t "}), 422, "text", "empty")
    expect(client.post("/decode", json={"text": "x" * 5000}), 422, "text", "limit")
    expect(client.post("/reconstruct", files=files(scene_pngs[:1]), data={"steps": "many"}), 422, "steps")
    expect(client.post("/reconstruct", files=files(scene_pngs[:1]), data={"sed": "1"}), 422, "sed")
    expect(client.post("/ask", json={"question": "", "text": "a"}), 422, "question")
    expect(client.get("/scene?seed=-3"), 422, "seed")
    expect(client.get("/nowhere"), 404, "path")
    expect(client.get("/encode"), 405, "path")


def test_upload_and_pixel_limits(client, scene_pngs):
    big = png(np.random.default_rng(0).integers(0, 256, (200, 200, 3), dtype=np.uint8))  # ~120 kB > 50 kB
    expect(client.post("/encode", files=files([big])), 413, "body", "limit")
    chunks = (b"x" * 10_000 for _ in range(10))  # no Content-Length: counted while it streams in
    expect(client.post("/encode", content=chunks, headers={"content-type": "application/json"}), 413, "body")
    wide = png(np.zeros((10, 1001, 3), np.uint8))  # 10,010 pixels > 10,000, tiny file
    r = client.post("/encode", files=files([scene_pngs[0], wide], ["ok.png", "wide.png"]))
    assert r.status_code == 200 and r.json()["failed"] == 1
    bad = r.json()["results"][1]
    assert bad["part"] == "files[1]" and "wide.png: 1001x10 pixels exceeds" in bad["error"]
    r = client.post("/encode", json={"images": [base64.b64encode(scene_pngs[0]).decode(), "@@@"]})
    assert r.json()["results"][1] == {"part": "images[1]", "name": "images[1]", "error": "images[1]: not valid base64"}


def test_serve_flags_make_the_config_and_bad_settings_are_refused():
    a = build_parser().parse_args(["serve", "--port", "9", "--max-batch", "1", "--max-wait-ms", "0", "--tokens", "4"])
    cfg = config_from_args(a)
    assert (cfg.max_batch, cfg.max_wait_ms, cfg.tokens, a.port) == (1, 0.0, 4, 9)
    with pytest.raises(ValueError, match="max_batch=0"):
        ServeConfig(max_batch=0)


# --- a real server: uvicorn on a loopback port, in a thread -----------------------------------------------------
def post_json(port: int, path: str, body: dict, timeout: float = 60) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    conn.request("POST", path, json.dumps(body), {"content-type": "application/json"})
    r = conn.getresponse()
    return r.status, json.loads(r.read())


def test_real_server_survives_a_dropped_upload_and_finishes_in_flight_requests_on_shutdown(tiny_dediffusion, scene_pngs):
    app = create_app(ServeConfig(max_steps=2000), model=tiny_dediffusion)
    server, thread, port = start_server(app, timeout_graceful_shutdown=30)
    body = json.dumps({"images": [base64.b64encode(scene_pngs[0]).decode()]}).encode()
    with socket.create_connection(("127.0.0.1", port)) as s:  # announces 10x the bytes it sends, then leaves
        s.sendall(b"POST /encode HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  + f"Content-Length: {len(body) * 10}\r\n\r\n".encode() + body[: len(body) // 2])
    status, good = post_json(port, "/encode", {"images": [base64.b64encode(scene_pngs[0]).decode()]})
    assert status == 200 and good["results"][0]["text"]

    slow = {}
    worker = threading.Thread(target=lambda: slow.update(r=post_json(port, "/decode", {"text": "red", "steps": 40})))
    worker.start()
    while not server.server_state.tasks:  # wait until the request is in (the decode then takes ~1 s)
        time.sleep(0.01)
    server.should_exit = True  # what SIGTERM / Ctrl-C does
    worker.join(60)
    thread.join(60)
    assert slow["r"][0] == 200 and slow["r"][1]["image"].startswith("data:image/png")
    assert not thread.is_alive()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
