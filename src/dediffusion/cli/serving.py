"""``dediffusion serve``: the HTTP API and web page on uvicorn; ``add_parsers`` hooks it into ``dediffusion``."""
from __future__ import annotations

import sys

from dediffusion.cli.ask import build_llm, fusion_flag, llm_flags
from dediffusion.serve.settings import ServeConfig

MISSING = "dediffusion serve needs FastAPI and uvicorn: pip install 'dediffusion[serve]'"


def config_from_args(a) -> ServeConfig:
    return ServeConfig(model=a.model, decoder=a.decoder, tokens=a.tokens, max_batch=a.max_batch,
                       max_wait_ms=a.max_wait_ms, max_queue=a.max_queue, max_upload_mb=a.max_upload_mb,
                       max_pixels=a.max_pixels, max_images=a.max_images, max_steps=a.max_steps,
                       graceful_timeout_s=a.graceful_timeout, ask_max_tokens=a.max_tokens, fusion=a.fusion)


def cmd_serve(a) -> int:
    try:
        import uvicorn

        from dediffusion.serve.app import create_app
    except ImportError:
        print(f"error: {MISSING}", file=sys.stderr)
        return 2
    cfg = config_from_args(a)
    app = create_app(cfg, llm_factory=lambda: build_llm(a))
    print(f"dediffusion serve: http://{a.host}:{a.port}/ (API docs at /docs); Ctrl-C stops", file=sys.stderr)
    uvicorn.run(app, host=a.host, port=a.port, log_level=a.log_level, timeout_graceful_shutdown=cfg.graceful_timeout_s)
    return 0


def add_parsers(sub) -> None:
    d = ServeConfig()
    p = sub.add_parser("serve", help="HTTP API (encode, decode, reconstruct, ask) and a web page at /")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0: every interface)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--model", help="encoder checkpoint folder (default: shipped)")
    p.add_argument("--decoder", metavar="PATH_OR_ID", help="decoder folder, diffusers folder or hub id "
                   "(default: the one the encoder was trained against)")
    p.add_argument("--tokens", type=int, metavar="K", help="emit the first K tokens of each text")
    p.add_argument("--max-batch", type=int, default=d.max_batch, help="images per forward pass (1: no batching)")
    p.add_argument("--max-wait-ms", type=float, default=d.max_wait_ms,
                   help="how long a waiting image waits for others to share its batch")
    p.add_argument("--max-queue", type=int, default=d.max_queue, help="images waiting at once; beyond it, 503")
    p.add_argument("--max-upload-mb", type=float, default=d.max_upload_mb, help="largest request body")
    p.add_argument("--max-pixels", type=int, default=d.max_pixels, help="largest image (width x height)")
    p.add_argument("--max-images", type=int, default=d.max_images, help="images per request")
    p.add_argument("--max-steps", type=int, default=d.max_steps, help="sampling steps per decode")
    p.add_argument("--graceful-timeout", type=int, default=d.graceful_timeout_s,
                   help="seconds in-flight requests get to finish on shutdown")
    p.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"))
    fusion_flag(p)
    llm_flags(p)
    p.set_defaults(func=cmd_serve, max_tokens=None)
