"""The remote backend: any OpenAI-compatible chat-completions endpoint, through the ``openai`` client.

The client does the timeouts and the retries (exponential backoff with jitter, or the server's
Retry-After) on connection errors, timeouts, HTTP 408, 409, 429 and 5xx; other HTTP errors and
malformed replies fail at once. Every failure is an ``LLMError`` with one line naming the
endpoint and the reason. ``openai`` comes with the ``llm`` extra and is imported only here.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Sequence

from dediffusion.apps.llm import LLMError, cut_at_stop

API_KEY_ENV = "DEDIFFUSION_LLM_API_KEY"


@dataclass(frozen=True)
class RemoteConfig:
    url: str  # base URL (".../v1") or the full ".../chat/completions" address
    model: str = "default"
    api_key_env: str = API_KEY_ENV  # name of the variable holding the key; unset -> no key sent
    timeout_s: float = 60.0
    retries: int = 2  # extra attempts after the first (the client's max_retries)


def _one_line(text, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class RemoteLLM:
    """Chat completions over HTTP; ``complete(prompt)`` sends the prompt as one user message."""

    def __init__(self, cfg: RemoteConfig):
        if not cfg.url.startswith(("http://", "https://")):
            raise LLMError(f"--llm-url must start with http:// or https:// (got {cfg.url!r})")
        if cfg.timeout_s <= 0 or cfg.retries < 0:
            raise LLMError(f"--llm-timeout must be > 0 and --llm-retries >= 0 (got {cfg.timeout_s:g}, {cfg.retries})")
        try:
            import openai
        except ImportError:
            raise LLMError("--llm-url needs the openai package: pip install 'dediffusion[llm]'") from None
        self.cfg = cfg
        base = cfg.url.rstrip("/").removesuffix("/chat/completions")
        self.endpoint = base + "/chat/completions"
        self.name = f"{cfg.model}@{cfg.url}"
        self._openai = openai
        # the key: read at each request from the variable --llm-key-env names; OPENAI_API_KEY,
        # OPENAI_ORG_ID and OPENAI_PROJECT_ID are not sent to this server
        unsent = {"OpenAI-Organization": openai.Omit(), "OpenAI-Project": openai.Omit()}
        self.client = openai.OpenAI(base_url=base, api_key=self._key, default_headers=unsent,
                                    timeout=cfg.timeout_s, max_retries=cfg.retries)

    def _key(self) -> str:
        return os.environ.get(self.cfg.api_key_env, "")

    def _failure(self, e: Exception) -> LLMError:
        """One line for an ``openai`` exception: the reason and how many attempts were made."""
        openai = self._openai
        if isinstance(e, openai.APITimeoutError):
            why = f"no answer within {self.cfg.timeout_s:g} s"
        elif isinstance(e, openai.APIConnectionError):
            why = f"cannot connect ({_one_line(e.__cause__ or e)})"
        elif isinstance(e, openai.APIStatusError):  # body: the reply's "error" object, or its text
            detail = e.body.get("message", e.body) if isinstance(e.body, dict) else e.body
            why = f"HTTP {e.status_code}" + (f": {_one_line(detail)}" if detail else "")
        else:
            return LLMError(f"LLM at {self.endpoint}: {_one_line(e)}")
        retries = getattr(e, "request", None) and e.request.headers.get("x-stainless-retry-count")
        return LLMError(f"LLM at {self.endpoint}: {why} (after {int(retries or 0) + 1} attempt(s))")

    def chat(self, messages: list[dict], max_tokens: int = 128, stop: Sequence[str] = ()) -> str:
        extra = {"stop": list(stop)[:4]} if stop else {}  # the OpenAI API accepts at most 4
        if not self._key():  # no key: no Authorization header (the client refuses to send none unless told)
            extra["extra_headers"] = {"Authorization": self._openai.Omit()}
        try:  # the raw reply: OpenAI-compatible servers vary, so the JSON is read here, not by the client
            raw = self.client.chat.completions.with_raw_response.create(
                model=self.cfg.model, messages=messages, max_tokens=max_tokens, temperature=0, **extra).text
        except self._openai.OpenAIError as e:
            raise self._failure(e) from None
        try:
            reply = json.loads(raw)
        except ValueError:
            raise LLMError(f"LLM at {self.endpoint}: malformed JSON reply: {_one_line(raw[:200])}") from None
        try:
            content = reply["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise LLMError(f"LLM at {self.endpoint}: reply has no choices[0].message.content: "
                           f"{_one_line(raw)}") from None
        if not isinstance(content, str):
            raise LLMError(f"LLM at {self.endpoint}: choices[0].message.content is not text")
        return cut_at_stop(content, stop).strip()

    def complete(self, prompt: str, max_tokens: int = 16, stop: Sequence[str] = ()) -> str:
        return self.chat([{"role": "user", "content": prompt}], max_tokens, stop)
