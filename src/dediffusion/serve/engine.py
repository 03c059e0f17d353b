"""The model side of the server: one worker thread runs every torch call, in order.

One thread keeps CPU threads from fighting each other and keeps results
reproducible (a decode with a seed gives the same image as ``dediffusion decode``);
the event loop only parses requests and waits. Encoding goes through the
micro-batcher; decode, reconstruct, ask and explain are submitted one by one.
"""
from __future__ import annotations

import asyncio
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import torch

from dediffusion.apps.answer import MAX_TOKENS, replies
from dediffusion.apps.llm import LLMError
from dediffusion.apps.llm_prompts import extract_answer
from dediffusion.apps.reading import reader_texts, reader_weight
from dediffusion.model.autoencoder import load_model as load_encoder
from dediffusion.model.sampling import generate
from dediffusion.serve.batcher import MicroBatcher
from dediffusion.serve.settings import ServeConfig


def load_model(cfg: ServeConfig):
    """The encoder checkpoint (and its decoder) the CLI's ``--model`` / ``--decoder`` / ``--tokens`` name."""
    return load_encoder(cfg.model, cfg.decoder, cfg.tokens)


class LLMUnavailable(Exception):
    """The language model for /ask could not be loaded; the message says why."""


class Engine:
    def __init__(self, cfg: ServeConfig, model, llm_factory: Callable[[], object] | None = None):
        self.cfg, self.model = cfg, model
        reader_weight(model, cfg.fusion)  # a --fusion the encoder's words do not allow fails at start
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dediffusion-torch")
        self.batcher = MicroBatcher(self._encode_batch, self.executor, cfg.max_batch, cfg.max_wait_ms / 1000,
                                    cfg.max_queue)
        self._llm_factory, self._llm, self._llm_lock = llm_factory, None, threading.Lock()
        self.started = time.time()
        self.pending = 0  # decode / reconstruct / ask / explain calls queued or running

    @property
    def resolution(self) -> int:
        return self.model.decoder.resolution

    def info(self) -> dict:
        head, enc = self.model.cfg.head, self.model.cfg.encoder
        return {"encoder": str(self.cfg.model or "shipped:encoder"),
                "decoder": str(self.cfg.decoder or self.model.cfg.decoder_path or "shipped:decoder"),
                "resolution": self.resolution, "tokens": head.inference_tokens or enc.num_tokens,
                "train_seed": self.model.cfg.train_seed}

    # --- lifecycle (the app's lifespan) ------------------------------------------------
    def start(self) -> None:
        self.batcher.start()

    async def stop(self) -> None:
        await self.batcher.stop()
        await asyncio.get_running_loop().run_in_executor(None, self.executor.shutdown, True)

    async def run(self, fn, *args):
        """``fn(*args)`` in the worker thread, after whatever is already there."""
        self.pending += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)
        finally:
            self.pending -= 1

    # --- torch work, called in the worker thread ----------------------------------------
    def _encode_batch(self, images: torch.Tensor) -> list[str]:
        with torch.inference_mode():
            return self.model.texts(images)

    def decode(self, text: str, guidance: float, steps: int, seed: int) -> torch.Tensor:
        """One prompt -> (3,H,W) in [0,1]; batch of one, so the seed alone fixes the image."""
        with warnings.catch_warnings(), torch.inference_mode():
            warnings.filterwarnings("ignore", message="prompt truncated")  # reported as "dropped"
            return generate(self.model.decoder, [text], steps=steps, guidance=guidance, seed=seed)[0]

    def reader_text(self, image: torch.Tensor) -> str:
        """The text /ask gives the LLM for one (3,H,W) image: the reader's text (sentences), as ``dediffusion ask``."""
        return reader_texts(self.model, image[None], self.cfg.fusion)[0]

    def ask(self, context: str, question: str) -> tuple[str, str]:
        """(answer phrase, raw reply) of the LLM for one question about one context text."""
        reply = replies(self.llm(), [(context, question, ())], self.cfg.ask_max_tokens or MAX_TOKENS)[0]
        return extract_answer(reply), reply

    def llm(self):
        """The LLM, loaded on first use (the default one takes seconds and ~0.5 GB)."""
        with self._llm_lock:
            if self._llm is None:
                if self._llm_factory is None:
                    raise LLMUnavailable("this server was started without a language model")
                try:
                    self._llm = self._llm_factory()
                except LLMError as e:
                    raise LLMUnavailable(str(e)) from None
            return self._llm

    @staticmethod
    def explain_fn():
        """``dediffusion.eval.explain.explain_image`` (ImportError where it is not there: the caller answers 501)."""
        from dediffusion.eval.explain import explain_image

        return explain_image

    def explain(self, image: torch.Tensor, guidance: float, steps: int, seed: int) -> dict:
        return self.explain_fn()(self.model, image, seed=seed, guidance=guidance, steps=steps)
