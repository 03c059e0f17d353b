"""The remote backend (the ``openai`` client) against a real HTTP server on 127.0.0.1: requests,
retries, timeouts, errors."""
import socket
import sys

import pytest

from dediffusion.apps.llm import LLMError
from dediffusion.apps.remote import RemoteConfig, RemoteLLM

from .openai_server import OpenAIServer


def llm(url, **kw):
    return RemoteLLM(RemoteConfig(url=url, model="smol", **kw))


def test_chat_round_trip_sends_openai_request(monkeypatch):
    monkeypatch.setenv("MY_KEY", "sk-test")
    with OpenAIServer() as s:
        reply = llm(s.url, api_key_env="MY_KEY").chat([{"role": "user", "content": "hi"}], max_tokens=7, stop=("\n",))
        assert reply == "smol: hi"
        (req,) = s.requests
    assert req["path"] == "/v1/chat/completions"
    assert req["body"] == {"model": "smol", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 7,
                           "temperature": 0, "stop": ["\n"]}
    assert req["headers"]["authorization"] == "Bearer sk-test"


def test_complete_is_one_user_message_and_no_key_means_no_header(monkeypatch):
    monkeypatch.delenv("DEDIFFUSION_LLM_API_KEY", raising=False)
    for name in ("OPENAI_API_KEY", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID"):  # only --llm-key-env's variable counts
        monkeypatch.setenv(name, "not-for-this-server")
    with OpenAIServer() as s:
        # the full endpoint address works too; the stop string cuts the reply locally as well
        assert llm(s.url + "/chat/completions").complete("Short answer:\nmore", 5, stop=("\n",)) == "smol: Short answer:"
        (req,) = s.requests
    assert req["body"]["messages"] == [{"role": "user", "content": "Short answer:\nmore"}]
    assert not {"authorization", "openai-organization", "openai-project"} & set(req["headers"])


@pytest.mark.parametrize("status", ["500", "503", "429"])
def test_transient_errors_are_retried(status):
    with OpenAIServer([status, status]) as s:
        assert llm(s.url, retries=2).complete("q") == "smol: q"
        assert len(s.requests) == 3


@pytest.mark.parametrize("retry_after, least_wait", [("0.3", 0.3), ("", 0.375)])
def test_retry_waits_for_retry_after_else_backs_off(retry_after, least_wait):
    # the client's own backoff starts at 0.5 s less up to 25% jitter
    with OpenAIServer(["503"], retry_after=retry_after) as s:
        assert llm(s.url, retries=1).complete("q") == "smol: q"
        first, second = (r["time"] for r in s.requests)
    assert second - first >= least_wait


def test_persistent_500_gives_one_line_error_after_all_attempts():
    with OpenAIServer(["500"] * 3) as s:
        with pytest.raises(LLMError) as e:
            llm(s.url, retries=2).complete("q")
        assert len(s.requests) == 3
    msg = str(e.value)
    assert "\n" not in msg and "HTTP 500" in msg and "after 3 attempt(s)" in msg and s.url in msg


def test_client_errors_are_not_retried():
    with OpenAIServer(["401"]) as s:
        with pytest.raises(LLMError, match=r"HTTP 401: status 401 second line \(after 1 attempt\(s\)\)"):
            llm(s.url, retries=3).complete("q")
        assert len(s.requests) == 1


def test_malformed_json_and_missing_choices_are_clear_errors():
    with OpenAIServer(["malformed", "malformed_json", "no_choices"]) as s:
        for _ in range(2):
            with pytest.raises(LLMError, match="malformed JSON reply: .*not json"):
                llm(s.url).complete("q")
        with pytest.raises(LLMError, match=r"no choices\[0\].message.content"):
            llm(s.url).complete("q")
        assert len(s.requests) == 3


def test_timeout_is_retried_then_reported():
    with OpenAIServer(["slow", "slow"], slow_s=1.0) as s:
        with pytest.raises(LLMError, match=r"no answer within 0.2 s \(after 2 attempt\(s\)\)"):
            llm(s.url, timeout_s=0.2, retries=1).complete("q")
        assert len(s.requests) == 2


def test_timeout_then_success():
    with OpenAIServer(["slow"], slow_s=1.0) as s:
        assert llm(s.url, timeout_s=0.2, retries=1).complete("q") == "smol: q"


def test_connection_refused():
    with socket.socket() as sock:  # a port that was free a moment ago and has no listener now
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(LLMError, match=r"cannot connect .*after 2 attempt\(s\)"):
        llm(f"http://127.0.0.1:{port}/v1", retries=1).complete("q")


def test_bad_url_scheme_timeout_and_retries():
    with pytest.raises(LLMError, match="must start with http"):
        llm("127.0.0.1:8000")
    for bad in ({"timeout_s": 0}, {"retries": -1}):
        with pytest.raises(LLMError, match="--llm-timeout must be > 0 and --llm-retries >= 0"):
            llm("http://127.0.0.1:8000/v1", **bad)


def test_without_openai_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "openai", None)  # import openai -> ImportError
    with pytest.raises(LLMError, match=r"openai package: pip install 'dediffusion\[llm\]'"):
        llm("http://127.0.0.1:8000/v1")
