"""The web page end to end in headless Chromium (Debian's ``chromium``, driven by playwright) against a real
uvicorn server: upload an image, wait for its text and reconstruction, check both against the API's answers,
then a world scene with its caption comparison, the ask box and the per-token attribution.

``DEDIFFUSION_SCREENSHOT=docs/serve.png pytest tests/test_serve_browser.py`` runs it on the shipped models and
the default LLM instead of tiny random ones and saves the screenshot (several minutes: explain decodes 65 texts).
"""
import os
import pathlib

import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install 'dediffusion[serve]'")
pytest.importorskip("playwright", reason="playwright is not installed (it is in the test extra)")

import httpx  # noqa: E402
from PIL import Image  # noqa: E402

from dediffusion.serve import ServeConfig, create_app
from dediffusion.data.world.scenes import render, sample_scene

from .serve_helpers import start_server  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
# a closed network: no first-run, sync, component or QUIC traffic that would stall start-up
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOT = os.environ.get("DEDIFFUSION_SCREENSHOT")
pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is absent (apt-get install chromium)")


@pytest.fixture(scope="module")
def server_url(request, tmp_path_factory):
    if SCREENSHOT:  # the shipped models and the default LLM, as `make serve` runs them
        from dediffusion.apps.llm import default_llm

        app = create_app(ServeConfig(), llm_factory=default_llm)
    else:
        from dediffusion.apps.llm import LocalLLM

        llm_dir = request.getfixturevalue("tiny_llm_dir")
        app = create_app(ServeConfig(), model=request.getfixturevalue("tiny_dediffusion"),
                         llm_factory=lambda: LocalLLM.from_pretrained(llm_dir))
    server, thread, port = start_server(app)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(30)


@pytest.fixture(scope="module")
def page():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)  # a fresh profile each launch
        page = browser.new_page(viewport={"width": 1150, "height": 900})
        page.errors = []
        page.on("pageerror", lambda e: page.errors.append(str(e)))
        page.on("console", lambda m: m.type == "error" and page.errors.append(m.text))
        yield page
        browser.close()


def wait_image(page, selector: str, timeout_s: float) -> str:
    page.wait_for_selector(f"{selector}[src^='data:image/png']", timeout=timeout_s * 1000)
    return page.get_attribute(selector, "src")


def decoded(url: str, text: str, page) -> str:
    settings = {k: float(page.input_value(f"#{k}")) for k in ("guidance", "seed", "steps")}
    settings["seed"], settings["steps"] = int(settings["seed"]), int(settings["steps"])
    return httpx.post(f"{url}/decode", json={"text": text, **settings}, timeout=120).json()["image"]


def test_page_shows_the_api_text_and_reconstruction_then_a_scene_ask_and_attribution(server_url, page, tmp_path):
    slow = 1800 if SCREENSHOT else 60
    image = tmp_path / "scene.png"
    Image.fromarray(render(sample_scene(7, 3))).save(image)
    page.goto(server_url)
    page.set_input_files("#file", str(image))
    recon = wait_image(page, "#recon", slow)
    text = page.inner_text("#text")
    with open(image, "rb") as f:
        api = httpx.post(f"{server_url}/encode", files={"files": ("scene.png", f, "image/png")}, timeout=60).json()
    assert text and text == api["results"][0]["text"]
    assert recon == decoded(server_url, text, page)  # the same text, seed and settings: the same image

    page.click("#scene-btn")
    page.wait_for_function("document.getElementById('input-name').textContent.startsWith('world scene')")
    caption_image = wait_image(page, "#caption-recon", slow)
    seed, index = page.inner_text("#input-name").split()[-1].split("/")
    scene = httpx.get(f"{server_url}/scene", params={"seed": seed, "index": index}).json()
    assert page.inner_text("#caption") == scene["human_caption"]
    assert caption_image == decoded(server_url, scene["human_caption"], page)
    wait_image(page, "#recon", slow)

    page.fill("#question", "What colour is the background?")
    page.click("#ask-btn")
    page.wait_for_function("document.getElementById('answer').textContent.length > 0", timeout=slow * 1000)
    assert "the LLM read:" in page.inner_text("#answer")  # the image's text for readers, as /ask answers it

    page.click("#explain-btn")
    page.wait_for_selector("#tokens .token canvas", timeout=slow * 1000)
    assert page.locator("#tokens .token").count() == httpx.get(f"{server_url}/health").json()["tokens"]
    assert page.inner_text("#status") == "" and not page.errors, (page.inner_text("#status"), page.errors)
    if SCREENSHOT:
        pathlib.Path(SCREENSHOT).parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=SCREENSHOT, full_page=True)
