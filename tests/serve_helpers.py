"""Helpers for the service tests: multipart parts, a TestClient on a loaded model, a real uvicorn server.

FastAPI, its TestClient and uvicorn are imported inside the functions that use them (the ``serve`` extra).
"""
import socket
import threading
import time

from dediffusion.serve import ServeConfig, create_app


def files(pngs, names=None):
    """PNG bytes as multipart ``files`` parts, named ``s0.png``, ``s1.png``, ... unless ``names`` are given."""
    return [("files", (names[i] if names else f"s{i}.png", p, "image/png")) for i, p in enumerate(pngs)]


def make_client(model, tiny_llm_dir=None, **cfg):
    """A ``TestClient`` on ``model`` (with a local LLM when ``tiny_llm_dir`` is given); ``cfg``: ServeConfig fields."""
    from fastapi.testclient import TestClient

    from dediffusion.apps.llm import LocalLLM

    factory = (lambda: LocalLLM.from_pretrained(tiny_llm_dir)) if tiny_llm_dir else None
    # a 500 is answered as JSON (as uvicorn would), not re-raised into the test
    return TestClient(create_app(ServeConfig(**cfg), model=model, llm_factory=factory), raise_server_exceptions=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(app, **kw):
    """uvicorn serving ``app`` on a free loopback port, in a thread -> (server, thread, port) once it has started."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning", **kw))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    return server, thread, server.config.port
