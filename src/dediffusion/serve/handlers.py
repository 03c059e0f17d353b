"""What the endpoints share: request bodies documented for JSON or multipart, images decoded off the
event loop, the server's sampling caps, one result per image part."""
from __future__ import annotations

import asyncio
import base64
import io

import torch
from fastapi import Request

from dediffusion.data.images import ImageInputError, to_pil
from dediffusion.serve import schemas
from dediffusion.serve.engine import Engine
from dediffusion.serve.settings import ServeConfig
from dediffusion.serve.uploads import ImagePart, PartError, decode_image, image_size, parse_request, validate

INLINE_PIXELS = 128 * 128  # images this small decode faster on the event loop than a hop to a thread


def png_uri(image, scale: int = 1) -> str:
    """(3,H,W) in [0,1] or (H,W,3) uint8 -> ``data:image/png;base64,...``."""
    buf = io.BytesIO()
    to_pil(image, scale).save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def body_doc(json_model, form_fields: dict) -> dict:
    """OpenAPI request body for endpoints that take JSON or multipart (``files`` and ``form_fields``)."""
    files = {"type": "array", "items": {"type": "string", "format": "binary"}}
    form = {"type": "object", "properties": {"files": files, **form_fields}, "required": ["files"]}
    return {"requestBody": {"required": True, "content": {
        "application/json": {"schema": json_model.model_json_schema()}, "multipart/form-data": {"schema": form}}}}


async def decode_images(engine: Engine, parts: list[ImagePart]) -> list[torch.Tensor | str]:
    """Decode the parts (large ones off the event loop): a tensor per good image, the error message per bad one."""
    def one(part: ImagePart, size):
        try:
            return decode_image(part, engine.resolution, engine.cfg.max_pixels, size)
        except ImageInputError as e:
            return str(e)

    async def decode(part: ImagePart):
        size = image_size(part.data)  # the header only, read once
        if size and size[0] * size[1] <= INLINE_PIXELS:
            return one(part, size)
        return await asyncio.to_thread(one, part, size)

    return list(await asyncio.gather(*map(decode, parts)))


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
    if all(isinstance(x, str) for x in images):  # all bad: 422 naming the first (among good ones: one result each)
        raise PartError(422, images[0], parsed.images[0].part, parsed.images[0].name)
    texts = iter(await engine.batcher.submit([x for x in images if not isinstance(x, str)]))
    return parsed.images, settings, images, [None if isinstance(x, str) else next(texts) for x in images]


def result(part: ImagePart, image, text) -> dict:
    return {"part": part.part, "name": part.name} | ({"error": image} if isinstance(image, str) else {"text": text})
