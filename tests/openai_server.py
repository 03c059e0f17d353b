"""A minimal OpenAI-compatible chat-completions server on 127.0.0.1, for tests.

llama-cpp-python (a real OpenAI-compatible server) did not build within 8 minutes on the
2-core machine, so the remote backend is tested against this standard-library server. Each
request takes the next scripted behaviour ("ok" when the script is empty); ``ok`` replies
with the model name and the last user message, so a test can see what was sent.
"""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep test output quiet
        pass

    def _send(self, code: int, body: bytes, ctype: str = "application/json", headers: dict | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout tests)
            pass

    def do_POST(self):  # noqa: N802 - http.server's name
        server = self.server
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        headers = {k.lower(): v for k, v in self.headers.items()}
        server.requests.append({"path": self.path, "headers": headers, "body": body, "time": time.monotonic()})
        behaviour = server.script.pop(0) if server.script else "ok"
        if self.path != "/v1/chat/completions":
            return self._send(404, b'{"error": "not found"}')
        if behaviour == "ok":
            last = body["messages"][-1]["content"]
            reply = {"object": "chat.completion", "model": body["model"],
                     "choices": [{"index": 0, "message": {"role": "assistant", "content": f"{body['model']}: {last}"},
                                  "finish_reason": "stop"}]}
            return self._send(200, json.dumps(reply).encode())
        if behaviour == "slow":
            time.sleep(server.slow_s)
            return self._send(200, b'{"choices": [{"message": {"content": "late"}}]}')
        if behaviour == "malformed":
            return self._send(200, b"<html>not json", "text/html")
        if behaviour == "malformed_json":  # says JSON, is not
            return self._send(200, b"{not json")
        if behaviour == "no_choices":
            return self._send(200, b'{"choices": []}')
        code = int(behaviour)  # an HTTP error status, with the server's Retry-After when one is set
        retry_after = {"Retry-After": server.retry_after} if server.retry_after else {}
        return self._send(code, json.dumps({"error": {"message": f"status {code}\nsecond line"}}).encode(),
                          headers=retry_after)


class OpenAIServer:
    """``with OpenAIServer(script) as s:`` -> ``s.url`` is ``http://127.0.0.1:PORT/v1``.

    Error replies carry ``Retry-After: retry_after`` (seconds, a string) unless it is empty; the
    ``openai`` client waits that long before retrying instead of its own backoff.
    """

    def __init__(self, script: list[str] | None = None, slow_s: float = 1.0, retry_after: str = "0.01"):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.script = list(script or [])
        self.httpd.requests = []
        self.httpd.slow_s = slow_s
        self.httpd.retry_after = retry_after
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    @property
    def requests(self) -> list[dict]:
        return self.httpd.requests

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
