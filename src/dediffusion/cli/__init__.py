"""The ``dediffusion`` command line (``main``); ``python -m dediffusion.cli`` runs it too."""
from dediffusion.cli.main import main

__all__ = ["main"]
