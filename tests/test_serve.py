"""The HTTP service on tiny models: endpoints agree with the library, micro-batching, limits, bad inputs -> 4xx."""
import base64
import io
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install 'dediffusion[serve]'")
from fastapi.testclient import TestClient  # noqa: E402

from dediffusion.model.sampling import generate
from dediffusion.data.images import load_image_bytes
from dediffusion.serve import ServeConfig, create_app

from .image_corpus import build_corpus  # noqa: E402
from .serve_helpers import files, make_client  # noqa: E402

ENDPOINTS = ("/encode", "/decode", "/reconstruct", "/ask", "/explain", "/health", "/scene")


@pytest.fixture(scope="module")
def client(tiny_dediffusion, tiny_llm_dir):
    with make_client(tiny_dediffusion, tiny_llm_dir, max_wait_ms=20, max_images=40) as c:
        yield c


def library_texts(model, pngs) -> list[str]:
    images = torch.stack([load_image_bytes(p, "x", model.decoder.resolution) for p in pngs])
    with torch.inference_mode():
        return model.texts(images)


def test_openapi_lists_every_endpoint_and_docs_and_page_are_served(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert all(p in paths for p in ENDPOINTS), sorted(paths)
    content = paths["/encode"]["post"]["requestBody"]["content"]
    assert {"application/json", "multipart/form-data"} <= set(content)
    assert client.get("/docs").status_code == 200
    page = client.get("/")
    assert page.status_code == 200 and "<script src=\"/static/app.js\">" in page.text
    assert client.get("/static/app.js").status_code == 200
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["resolution"] == 8 and health["tokens"] > 0


def test_encode_multipart_and_base64_json_give_the_library_texts(client, tiny_dediffusion, scene_pngs):
    want = library_texts(tiny_dediffusion, scene_pngs)
    got = client.post("/encode", files=files(scene_pngs)).json()
    assert got["failed"] == 0 and [r["text"] for r in got["results"]] == want
    assert [r["part"] for r in got["results"]] == [f"files[{i}]" for i in range(len(want))]
    data = [base64.b64encode(p).decode() for p in scene_pngs]
    data[0] = "data:image/png;base64," + data[0]  # data: URIs too
    got = client.post("/encode", json={"images": data, "names": ["a.png"]}).json()
    assert [r["text"] for r in got["results"]] == want
    assert got["results"][0]["name"] == "a.png" and got["results"][1]["name"] == "images[1]"


def test_concurrent_requests_share_forward_passes_and_answers_are_unchanged(tiny_dediffusion, scene_pngs):
    want = library_texts(tiny_dediffusion, scene_pngs)
    with make_client(tiny_dediffusion, max_wait_ms=200, max_batch=4) as c:
        with ThreadPoolExecutor(len(scene_pngs)) as pool:
            replies = list(pool.map(lambda p: c.post("/encode", files=files([p])), scene_pngs))
        stats = c.get("/health").json()
    assert [r.json()["results"][0]["text"] for r in replies] == want
    assert stats["images"] == len(scene_pngs) and stats["largest_batch"] > 1
    assert stats["batches"] < len(scene_pngs) and stats["largest_batch"] <= 4


def test_full_queue_answers_503_and_the_server_goes_on(tiny_dediffusion, scene_pngs):
    with make_client(tiny_dediffusion, max_queue=2) as c:
        r = c.post("/encode", files=files(scene_pngs[:3]))
        assert r.status_code == 503 and "waiting" in r.json()["error"] and r.headers["retry-after"] == "1"
        assert c.post("/encode", files=files(scene_pngs[:2])).status_code == 200


def test_decode_is_the_library_generate_and_seeded(client, tiny_dediffusion):
    req = {"text": "a large red circle at the top left", "steps": 3, "guidance": 2.0, "seed": 5}
    a, b = client.post("/decode", json=req).json(), client.post("/decode", json=req).json()
    other = client.post("/decode", json={**req, "seed": 6}).json()
    assert a["image"] == b["image"] != other["image"]
    want = generate(tiny_dediffusion.decoder, [req["text"]], steps=3, guidance=2.0, seed=5)[0]
    got = Image.open(io.BytesIO(base64.b64decode(a["image"].split(",")[1])))
    assert np.array_equal(np.asarray(got), (want.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy())
    big = client.post("/decode", json={**req, "scale": 4}).json()["image"]
    assert Image.open(io.BytesIO(base64.b64decode(big.split(",")[1]))).size == (32, 32)


def test_reconstruct_equals_decode_of_its_text(client, scene_pngs):
    r = client.post("/reconstruct", files=files(scene_pngs[:2]), data={"steps": "3", "seed": "2"}).json()
    assert r["failed"] == 0 and r["steps"] == 3
    for item in r["results"]:
        dec = client.post("/decode", json={"text": item["text"], "steps": 3, "seed": 2}).json()
        assert dec["image"] == item["image"]
    js = client.post("/reconstruct", json={"images": [base64.b64encode(scene_pngs[0]).decode()], "steps": 3,
                                           "seed": 2}).json()
    assert js["results"][0]["image"] == r["results"][0]["image"]


def test_ask_about_a_text_or_an_image(client, tiny_dediffusion, scene_pngs):
    from dediffusion.apps.reading import reader_texts

    r = client.post("/ask", json={"text": "a red circle on a white background", "question": "What colour?"})
    assert r.status_code == 200 and r.json()["context"] == "a red circle on a white background"
    assert isinstance(r.json()["answer"], str) and isinstance(r.json()["reply"], str)
    image = torch.stack([load_image_bytes(scene_pngs[0], "x", tiny_dediffusion.decoder.resolution)])
    reading = reader_texts(tiny_dediffusion, image)[0]  # what `dediffusion ask` gives the LLM
    r = client.post("/ask", files=files(scene_pngs[:1]), data={"question": "What is it?"})
    assert r.status_code == 200 and r.json()["context"] == reading
    assert reader_texts(tiny_dediffusion, image, 0.0) == library_texts(tiny_dediffusion, scene_pngs[:1])
    r = client.post("/ask", json={"question": "What?"})
    assert r.status_code == 422 and r.json()["part"] == "text"


def test_ask_without_a_language_model_is_a_503_naming_it(tiny_dediffusion):
    with make_client(tiny_dediffusion) as c:
        r = c.post("/ask", json={"text": "a red circle", "question": "What colour?"})
    assert r.status_code == 503 and r.json()["part"] == "llm"


def test_explain_answers_per_token_or_501_when_not_installed(client, scene_pngs, monkeypatch):
    r = client.post("/explain", files=files(scene_pngs[:1]), data={"steps": "2"})
    assert r.status_code == 200, r.json()
    body = r.json()
    assert len(body["tokens"]) == len(body["text"].split()) or body["tokens"]
    assert {"change", "heat"} <= set(body["tokens"][0]["replace"])

    def missing():
        raise ImportError("no dediffusion.eval.explain")

    monkeypatch.setattr(client.app.state.engine, "explain_fn", missing)
    r = client.post("/explain", files=files(scene_pngs[:1]))
    assert r.status_code == 501 and "error" in r.json()


def test_scene_gives_an_image_and_its_captions(client):
    a, b = client.get("/scene?seed=3&index=4").json(), client.get("/scene?seed=3&index=4").json()
    assert a == b and a["human_caption"] and a["full_caption"].endswith("background")
    assert Image.open(io.BytesIO(base64.b64decode(a["image"].split(",")[1]))).size == (16, 16)
    assert client.get("/scene").json()["index"] >= 0


def test_a_failing_batch_fails_its_request_with_json_and_the_worker_lives(client, scene_pngs, monkeypatch):
    engine = client.app.state.engine

    def boom(images):
        raise RuntimeError("out of memory (simulated)")

    monkeypatch.setattr(engine.batcher, "fn", boom)
    r = client.post("/encode", files=files(scene_pngs[:1]))
    assert r.status_code == 500 and "simulated" in r.json()["error"]
    monkeypatch.undo()
    assert client.post("/encode", files=files(scene_pngs[:1])).status_code == 200


def test_bad_image_corpus_over_http_every_bad_part_named_good_ones_answered(client, tmp_path):
    good, bad = build_corpus(tmp_path)
    readable = {p: open(p, "rb").read() for p in good if os.path.isfile(p) and os.access(p, os.R_OK)}
    content_bad = {p: r for p, r in bad.items() if os.path.isfile(p) and not os.path.islink(p)
                   and os.access(p, os.R_OK) and "UTF-8" not in r}
    assert len(content_bad) == 6  # empty, two truncated, a text file, a decompression bomb, garbage
    names = {p: os.path.basename(p) for p in [*readable, *content_bad]}
    for path, reason in content_bad.items():  # one per request: the request is bad, the part named
        r = client.post("/encode", files=[("files", (names[path], open(path, "rb").read(), "image/png"))])
        assert r.status_code == 422 and r.json()["part"] == "files[0]", r.json()
        assert reason in r.json()["error"] and r.json()["name"] == names[path]
    mixed = [*readable, *content_bad]  # all in one: each bad one named, the good ones answered
    r = client.post("/encode", files=[("files", (names[p], open(p, "rb").read(), "image/png")) for p in mixed])
    assert r.status_code == 200
    results = r.json()["results"]
    assert r.json()["failed"] == len(content_bad) and len(results) == len(mixed)
    for path, res in zip(mixed, results):
        if path in content_bad:
            assert content_bad[path] in res["error"] and res["name"] == names[path], res
        else:
            assert res["text"].split(), res


def test_a_stable_diffusion_decoder_folder_serves_too(tiny_model_dir, scene_pngs, tmp_path, monkeypatch):
    """``--decoder`` takes a diffusers Stable Diffusion folder, as the CLI does (a tiny random one here, at the
    tiny encoder's 8 px)."""
    from . import tiny_models

    monkeypatch.setattr(tiny_models, "IMAGE", 8)
    sd = tiny_models.save_tiny_sd(tmp_path / "sd")
    with TestClient(create_app(ServeConfig(model=str(tiny_model_dir), decoder=str(sd)))) as c:
        assert c.get("/health").json()["decoder"] == str(sd)
        text = c.post("/encode", files=files(scene_pngs[:1])).json()["results"][0]["text"]
        r = c.post("/reconstruct", files=files(scene_pngs[:1]), data={"steps": "2"}).json()["results"][0]
        assert r["text"] == text and r["image"] == c.post("/decode", json={"text": text, "steps": 2}).json()["image"]
