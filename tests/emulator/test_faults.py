"""Fault injection: queued faults (Python API and HTTP) and in-band markers."""

from __future__ import annotations

import time

import pytest
import requests

from .conftest import FLUX, LLAMA, parse_sse


def _post_faults(emulator, *faults: dict) -> requests.Response:
    return requests.post(f"{emulator.url}/_emulator/faults", json={"faults": list(faults)}, timeout=10)


def test_429_3040_with_retry_after_then_recovers(emulator, run):
    emulator.add_fault("429_3040", retry_after=7)
    response = run(LLAMA, {"prompt": "hi"})
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"
    body = response.json()
    assert body["success"] is False and body["result"] is None
    assert body["errors"][0]["code"] == 3040 and "try again" in body["errors"][0]["message"]
    assert run(LLAMA, {"prompt": "hi"}).status_code == 200


def test_429_3036_daily_allocation(emulator, run):
    emulator.add_fault("429_3036")
    response = run(LLAMA, {"prompt": "hi"})
    assert response.status_code == 429 and "Retry-After" not in response.headers
    assert response.json()["errors"][0]["code"] == 3036


def test_500_error_envelope(emulator, run):
    emulator.add_fault("500", count=2)
    assert [run(LLAMA, {"prompt": "hi"}).status_code for _ in range(3)] == [500, 500, 200]


def test_500_body_is_cloudflare_envelope(emulator, run):
    emulator.add_fault("500")
    body = run(LLAMA, {"prompt": "hi"}).json()
    assert body["success"] is False and body["errors"][0]["code"] and body["messages"] == []


def test_slow_fault_delays_then_answers(emulator, run):
    emulator.add_fault("slow", delay_ms=300)
    started = time.monotonic()
    response = run(LLAMA, {"prompt": "hi"})
    assert time.monotonic() - started >= 0.3
    assert response.status_code == 200 and response.json()["success"] is True


def test_invalid_json(emulator, run):
    emulator.add_fault("invalid_json")
    response = run(LLAMA, {"prompt": "hi"})
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/json"
    with pytest.raises(ValueError):
        response.json()


def test_cut_stream_on_sse(emulator, run):
    emulator.add_fault("cut_stream")
    response = run(LLAMA, {"prompt": "hi", "stream": True}, stream=True)
    lines: list[bytes] = []
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        for line in response.iter_lines():
            lines.append(line)
    events = parse_sse(lines)
    assert 1 <= len(events) <= 3
    assert "[DONE]" not in events and all('"usage"' not in e for e in events)


def test_cut_stream_on_plain_response(emulator, run):
    emulator.add_fault("cut_stream", model=FLUX)
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        run(FLUX, {"prompt": "a cat"})


def test_drop_closes_without_response(emulator, run):
    emulator.add_fault("drop")
    with pytest.raises(requests.ConnectionError):
        run(LLAMA, {"prompt": "hi"})
    assert emulator.requests[-1]["status"] is None and emulator.requests[-1]["fault"] == "drop"
    assert run(LLAMA, {"prompt": "hi"}).status_code == 200


def test_faults_are_fifo_and_filtered_by_model_pattern(emulator, run):
    response = _post_faults(emulator, {"kind": "500", "model": "@cf/black-forest-labs/*"},
                            {"kind": "429_3040"}, {"kind": "429_3036"})
    assert response.status_code == 200 and len(response.json()["faults"]) == 3
    # The llama request skips the flux-only fault and takes the first general one.
    assert run(LLAMA, {"prompt": "hi"}).json()["errors"][0]["code"] == 3040
    assert run(FLUX, {"prompt": "hi"}).status_code == 500
    assert run(FLUX, {"prompt": "hi"}).json()["errors"][0]["code"] == 3036
    assert run(FLUX, {"prompt": "hi"}).status_code == 200
    assert requests.get(f"{emulator.url}/_emulator/faults", timeout=10).json() == {"faults": []}


def test_faults_do_not_fire_on_rejected_requests(emulator, run):
    emulator.add_fault("500")
    assert run(LLAMA, {"prompt": "hi"}, headers={}).status_code == 401
    assert run(LLAMA, {"prompt": "hi"}).status_code == 500


def test_bad_fault_definitions_are_400(emulator):
    assert _post_faults(emulator, {"kind": "explode"}).status_code == 400
    assert _post_faults(emulator, {"kind": "500", "count": 0}).status_code == 400
    assert requests.post(f"{emulator.url}/_emulator/faults", json={"kind": "500"}, timeout=10).status_code == 400
    assert emulator.pending_faults == []


class TestMarkers:
    def test_times_and_key(self, run):
        marker = "[[emulator:fault=429_3040,times=2,key=job-1]]"
        statuses = [run(LLAMA, {"prompt": f"hi {marker}"}).status_code for _ in range(3)]
        assert statuses == [429, 429, 200]

    def test_keys_count_independently_and_default_times_is_one(self, run):
        first = {"messages": [{"role": "user", "content": "[[emulator:fault=500,key=a]] x"}]}
        second = {"messages": [{"role": "user", "content": "[[emulator:fault=500,key=b]] y"}]}
        assert run(LLAMA, first).status_code == 500
        assert run(LLAMA, second).status_code == 500
        assert run(LLAMA, first).status_code == 200
        assert run(LLAMA, second).status_code == 200

    def test_marker_in_nested_input_of_any_task(self, run):
        payload = {"text": ["fine", "[[emulator:fault=drop,key=emb]]"]}
        with pytest.raises(requests.ConnectionError):
            run("@cf/baai/bge-base-en-v1.5", payload)
        assert run("@cf/baai/bge-base-en-v1.5", payload).status_code == 200

    def test_marker_with_retry_after(self, run):
        response = run(LLAMA, {"prompt": "[[emulator:fault=429_3040,retry_after=3,key=r]]"})
        assert response.status_code == 429 and response.headers["Retry-After"] == "3"

    def test_marker_cut_stream(self, run):
        response = run(LLAMA, {"prompt": "[[emulator:fault=cut_stream,key=cs]]", "stream": True}, stream=True)
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            list(response.iter_lines())

    def test_reset_forgets_marker_counts(self, emulator, run):
        payload = {"prompt": "[[emulator:fault=500,key=again]]"}
        assert run(LLAMA, payload).status_code == 500
        emulator.reset()
        assert run(LLAMA, payload).status_code == 500

    def test_malformed_marker_is_ignored(self, run):
        assert run(LLAMA, {"prompt": "[[emulator:fault=nope,key=z]]"}).status_code == 200


def test_latency_applies_to_every_run(emulator, run):
    emulator.latency_ms = 200
    started = time.monotonic()
    assert run(LLAMA, {"prompt": "hi"}).status_code == 200
    assert time.monotonic() - started >= 0.2
    requests.post(f"{emulator.url}/_emulator/config", json={"latency_ms": 0}, timeout=10)
    assert emulator.latency_ms == 0


def test_requests_account_for_http_faults(emulator, run):
    _post_faults(emulator, {"kind": "429_3040", "count": 2})
    for _ in range(3):
        run(LLAMA, {"prompt": "hi"})
    assert [(r["status"], r["fault"]) for r in emulator.requests] == [
        (429, "429_3040"), (429, "429_3040"), (200, None)]
    assert emulator.stats["faults_injected"] == {"429_3040": 2}
    assert emulator.stats["by_status"] == {"429": 2, "200": 1}
