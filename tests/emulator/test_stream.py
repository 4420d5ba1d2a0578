"""Streaming text generation: Workers AI's SSE format, written incrementally."""

from __future__ import annotations

import json
import time

import requests

from .conftest import ACCOUNT, AUTH, LLAMA, parse_sse


def test_event_stream_format(run):
    payload = {"messages": [{"role": "user", "content": "stream me something"}], "max_tokens": 12}
    response = run(LLAMA, {**payload, "stream": True}, stream=True)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/event-stream"
    raw = list(response.iter_lines())
    # Events are separated by blank lines.
    assert all(line == b"" for line in raw[1::2])
    events = parse_sse(raw)
    assert events[-1] == "[DONE]"
    body = [json.loads(e) for e in events[:-1]]
    tokens, last = body[:-1], body[-1]
    assert tokens and all(set(t) == {"response", "p"} and t["response"] for t in tokens)
    assert last["response"] == ""
    assert last["usage"] == {"prompt_tokens": 3, "completion_tokens": len(tokens),
                             "total_tokens": 3 + len(tokens)}
    assert len(tokens) <= 12

    # The streamed text is exactly the non-streamed response for the same input.
    whole = run(LLAMA, payload).json()["result"]
    assert "".join(t["response"] for t in tokens) == whole["response"]
    assert whole["usage"] == last["usage"]


def test_tokens_arrive_incrementally(emulator):
    emulator.configure(token_delay_ms=60)
    started = time.monotonic()
    response = requests.post(emulator.run_url(ACCOUNT, LLAMA), headers=AUTH,
                             json={"prompt": "slowly please", "stream": True}, stream=True, timeout=30)
    arrivals = []
    for line in response.iter_lines():
        if line.startswith(b"data: "):
            arrivals.append(time.monotonic() - started)
    assert len(arrivals) >= 10  # at least 8 tokens + usage + [DONE]
    # The first token is read long before the stream ends: nothing is buffered.
    assert arrivals[-1] - arrivals[0] >= 0.06 * (len(arrivals) - 2)
    assert arrivals[0] < arrivals[-1] / 2


def test_stream_connection_is_reusable(emulator):
    with requests.Session() as session:
        for _ in range(3):
            response = session.post(emulator.run_url(ACCOUNT, LLAMA), headers=AUTH,
                                    json={"prompt": "again", "stream": True}, stream=True, timeout=10)
            assert parse_sse(list(response.iter_lines()))[-1] == "[DONE]"
        # Plain JSON on the same pooled connection after the chunked streams.
        assert session.post(emulator.run_url(ACCOUNT, LLAMA), headers=AUTH,
                            json={"prompt": "again"}, timeout=10).json()["success"] is True
