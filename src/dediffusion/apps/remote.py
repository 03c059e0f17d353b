"""The remote backend: any OpenAI-compatible chat-completions endpoint, standard library only.

Timeouts, retries with exponential backoff on connection errors, timeouts, HTTP 429
and 5xx; other HTTP errors and malformed replies fail at once. Every failure is an
``LLMError`` with one line naming the endpoint and the reason.
"""
from __future__ import annotations

import json
import os
import socket
import time
import urllib.error
import urllib.request
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
    retries: int = 2  # extra attempts after the first
    backoff_s: float = 1.0  # wait before retry i is backoff_s * 2**i


class _Retryable(Exception):
    pass


def _endpoint(url: str) -> str:
    url = url.rstrip("/")
    return url if url.endswith("/chat/completions") else url + "/chat/completions"


def _one_line(text: str, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _error_detail(raw: bytes) -> str:
    """The message of an OpenAI-style ``{"error": {"message": ...}}`` body, else the body itself."""
    text = raw.decode("utf-8", "replace")
    try:
        error = json.loads(text).get("error")
        text = error.get("message", text) if isinstance(error, dict) else (error or text)
    except (json.JSONDecodeError, AttributeError):
        pass
    return _one_line(text)


class RemoteLLM:
    """Chat completions over HTTP; ``complete(prompt)`` sends the prompt as one user message."""

    def __init__(self, cfg: RemoteConfig):
        if not cfg.url.startswith(("http://", "https://")):
            raise LLMError(f"--llm-url must start with http:// or https:// (got {cfg.url!r})")
        self.cfg = cfg
        self.endpoint = _endpoint(cfg.url)
        self.name = f"{cfg.model}@{cfg.url}"

    def _post(self, body: dict) -> dict:
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.cfg.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        req = urllib.request.Request(self.endpoint, data=json.dumps(body).encode(), headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.cfg.timeout_s) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as e:
            detail = _error_detail(e.read())
            msg = f"HTTP {e.code}" + (f": {detail}" if detail else "")
            if e.code == 429 or e.code >= 500:
                raise _Retryable(msg) from None
            raise LLMError(f"LLM at {self.endpoint}: {msg}") from None
        except (socket.timeout, TimeoutError):
            raise _Retryable(f"no answer within {self.cfg.timeout_s:g} s") from None
        except urllib.error.URLError as e:
            reason = e.reason
            if isinstance(reason, (socket.timeout, TimeoutError)):
                raise _Retryable(f"no answer within {self.cfg.timeout_s:g} s") from None
            raise _Retryable(f"cannot connect ({_one_line(reason)})") from None
        except (ConnectionError, OSError) as e:  # reset mid-read, etc.
            raise _Retryable(f"connection failed ({_one_line(e)})") from None
        try:
            return json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise LLMError(f"LLM at {self.endpoint}: malformed JSON reply: {_one_line(raw[:200])}") from None

    def _post_with_retries(self, body: dict) -> dict:
        attempts = self.cfg.retries + 1
        for i in range(attempts):
            try:
                return self._post(body)
            except _Retryable as e:
                if i + 1 == attempts:
                    raise LLMError(f"LLM at {self.endpoint}: {e} (after {attempts} attempt(s))") from None
                time.sleep(self.cfg.backoff_s * 2**i)
        raise AssertionError("unreachable")

    def chat(self, messages: list[dict], max_tokens: int = 128, stop: Sequence[str] = ()) -> str:
        body = {"model": self.cfg.model, "messages": messages, "max_tokens": max_tokens, "temperature": 0}
        if stop:
            body["stop"] = list(stop)[:4]  # the OpenAI API accepts at most 4
        reply = self._post_with_retries(body)
        try:
            content = reply["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise LLMError(f"LLM at {self.endpoint}: reply has no choices[0].message.content: "
                           f"{_one_line(json.dumps(reply))}") from None
        if not isinstance(content, str):
            raise LLMError(f"LLM at {self.endpoint}: choices[0].message.content is not text")
        return cut_at_stop(content, stop).strip()

    def complete(self, prompt: str, max_tokens: int = 16, stop: Sequence[str] = ()) -> str:
        return self.chat([{"role": "user", "content": prompt}], max_tokens, stop)
