"""Reading a request: images and fields from multipart uploads or JSON, each bad part named.

A request whose shape is wrong (no images, too many, bad JSON, a field out of
range) raises ``PartError`` -> one 4xx JSON answer ``{"error", "part"}``. A bad
image among good ones is not the request's fault alone: it becomes one failed
result (``{"part", "name", "error"}``) and the others are answered.
"""
from __future__ import annotations

import base64
import binascii
import io
import json
import warnings
from dataclasses import dataclass, field

from PIL import Image
from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile

from dediffusion.data.images import ImageInputError, display_path, load_image_bytes

JSON_TYPES = ("application/json",)
MULTIPART = "multipart/form-data"
MAX_FORM_FIELDS = 32
MAX_FIELD_BYTES = 64 * 1024


class PartError(Exception):
    """A request that cannot be served as sent: the status, the message and the part it is about."""

    def __init__(self, status: int, message: str, part: str | None, name: str | None = None):
        super().__init__(message)
        self.status, self.message, self.part, self.name = status, message, part, name


@dataclass
class ImagePart:
    part: str  # files[0], images[2], image
    name: str  # the upload's file name, or the name given in JSON (else the part)
    data: bytes | None = None
    error: str | None = None  # known bad before decoding (e.g. not base64)


@dataclass
class Parsed:
    images: list[ImagePart] = field(default_factory=list)
    fields: dict = field(default_factory=dict)  # everything else, for a pydantic model


def validation_part(loc) -> str:
    """A pydantic error location -> ``images[2]`` / ``steps``; FastAPI's leading ``body`` / ``query`` dropped."""
    loc = [p for p in loc if p not in ("body", "query", "path")] or ["body"]
    out = str(loc[0])
    for p in loc[1:]:
        out += f"[{p}]" if isinstance(p, int) else f".{p}"
    return out


def validate(model: type[BaseModel], data: dict) -> BaseModel:
    try:
        return model.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        part = validation_part(err["loc"])
        raise PartError(422, f"{part}: {err['msg']}", part) from None


async def parse_request(request, image_field: str, max_images: int) -> Parsed:
    """JSON or multipart -> images (not yet decoded) and the other fields."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == MULTIPART:
        parsed = await _parse_multipart(request, max_images)
    elif ctype in JSON_TYPES or ctype.endswith("+json"):
        parsed = await _parse_json(request, image_field)
    else:
        raise PartError(415, f"unsupported content type {ctype or '(none)'!r}: send multipart/form-data "
                        f"or application/json", "content-type")
    if len(parsed.images) > max_images:
        raise PartError(413, f"{len(parsed.images)} images in one request; the limit is {max_images}",
                        image_field if ctype != MULTIPART else "files")
    return parsed


async def _parse_multipart(request, max_images: int) -> Parsed:
    form = await request.form(max_files=max_images + 1, max_fields=MAX_FORM_FIELDS, max_part_size=MAX_FIELD_BYTES)
    parsed, counts = Parsed(), {}
    try:
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                i = counts[key] = counts.get(key, -1) + 1
                part = f"{key}[{i}]"
                parsed.images.append(ImagePart(part, display_path(value.filename or part), await value.read()))
            elif key in parsed.fields:
                raise PartError(422, f"{key}: given twice", key)
            else:
                parsed.fields[key] = value
    finally:
        await form.close()
    return parsed


async def _parse_json(request, image_field: str) -> Parsed:
    try:
        data = json.loads(await request.body())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PartError(400, f"body is not valid JSON ({e})", "body") from None
    if not isinstance(data, dict):
        raise PartError(422, "body must be a JSON object", "body")
    parsed = Parsed(fields=dict(data))
    images = data.get(image_field)
    if images is None:
        return parsed
    if isinstance(images, list):
        names = data.get("names") if isinstance(data.get("names"), list) else []
        items = [(f"{image_field}[{i}]", names[i] if i < len(names) else None, x) for i, x in enumerate(images)]
    else:
        items = [(image_field, data.get("name"), images)]
    for part, name, item in items:
        if not isinstance(item, str):
            raise PartError(422, f"{part}: must be a base64 string", part)
        parsed.images.append(_from_base64(part, display_path(name) if isinstance(name, str) else part, item))
    return parsed


def _from_base64(part: str, name: str, text: str) -> ImagePart:
    if text.startswith("data:"):
        text = text.partition(",")[2]
    try:
        return ImagePart(part, name, base64.b64decode(text, validate=True))
    except (binascii.Error, ValueError):
        return ImagePart(part, name, error=f"{name}: not valid base64")


def decode_image(image: ImagePart, resolution: int, max_pixels: int, size: tuple[int, int] | None):
    """Bytes -> (3,R,R) in [0,1] like ``dediffusion encode`` reads a file; ImageInputError names the image.

    ``size``: the header's (width, height) as ``image_size`` read it (None: unreadable, the decoder says why)."""
    if image.error:
        raise ImageInputError(image.error)
    if size and size[0] * size[1] > max_pixels:
        raise ImageInputError(f"{image.name}: {size[0]}x{size[1]} pixels exceeds the server's limit of {max_pixels}")
    return load_image_bytes(image.data, image.name, resolution)


def image_size(data: bytes | None) -> tuple[int, int] | None:
    """(width, height) from the header, or None where it cannot be read (the decoder then says why)."""
    if not data:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as im:
                return im.size
    except Exception:
        return None
