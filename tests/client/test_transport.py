"""Against a real local HTTP server: incremental streams, cut streams, timeouts,
dropped connections, and fifty threads sharing one pool."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from inference.client import JSONResult, StreamResult, WorkersAIClient
from inference.exceptions import (
    UpstreamConnectionError,
    UpstreamProtocolError,
    UpstreamTimeoutError,
)

from .conftest import ACCOUNT, LLAMA, TOKEN, Exchange, envelope


def event(data: dict | str) -> bytes:
    return f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n".encode()


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "close-delimited"])
def test_stream_is_read_incrementally(local_server, chunked):
    first_seen = threading.Event()
    waited: list[bool] = []

    def handler(x: Exchange) -> None:
        x.start("text/event-stream", chunked=chunked)
        x.write(event({"response": "Hel", "p": "xyz"}))
        # Hold the rest back until the client has parsed the first event: a client
        # that buffered the body would never see it, and we would time out here.
        waited.append(x.wait(first_seen))
        x.write(b'data: {"response":"lo"}\n')  # an event split over two writes
        x.write(b"\n")
        x.write(
            event(
                {"response": "", "usage": {"prompt_tokens": 1, "total_tokens": 3, "neurons": 0.5}}
            )
        )
        x.write(event("[DONE]"))
        x.finish()

    local_server.route(LLAMA, handler)
    with local_server.client() as client:
        stream = client.run(LLAMA, {"prompt": "hi", "stream": True})
        assert isinstance(stream, StreamResult)
        assert stream.headers["Content-Type"] == "text/event-stream"
        first = next(stream)
        first_seen.set()
        rest = list(stream)
    assert waited == [True]
    assert first["response"] == "Hel"
    assert [e["response"] for e in rest] == ["lo", ""]
    assert stream.text == "Hello"
    assert stream.usage == {"prompt_tokens": 1, "total_tokens": 3, "neurons": 0.5}
    assert stream.done is True
    body = json.loads(local_server.seen[0]["body"])
    assert body == {"prompt": "hi", "stream": True}
    assert local_server.seen[0]["path"].endswith("/ai/run/@cf/meta/llama-3.1-8b-instruct-fp8")
    assert local_server.seen[0]["headers"]["Authorization"] == f"Bearer {TOKEN}"


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "close-delimited"])
def test_stream_cut_short_keeps_partial_text_and_usage(local_server, chunked):
    def handler(x: Exchange) -> None:
        x.start("text/event-stream", chunked=chunked)
        x.write(event({"response": "Par"}))
        x.write(event({"response": "tial", "usage": {"completion_tokens": 2, "total_tokens": 5}}))
        x.write(b'data: {"response": "never fini')
        x.hang_up()

    local_server.route(LLAMA, handler)
    client = local_server.client()
    stream = client.run(LLAMA, {"prompt": "hi", "stream": True})
    got = []
    with pytest.raises(UpstreamProtocolError, match="cut short") as info:
        for e in stream:
            got.append(e["response"])
    assert got == ["Par", "tial"]
    assert stream.text == "Partial"
    assert stream.usage == {"completion_tokens": 2, "total_tokens": 5}
    assert stream.done is False
    assert info.value.retryable is False
    assert info.value.status_code == 200


def test_stream_read_timeout_mid_stream(local_server):
    def handler(x: Exchange) -> None:
        x.start("text/event-stream", chunked=True)
        x.write(event({"response": "slow"}))
        x.wait(local_server.stopping)  # then nothing: the client's read must time out

    local_server.route(LLAMA, handler)
    client = local_server.client(timeout=(2.0, 0.3))
    stream = client.run(LLAMA, {"prompt": "hi", "stream": True})
    started = time.monotonic()
    with pytest.raises(UpstreamProtocolError, match="cut short") as info:
        stream.consume()
    assert time.monotonic() - started < 3
    assert stream.text == "slow"
    assert "timed out" in info.value.message.lower()


def test_read_timeout_before_response(local_server):
    local_server.route(LLAMA, lambda x: x.wait(local_server.stopping))
    client = local_server.client(timeout=(2.0, 0.2))
    started = time.monotonic()
    with pytest.raises(UpstreamTimeoutError) as info:
        client.run(LLAMA, {"prompt": "hi"})
    assert time.monotonic() - started < 2
    assert info.value.retryable is True
    assert info.value.status_code is None


def test_per_call_timeout_overrides_default(local_server):
    local_server.route(LLAMA, lambda x: x.wait(local_server.stopping))
    client = local_server.client(timeout=(2.0, 60.0))
    started = time.monotonic()
    with pytest.raises(UpstreamTimeoutError):
        client.run(LLAMA, {"prompt": "hi"}, timeout=0.2)
    assert time.monotonic() - started < 2


def test_socket_closed_without_response(local_server):
    def handler(x: Exchange) -> None:
        x.hang_up()

    local_server.route(LLAMA, handler)
    with pytest.raises(UpstreamConnectionError) as info:
        local_server.client().run(LLAMA, {"prompt": "hi"})
    assert info.value.retryable is True
    assert TOKEN not in str(info.value)


def test_connection_refused():
    with socket.socket() as s:  # find a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = WorkersAIClient(
        ACCOUNT, api_token=TOKEN, base_url=f"http://127.0.0.1:{port}/client/v4"
    )
    with pytest.raises(UpstreamConnectionError) as info:
        client.run(LLAMA, {"prompt": "hi"})
    assert info.value.retryable is True


def test_binary_body_cut_short_is_protocol_error(local_server):
    def handler(x: Exchange) -> None:
        x.http.send_response(200)
        x.http.send_header("Content-Type", "image/png")
        x.http.send_header("Content-Length", "1000")
        x.http.end_headers()
        x.http.wfile.write(b"\x89PNG" + b"\0" * 100)
        x.hang_up()

    local_server.route(LLAMA, handler)
    with pytest.raises(UpstreamProtocolError, match="cut short"):
        local_server.client().run(LLAMA, {"prompt": "hi"})


def test_binary_read_over_the_wire(local_server):
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 1000

    def handler(x: Exchange) -> None:
        x.start("image/png", chunked=True)
        for i in range(0, len(png), 10_000):
            x.write(png[i : i + 10_000])
        x.finish()

    local_server.route(LLAMA, handler)
    result = local_server.client().run(LLAMA, {"prompt": "hi"})
    assert result.content == png
    assert result.content_type == "image/png"


def test_close_stream_early_releases_it(local_server):
    def handler(x: Exchange) -> None:
        x.start("text/event-stream", chunked=True)
        for i in range(1000):
            if local_server.stopping.is_set():
                return
            x.write(event({"response": str(i)}))
            time.sleep(0.005)

    local_server.route(LLAMA, handler)
    client = local_server.client(timeout=(2.0, 2.0))
    with client.run(LLAMA, {"prompt": "hi", "stream": True}) as stream:
        assert next(stream)["response"] == "0"
        assert next(stream)["response"] == "1"
    assert list(stream) == []
    assert stream.text == "01"
    assert stream.error is None and stream.done is False


def test_fifty_threads_share_one_pool(local_server, caplog):
    barrier = threading.Barrier(50, timeout=10)

    def handler(x: Exchange) -> None:
        barrier.wait()  # all fifty requests are in flight on their own connections
        body = json.dumps(envelope({"echo": json.loads(x.body)["n"]})).encode()
        x.http.send_response(200)
        x.http.send_header("Content-Type", "application/json")
        x.http.send_header("Content-Length", str(len(body)))
        x.http.end_headers()
        x.http.wfile.write(body)

    local_server.route(LLAMA, handler)
    caplog.set_level(logging.WARNING, logger="urllib3.connectionpool")
    with local_server.client() as client, ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(lambda n: client.run(LLAMA, {"n": n}), range(50)))
        # Second round reuses the pooled keep-alive connections.
        again = list(pool.map(lambda n: client.run(LLAMA, {"n": n}), range(50)))
    assert all(isinstance(r, JSONResult) for r in results)
    assert [r.result["echo"] for r in results] == list(range(50))
    assert [r.result["echo"] for r in again] == list(range(50))
    assert "Connection pool is full" not in caplog.text
