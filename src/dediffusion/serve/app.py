"""The FastAPI app: JSON endpoints over the engine, the web page at ``/``.

``create_app(cfg)`` loads the model (so a bad ``--model`` fails before the port is
bound); the lifespan starts the micro-batcher and, on shutdown, lets it finish what
is queued. Every image endpoint takes multipart uploads or base64 in JSON.
"""
from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from dediffusion.serve import errors, routes, schemas
from dediffusion.serve.engine import Engine, load_model
from dediffusion.serve.settings import ServeConfig

ERRORS = {code: {"model": schemas.ErrorBody, "description": text} for code, text in (
    (400, "malformed request"), (413, "body or image count over the limit"), (415, "unsupported content type"),
    (422, "a field or every image is bad (the part is named)"), (503, "queue full or no LLM"))}


def create_app(cfg: ServeConfig, model=None, llm_factory=None) -> FastAPI:
    engine = Engine(cfg, model if model is not None else load_model(cfg), llm_factory)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        engine.start()
        yield
        await engine.stop()  # uvicorn has already let in-flight requests finish

    app = FastAPI(title="dediffusion", version="0.1.0", lifespan=lifespan, responses=ERRORS,
                  description="De-Diffusion: images -> text -> images with a frozen text-to-image decoder.")
    app.state.engine = engine
    app.add_middleware(errors.BodyLimit, limit=cfg.max_upload_bytes)
    errors.install(app)
    routes.add_routes(app, engine, cfg)
    app.mount("/static", StaticFiles(directory=str(routes.STATIC)), name="static")
    return app


