"""The FastAPI app: JSON endpoints over the engine, the web page at ``/``.

``create_app(cfg)`` loads the model (so a bad ``--model`` fails before the port is
bound); the lifespan starts the micro-batcher and, on shutdown, lets it finish what
is queued. Every image endpoint takes multipart uploads or base64 in JSON.
"""
from __future__ import annotations

import asyncio
import base64
import io
import time
from contextlib import asynccontextmanager
from importlib import resources

import torch
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from . import errors, schemas
from .config import ServeConfig
from .engine import Engine, load_model
from .inputs import ImagePart, PartError, decode_image, image_size, parse_request, validate

INLINE_PIXELS = 128 * 128  # images this small decode faster on the event loop than a hop to a thread
STATIC = resources.files("dediffusion") / "serve" / "static"
ERRORS = {code: {"model": schemas.ErrorBody, "description": text} for code, text in (
    (400, "malformed request"), (413, "body or image count over the limit"), (415, "unsupported content type"),
    (422, "a field or every image is bad (the part is named)"), (503, "queue full or no LLM"))}


def png_uri(image: torch.Tensor, scale: int = 1) -> str:
    """(3,H,W) in [0,1] -> ``data:image/png;base64,...``."""
    from PIL import Image

    arr = (image.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    im = Image.fromarray(arr)
    if scale != 1:
        im = im.resize((im.width * scale, im.height * scale), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def multipart_schema(fields: dict) -> dict:
    files = {"type": "array", "items": {"type": "string", "format": "binary"}}
    return {"type": "object", "properties": {"files": files, **fields}, "required": ["files"]}


def body_doc(json_model, form_fields: dict) -> dict:
    """OpenAPI request body for endpoints that take JSON or multipart."""
    return {"requestBody": {"required": True, "content": {
        "application/json": {"schema": json_model.model_json_schema()},
        "multipart/form-data": {"schema": multipart_schema(form_fields)}}}}


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
    _routes(app, engine, cfg)
    from .routes import add_routes  # reconstruct, ask, explain, scene

    add_routes(app, engine, cfg)
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    return app


async def decode_images(engine: Engine, parts: list[ImagePart]) -> list[torch.Tensor | str]:
    """Decode the parts (large ones off the event loop): a tensor per good image, the error message per bad one."""
    from ..images import ImageInputError

    def one(part: ImagePart, size):
        try:
            return decode_image(part, engine.resolution, engine.cfg.max_pixels, size)
        except ImageInputError as e:
            return str(e)

    sizes = [image_size(p.data) for p in parts]  # header only
    return list(await asyncio.gather(*(
        _done(one(p, size)) if size and size[0] * size[1] <= INLINE_PIXELS else asyncio.to_thread(one, p, size)
        for p, size in zip(parts, sizes))))


async def _done(value):
    return value


def _all_bad(parts: list[ImagePart], images: list) -> None:
    """Every image bad -> the request is bad: 422 naming the first (with some good ones, each bad one is a result)."""
    if parts and all(isinstance(x, str) for x in images):
        raise PartError(422, images[0], parts[0].part, parts[0].name)


def check_sampling(cfg: ServeConfig, s: schemas.Sampling) -> None:
    """The server's caps; the default step count shrinks to the cap, an explicit one over it is refused."""
    if "steps" not in s.model_fields_set:
        s.steps = min(s.steps, cfg.max_steps)
    if s.steps > cfg.max_steps:
        raise PartError(422, f"steps: {s.steps} is over this server's limit of {cfg.max_steps}", "steps")
    if s.scale > cfg.max_scale:
        raise PartError(422, f"scale: {s.scale} is over this server's limit of {cfg.max_scale}", "scale")


async def encode_request(request: Request, engine: Engine, fields_model=schemas.EncodeJSON, check=None):
    """Parse, check the fields against ``fields_model``, decode the images, encode the good ones (micro-batched).

    Returns (parts, settings, images or error messages, texts or None), all in request order."""
    parsed = await parse_request(request, "images", engine.cfg.max_images)
    settings = validate(fields_model, {"images": [], **parsed.fields})  # unknown fields are refused
    if check:
        check(settings)
    if not parsed.images:
        raise PartError(422, "no image given: send multipart field 'files' or JSON 'images' (base64)", "files")
    images = await decode_images(engine, parsed.images)
    _all_bad(parsed.images, images)
    texts = iter(await engine.batcher.submit([x for x in images if not isinstance(x, str)]))
    return parsed.images, settings, images, [None if isinstance(x, str) else next(texts) for x in images]


def result(part: ImagePart, image, text) -> dict:
    return {"part": part.part, "name": part.name} | ({"error": image} if isinstance(image, str) else {"text": text})


def _routes(app: FastAPI, engine: Engine, cfg: ServeConfig) -> None:
    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(str(STATIC / "index.html"))

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok", **engine.info(), "queue": engine.batcher.waiting, "pending": engine.pending,
                "max_batch": cfg.max_batch, "max_wait_ms": cfg.max_wait_ms, **engine.batcher.stats.as_dict(),
                "explain": _has_explain(engine), "uptime_s": round(time.time() - engine.started, 1)}

    @app.post("/encode", response_model=schemas.EncodeResponse, response_model_exclude_none=True,
              openapi_extra=body_doc(schemas.EncodeJSON, {}))
    async def encode(request: Request):
        """Images -> De-Diffusion texts. Bad images among good ones come back as failed results."""
        parts, _, images, texts = await encode_request(request, engine)
        return JSONResponse({"results": [result(p, x, t) for p, x, t in zip(parts, images, texts)],
                             "failed": sum(isinstance(x, str) for x in images)})  # skips re-validation

    @app.post("/decode", response_model=schemas.DecodeResponse)
    async def decode(req: schemas.DecodeRequest):
        """Text -> image with the frozen decoder (DDIM, classifier-free guidance, seeded noise)."""
        check_sampling(cfg, req)
        if len(req.text) > cfg.max_text_chars:
            raise PartError(422, f"text: {len(req.text)} characters; the limit is {cfg.max_text_chars}", "text")
        prompt = engine.check_prompt(req.text)
        if not req.allow_empty and not prompt.tokens:
            raise PartError(422, "text: empty (set allow_empty for an unconditional sample)", "text")
        start = time.perf_counter()
        image = await engine.run(engine.decode, prompt.text, req.guidance, req.steps, req.seed)
        return {"text": prompt.text, "image": png_uri(image, req.scale), "tokens": prompt.tokens,
                "dropped": prompt.dropped, "guidance": req.guidance, "steps": req.steps, "seed": req.seed,
                "seconds": round(time.perf_counter() - start, 3)}



def _has_explain(engine: Engine) -> bool:
    try:
        engine.explain_fn()
        return True
    except ImportError:
        return False
