"""Fixtures for the client tests: a ``responses`` mock, and a real local HTTP server.

The server exists for what ``responses`` cannot fake: bodies that arrive over time,
connections cut mid-stream, reads that time out and sockets closed with no answer.
Each test registers a handler per model name; the handler writes to the socket.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import responses

from inference.client import WorkersAIClient

ACCOUNT = "acc123"
TOKEN = "tok-SECRET-123"
API = "https://api.cloudflare.com/client/v4"
RUN = f"{API}/accounts/{ACCOUNT}/ai/run"
LLAMA = "@cf/meta/llama-3.1-8b-instruct-fp8"


def envelope(result: Any = None, *, errors: list | None = None, success: bool = True) -> dict:
    return {"result": result, "success": success, "errors": errors or [], "messages": []}


def sse_body(*events: Any, done: bool = True) -> bytes:
    lines = [f"data: {json.dumps(e) if not isinstance(e, str) else e}\n\n" for e in events]
    if done:
        lines.append("data: [DONE]\n\n")
    return "".join(lines).encode()


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def client() -> Iterator[WorkersAIClient]:
    with WorkersAIClient(ACCOUNT, api_token=TOKEN) as c:
        yield c


# -- the local server -----------------------------------------------------------------

Handler = Callable[["Exchange"], None]


@dataclass
class Exchange:
    """One request as the handler sees it, with helpers to answer in odd ways."""

    http: BaseHTTPRequestHandler
    body: bytes
    server: LocalServer

    def start(self, content_type: str, *, chunked: bool, status: int = 200) -> None:
        self.chunked = chunked
        self.http.send_response(status)
        self.http.send_header("Content-Type", content_type)
        if chunked:
            self.http.send_header("Transfer-Encoding", "chunked")
        else:
            # HTTP/1.0-style: the body ends when the socket closes.
            self.http.send_header("Connection", "close")
            self.http.close_connection = True
        self.http.end_headers()
        self.http.wfile.flush()

    def write(self, data: bytes) -> None:
        if self.chunked:
            data = b"%x\r\n%s\r\n" % (len(data), data)
        self.http.wfile.write(data)
        self.http.wfile.flush()

    def finish(self) -> None:
        if self.chunked:
            self.http.wfile.write(b"0\r\n\r\n")
            self.http.wfile.flush()

    def hang_up(self) -> None:
        """Close the socket now, mid-body (no terminating chunk)."""
        self.http.close_connection = True
        self.http.wfile.flush()
        self.http.connection.shutdown(2)

    def wait(self, event: threading.Event, timeout: float = 5.0) -> bool:
        return event.wait(timeout)


@dataclass
class LocalServer:
    base_url: str
    handlers: dict[str, Handler] = field(default_factory=dict)
    seen: list[dict[str, Any]] = field(default_factory=list)
    # Set at teardown so handlers blocked in wait() give up quickly.
    stopping: threading.Event = field(default_factory=threading.Event)

    def route(self, model: str, handler: Handler) -> None:
        self.handlers[model] = handler

    def client(self, **kwargs: Any) -> WorkersAIClient:
        return WorkersAIClient(ACCOUNT, api_token=TOKEN, base_url=self.base_url, **kwargs)


@pytest.fixture
def local_server() -> Iterator[LocalServer]:
    state: dict[str, LocalServer] = {}

    class RequestHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            server = state["server"]
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            prefix = f"/client/v4/accounts/{ACCOUNT}/ai/run/"
            model = self.path.removeprefix(prefix)
            server.seen.append({"path": self.path, "headers": dict(self.headers), "body": body})
            handler = server.handlers.get(model)
            if handler is None:
                self.send_error(404, f"no handler for {model}")
                return
            try:
                handler(Exchange(self, body, server))
            except (BrokenPipeError, ConnectionResetError, OSError):
                self.close_connection = True  # the client went away: fine

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), RequestHandler)
    httpd.daemon_threads = True
    host, port = httpd.server_address[:2]
    server = LocalServer(base_url=f"http://{host}:{port}/client/v4")
    state["server"] = server
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield server
    finally:
        server.stopping.set()
        httpd.shutdown()
        httpd.server_close()
        time.sleep(0.01)
