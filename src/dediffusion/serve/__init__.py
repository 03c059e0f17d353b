"""The HTTP service: ``dediffusion serve`` (FastAPI + uvicorn; ``pip install 'dediffusion[serve]'``).

``create_app(ServeConfig(...))`` builds the app: JSON endpoints for encode, decode, reconstruct,
ask and explain, a world-scene source for the web page at ``/``, micro-batched encoding
(``batcher.py``) and one worker thread for all torch work (``engine.py``). The library never
imports this package.
"""
from dediffusion.serve.settings import ServeConfig

__all__ = ["ServeConfig", "create_app"]


def create_app(cfg: ServeConfig | None = None, **kw):
    """The FastAPI app (imports FastAPI lazily: the library works without the ``serve`` extra)."""
    from dediffusion.serve.app import create_app as _create

    return _create(cfg or ServeConfig(), **kw)
