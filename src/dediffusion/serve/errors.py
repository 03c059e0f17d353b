"""Every failure answers JSON ``{"error", "part"}``: the body-size guard and the exception handlers."""
from __future__ import annotations

import json
import logging

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from dediffusion.serve.batcher import QueueFull
from dediffusion.serve.engine import LLMUnavailable
from dediffusion.serve.uploads import PartError, validation_part

log = logging.getLogger("dediffusion.serve")


def error_response(status: int, message: str, part: str | None, name: str | None = None) -> JSONResponse:
    body = {"error": message, "part": part} | ({"name": name} if name is not None else {})
    return JSONResponse(body, status_code=status)


class BodyTooLarge(HTTPException):
    """Raised while a body is being read, as soon as it passes the limit (an HTTPException, so FastAPI's own
    body parsing passes it through instead of turning it into a 400)."""

    def __init__(self, limit: int):
        super().__init__(413, f"request body exceeds the limit of {limit} bytes (--max-upload-mb)")


class BodyLimit:
    """ASGI middleware: refuse a body over ``limit`` bytes, by its Content-Length or while it streams in."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            message = BodyTooLarge(self.limit).detail if length.isdigit() else "bad Content-Length header"
            body = json.dumps({"error": message, "part": "body"}).encode()
            await send({"type": "http.response.start", "status": 413 if length.isdigit() else 400,
                        "headers": [(b"content-type", b"application/json"), (b"connection", b"close"),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        seen = 0

        async def limited():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise BodyTooLarge(self.limit)
            return message

        await self.app(scope, limited, send)


def install(app: FastAPI) -> None:
    """Exception handlers: known failures -> their 4xx/5xx JSON; anything else -> 500 JSON, logged."""

    @app.exception_handler(PartError)
    async def _part(request: Request, e: PartError):
        return error_response(e.status, e.message, e.part, e.name)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, e: RequestValidationError):
        err = e.errors()[0]
        if err.get("type") == "json_invalid":
            return error_response(400, f"body is not valid JSON ({err.get('ctx', {}).get('error', 'decode error')})",
                                  "body")
        part = validation_part(err.get("loc", ()))
        return error_response(422, f"{part}: {err.get('msg', 'invalid')}", part)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, e: StarletteHTTPException):
        part = "body" if e.status_code in (400, 413) else ("path" if e.status_code in (404, 405) else None)
        return error_response(e.status_code, str(e.detail), part)

    @app.exception_handler(QueueFull)
    async def _full(request: Request, e: QueueFull):
        return JSONResponse({"error": str(e), "part": None}, status_code=503, headers={"Retry-After": "1"})

    @app.exception_handler(LLMUnavailable)
    async def _no_llm(request: Request, e: LLMUnavailable):
        return error_response(503, f"language model unavailable: {e}", "llm")

    @app.exception_handler(ClientDisconnect)
    async def _gone(request: Request, e: ClientDisconnect):
        log.info("client disconnected before its request was read: %s %s", request.method, request.url.path)
        return error_response(400, "client disconnected", "body")  # nobody is there to read it

    @app.exception_handler(Exception)
    async def _bug(request: Request, e: Exception):
        log.exception("internal error on %s %s", request.method, request.url.path)
        return error_response(500, f"internal error: {type(e).__name__}: {e}", None)
