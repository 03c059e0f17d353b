"""The endpoints: the page, health, encode, decode, and those that combine steps (reconstruct, ask, explain,
the page's world scenes)."""
from __future__ import annotations

import random
import time
from importlib import resources

import torch
from fastapi import FastAPI, Query, Request
from fastapi.responses import FileResponse, JSONResponse

from dediffusion.data.prompts import check_prompt
from dediffusion.data.world.scenes import full_caption, human_caption, render, sample_scene
from dediffusion.serve import schemas
from dediffusion.serve.handlers import body_doc, check_sampling, decode_images, encode_request, png_uri, result
from dediffusion.serve.settings import ServeConfig
from dediffusion.serve.engine import Engine
from dediffusion.serve.uploads import PartError, parse_request, validate

SAMPLING_FORM = {k: {"type": t} for k, t in (("guidance", "number"), ("steps", "integer"), ("seed", "integer"),
                                             ("scale", "integer"))}
ASK_FORM = {"question": {"type": "string"}, "text": {"type": "string"}}
STATIC = resources.files("dediffusion") / "serve" / "static"


def add_routes(app: FastAPI, engine: Engine, cfg: ServeConfig) -> None:
    _core_routes(app, engine, cfg)
    _combined_routes(app, engine, cfg)


def _combined_routes(app: FastAPI, engine: Engine, cfg: ServeConfig) -> None:
    """The endpoints that chain encoding with decoding, the LLM or attribution."""
    @app.post("/reconstruct", response_model=schemas.ReconstructResponse, response_model_exclude_none=True,
              openapi_extra=body_doc(schemas.ReconstructJSON, SAMPLING_FORM))
    async def reconstruct(request: Request):
        """Images -> text -> images: each text decoded alone, so it equals /decode of that text and seed."""
        parts, s, images, texts = await encode_request(request, engine, schemas.ReconstructJSON,
                                                       check=lambda s: check_sampling(cfg, s))
        results = []
        for part, image, text in zip(parts, images, texts):
            out = result(part, image, text)
            if text is not None:
                recon = await engine.run(engine.decode, text, s.guidance, s.steps, s.seed)
                out["image"] = png_uri(recon, s.scale)
            results.append(out)
        return {"results": results, "failed": sum(isinstance(x, str) for x in images), "guidance": s.guidance,
                "steps": s.steps, "seed": s.seed}

    @app.post("/ask", response_model=schemas.AskResponse, openapi_extra=body_doc(schemas.AskFields, ASK_FORM))
    async def ask(request: Request):
        """A question about an image (read through its De-Diffusion text) or about a given text, for the LLM."""
        parsed = await parse_request(request, "image", 1)
        fields = validate(schemas.AskFields, parsed.fields)
        if len(fields.question) > cfg.max_text_chars or len(fields.text or "") > cfg.max_text_chars:
            raise PartError(422, f"question/text over the limit of {cfg.max_text_chars} characters", "question")
        if (fields.text is None) == (not parsed.images):
            raise PartError(422, "give an image or a text, not both" if parsed.images else "give an image or a text",
                            "text")
        context = fields.text
        if context is None:
            image = await _one_image(engine, parsed.images[0])
            context = await engine.run(engine.reader_text, image)
        answer, reply = await engine.run(engine.ask, context, fields.question.strip())
        return {"context": context, "answer": answer, "reply": reply}

    @app.post("/explain", openapi_extra=body_doc(schemas.ExplainJSON, SAMPLING_FORM),
              responses={501: {"model": schemas.ErrorBody, "description": "explain is not installed"}})
    async def explain(request: Request):
        """Per-token attribution: each token removed in turn, re-decoded with the same noise (dediffusion.eval.explain)."""
        parsed = await parse_request(request, "image", 1)
        s = validate(schemas.Sampling, {k: v for k, v in parsed.fields.items() if k not in ("image", "name")})
        check_sampling(cfg, s)
        if not _has_explain(engine):
            raise PartError(501, "per-token attribution is not available in this version (no dediffusion.eval.explain)",
                            None)
        if not parsed.images:
            raise PartError(422, "no image given: send multipart field 'files' or JSON 'image' (base64)", "files")
        image = await _one_image(engine, parsed.images[0])
        return await engine.run(engine.explain, image, s.guidance, s.steps, s.seed)


async def _one_image(engine: Engine, part) -> torch.Tensor:
    """The request's only image, decoded; a bad one makes the request bad (422 naming it)."""
    image = (await decode_images(engine, [part]))[0]
    if isinstance(image, str):
        raise PartError(422, image, part.part, part.name)
    return image


def _core_routes(app: FastAPI, engine: Engine, cfg: ServeConfig) -> None:
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
        prompt = check_prompt(engine.model.decoder, req.text)
        if not req.allow_empty and not prompt.tokens:
            raise PartError(422, "text: empty (set allow_empty for an unconditional sample)", "text")
        start = time.perf_counter()
        image = await engine.run(engine.decode, prompt.text, req.guidance, req.steps, req.seed)
        return {"text": prompt.text, "image": png_uri(image, req.scale), "tokens": prompt.tokens,
                "dropped": prompt.dropped, "guidance": req.guidance, "steps": req.steps, "seed": req.seed,
                "seconds": round(time.perf_counter() - start, 3)}

    @app.get("/scene", response_model=schemas.SceneResponse)
    async def scene(seed: int = Query(cfg.scene_seed, ge=0, le=2**32 - 1),
                    index: int | None = Query(None, ge=0, le=2**32 - 1, description="default: a random one"),
                    scale: int = Query(1, ge=1, le=cfg.max_scale)):
        """A world scene for the page: the image and its captions (the human-like one is the comparison)."""
        index = random.randrange(2**31) if index is None else index
        sc = sample_scene(seed, index)
        return {"seed": seed, "index": index, "image": png_uri(render(sc), scale), "human_caption": human_caption(sc),
                "full_caption": full_caption(sc)}


def _has_explain(engine: Engine) -> bool:
    try:
        engine.explain_fn()
        return True
    except ImportError:
        return False
