"""Server settings: one frozen dataclass, checked once at start."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServeConfig:
    model: str | None = None  # encoder checkpoint folder or shipped:NAME (default: shipped encoder)
    decoder: str | None = None  # decoder folder / diffusers folder / hub id (default: the encoder's own)
    tokens: int | None = None  # emit only the first K tokens (TailDrop encoders)
    # micro-batching of encode requests (batcher.py)
    max_batch: int = 32  # images per forward pass; 1 = one request at a time
    max_wait_ms: float = 5.0  # how long the first waiting image waits for company
    max_queue: int = 512  # images waiting at once; beyond that requests get 503
    # limits on what one request may carry
    max_upload_mb: float = 16.0  # request body
    max_pixels: int = 25_000_000  # per image, read from its header before any pixel is decoded
    max_images: int = 64  # images per request
    max_steps: int = 200  # sampling steps per decode
    max_text_chars: int = 4000  # decode / ask text
    max_scale: int = 16  # nearest-neighbour upscale of returned PNGs
    graceful_timeout_s: int = 30  # on shutdown, in-flight requests get this long to finish
    scene_seed: int = 12345  # scenes drawn for the page (not the training seed 0)
    ask_max_tokens: int | None = None  # longest LLM reply for /ask (None: the ask command's default)
    fusion: float | None = None  # /ask reads the text written from the image (apps/reading.py; None: as ``ask``)

    def __post_init__(self) -> None:
        checks = {"max_batch": self.max_batch >= 1, "max_wait_ms": self.max_wait_ms >= 0,
                  "max_queue": self.max_queue >= 1, "max_upload_mb": self.max_upload_mb > 0,
                  "max_pixels": self.max_pixels >= 1, "max_images": self.max_images >= 1,
                  "max_steps": self.max_steps >= 1, "max_text_chars": self.max_text_chars >= 1,
                  "max_scale": self.max_scale >= 1, "graceful_timeout_s": self.graceful_timeout_s >= 0,
                  "tokens": self.tokens is None or self.tokens >= 1, "fusion": self.fusion is None or self.fusion >= 0}
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"serve settings out of range: {', '.join(f'{n}={getattr(self, n)!r}' for n in bad)}")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)
