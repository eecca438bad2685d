"""A scripted OpenAI-compatible chat completions server on 127.0.0.1, for the agent's tests.

    with OpenAIServer() as server:
        server.script(tool_calls(("get_row", {...})), answer({...}))
        client = openai.AsyncOpenAI(api_key=..., base_url=server.base_url)

Each ``POST /v1/chat/completions`` takes the next scripted `Reply` (a 500 "script exhausted"
once they run out) and is kept in `server.requests`, so a test can assert what the model was
sent. Real sockets, a real HTTP server in a thread: the real `openai` client talks to it.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    """One request the server received."""

    path: str
    headers: dict[str, str]
    body: Any

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages", [])) if isinstance(self.body, dict) else []

    @property
    def authorization(self) -> str:
        return self.headers.get("authorization", "")


Body = bytes | Callable[[Received], bytes]


@dataclass(frozen=True)
class Reply:
    """One scripted response: a status, a body (or a function of the request) and a delay."""

    body: Body
    status: int = 200
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


_ids = itertools.count(1)


def completion(message: dict[str, Any], finish_reason: str = "stop") -> Reply:
    """A 200 chat completion whose one choice is *message*."""
    data = {
        "id": f"chatcmpl-{next(_ids)}",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "scripted",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "refusal": None, **message},
                "finish_reason": finish_reason,
                "logprobs": None,
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }
    return Reply(json.dumps(data).encode())


def text(content: str, finish_reason: str = "stop") -> Reply:
    """The assistant answers with *content*, verbatim (malformed JSON included)."""
    return completion({"content": content}, finish_reason)


def answer(proposal: dict[str, Any]) -> Reply:
    """The assistant answers with *proposal* as JSON."""
    return text(json.dumps(proposal))


def tool_calls(*calls: tuple[str, Any]) -> Reply:
    """The assistant calls tools: (name, arguments), arguments a dict or a raw JSON string."""
    items = [
        {
            "id": f"call_{next(_ids)}",
            "type": "function",
            "function": {
                "name": name,
                "arguments": args if isinstance(args, str) else json.dumps(args),
            },
        }
        for name, args in calls
    ]
    return completion({"content": None, "tool_calls": items}, "tool_calls")


def refusal(reason: str) -> Reply:
    return completion({"content": None, "refusal": reason})


def error(status: int, message: str, *, retry_after_ms: int | None = None) -> Reply:
    """An OpenAI-style error response."""
    body = {"error": {"message": message, "type": "test_error", "param": None, "code": None}}
    headers = {} if retry_after_ms is None else {"retry-after-ms": str(retry_after_ms)}
    return Reply(json.dumps(body).encode(), status=status, headers=headers)


def bad_key() -> Reply:
    """A 401 that quotes the whole key it was sent back, as a careless server might."""

    def body(request: Received) -> bytes:
        key = request.authorization.removeprefix("Bearer ")
        message = f"Incorrect API key provided: {key}."
        return json.dumps({"error": {"message": message, "code": "invalid_api_key"}}).encode()

    return Reply(body, status=401)


def delayed(reply: Reply, seconds: float) -> Reply:
    return Reply(reply.body, reply.status, seconds, reply.headers)


class OpenAIServer:
    """The server; `base_url` is what an OpenAI client takes (``http://127.0.0.1:PORT/v1``)."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self._script: list[Reply] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._http.daemon_threads = True
        self._thread = threading.Thread(
            target=self._http.serve_forever, args=(0.05,), name="openai-server"
        )
        self._thread.start()

    @property
    def base_url(self) -> str:
        host, port = self._http.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def script(self, *replies: Reply) -> None:
        """Append replies, served in order."""
        with self._lock:
            self._script.extend(replies)

    @property
    def remaining(self) -> int:
        with self._lock:
            return len(self._script)

    def close(self) -> None:
        self._closing.set()  # cuts delays short
        self._http.shutdown()
        self._http.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> OpenAIServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _next(self, received: Received) -> Reply:
        with self._lock:
            self.requests.append(received)
            if received.path != "/v1/chat/completions":
                return error(404, f"no route {received.path}")
            if not self._script:
                return error(500, "the test server's script is exhausted")
            return self._script.pop(0)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length)
                try:
                    body: Any = json.loads(raw)
                except ValueError:
                    body = raw.decode("utf-8", "replace")
                headers = {k.lower(): v for k, v in self.headers.items()}
                received = Received(self.path, headers, body)
                reply = server._next(received)
                if reply.delay and server._closing.wait(reply.delay):
                    return
                data = reply.body(received) if callable(reply.body) else reply.body
                try:
                    self.send_response(reply.status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (its timeout): nothing to answer

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output clean

        return Handler
