"""The emulator sustains many concurrent clients (benchmarks run 50+ at once)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import requests

from .conftest import ACCOUNT, AUTH, LLAMA


def test_fifty_concurrent_requests_all_succeed_in_parallel(emulator):
    emulator.latency_ms = 200

    def one(i: int) -> tuple[int, str]:
        response = requests.post(emulator.run_url(ACCOUNT, LLAMA), headers=AUTH,
                                 json={"prompt": f"request {i}"}, timeout=30)
        return response.status_code, response.json()["result"]["response"]

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(one, range(50)))
    elapsed = time.monotonic() - started
    assert [status for status, _ in results] == [200] * 50
    assert len({text for _, text in results}) > 40  # distinct inputs, distinct answers
    # Served in parallel: 50 sequential calls would take at least 10 s.
    assert elapsed < 5
    assert emulator.stats["requests"] == 50


def test_concurrent_streams(emulator):
    def one(i: int) -> bytes:
        response = requests.post(emulator.run_url(ACCOUNT, LLAMA), headers=AUTH,
                                 json={"prompt": f"stream {i}", "stream": True}, stream=True, timeout=30)
        return list(response.iter_lines())[-2]

    with ThreadPoolExecutor(max_workers=50) as pool:
        assert list(pool.map(one, range(50))) == [b"data: [DONE]"] * 50


def test_queued_fault_is_consumed_exactly_once_under_concurrency(emulator):
    emulator.add_fault("500", count=10)

    def one(i: int) -> int:
        return requests.post(emulator.run_url(ACCOUNT, LLAMA), headers=AUTH,
                             json={"prompt": f"c {i}"}, timeout=30).status_code

    with ThreadPoolExecutor(max_workers=40) as pool:
        statuses = list(pool.map(one, range(40)))
    assert statuses.count(500) == 10 and statuses.count(200) == 30
