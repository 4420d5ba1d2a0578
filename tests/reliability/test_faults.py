"""Fault tests against real processes: a Celery worker (with beat, so the sweeper
runs), PostgreSQL, Redis and the emulator.  Nothing of ours is patched."""

from __future__ import annotations

import time

import pytest
import redis
from django.conf import settings
from django.db import connection

from inference.models import Run

from ..conftest import uses_postgres, wait_for_status
from .conftest import PACED_BURST_SECONDS, PACED_MODEL

LLAMA = "@cf/meta/llama-3.1-8b-instruct-fp8"


def submit(api, model, payload, **extra):
    response = api.post("/api/runs/", {"model": model, "input": payload, **extra}, format="json")
    assert response.status_code in (201, 202), response.content[:300]
    return response.json()["id"]


def calls_with(emulator, text: str) -> list[dict]:
    return [r for r in emulator.requests if text in r["body"]]


def wait_until(predicate, timeout: float = 20.0, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{message} not reached in {timeout}s")


pytestmark = pytest.mark.worker


def test_sigkill_mid_call_completes_once(api, rel_worker, emulator):
    emulator.add_fault("slow", delay_ms=4000)
    run_id = submit(api, LLAMA, {"prompt": "survive a SIGKILL"})
    wait_until(lambda: Run.objects.get(pk=run_id).status == "running", message="running")
    time.sleep(1.0)  # inside the 4 s upstream call (the emulator logs a call when it answers)
    rel_worker.kill()  # SIGKILL the whole worker process group mid-call
    assert Run.objects.get(pk=run_id).status == "running"
    rel_worker.start()
    # The heartbeat goes stale (3 s), the sweeper re-enqueues, attempt 2 runs.
    run = wait_for_status(run_id, timeout=60)
    assert run.status == "succeeded", run.error_message
    assert run.attempts == 2
    time.sleep(2.0)  # any duplicate delivery would show up as a third call now
    calls = calls_with(emulator, "survive a SIGKILL")
    assert len(calls) == 2 <= Run.objects.get(pk=run_id).attempts
    assert Run.objects.get(pk=run_id).status == "succeeded"


def test_flushed_broker_loses_nothing(api, rel_worker, emulator):
    rel_worker.kill()
    ids = [submit(api, LLAMA, {"prompt": f"flushed {i}"}) for i in range(5)]
    r = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    assert r.llen(settings.INFERENCE["QUEUE"]) >= 5
    r.flushdb()  # the broker loses every message
    rel_worker.start()
    for run_id in ids:
        run = wait_for_status(run_id, timeout=60)
        assert run.status == "succeeded", run.error_message
        assert run.attempts == 1
    for i in range(5):
        assert len(calls_with(emulator, f"flushed {i}")) == 1


def test_429_storm_succeeds_after_backoff(api, rel_worker, emulator):
    ids = [
        submit(api, LLAMA, {"prompt": f"storm {i} [[emulator:fault=429_3040,times=3,key=storm-{i}]]"})
        for i in range(4)
    ]
    for i, run_id in enumerate(ids):
        run = wait_for_status(run_id, timeout=60)
        assert run.status == "succeeded", run.error_message
        assert run.attempts == 4
        assert len(calls_with(emulator, f"key=storm-{i}]]")) == 4


def test_3036_fails_after_one_call_and_pauses_the_account(api, rel_worker, emulator):
    emulator.add_fault("429_3036", count=5)
    first = wait_for_status(submit(api, LLAMA, {"prompt": "quota one"}))
    assert first.status == "failed" and first.error_code == 3036 and first.attempts == 1
    assert len(calls_with(emulator, "quota one")) == 1
    # The next run of the same account fails fast, without an upstream call.
    second = wait_for_status(submit(api, LLAMA, {"prompt": "quota two"}))
    assert second.status == "failed" and second.error_code == 3036
    assert "paused until 00:00 UTC" in second.error_message
    assert second.attempts == 0
    assert calls_with(emulator, "quota two") == []


def test_invalid_json_and_cut_stream_fail_readably(api, rel_worker, emulator):
    bad = submit(api, LLAMA, {"prompt": "garbage [[emulator:fault=invalid_json,key=g1]]"})
    cut = submit(api, LLAMA, {"prompt": "cut [[emulator:fault=cut_stream,key=c1]]", "stream": True})
    bad_run = wait_for_status(bad)
    assert bad_run.status == "failed"
    assert "json" in bad_run.error_message.lower() or "unreadable" in bad_run.error_message.lower()
    cut_run = wait_for_status(cut)
    assert cut_run.status == "failed", cut_run.status
    assert cut_run.error_message and "Internal error" not in cut_run.error_message
    detail = api.get(f"/api/runs/{cut}/").json()
    assert detail["error"]["message"] == cut_run.error_message
    assert len(calls_with(emulator, "key=c1]]")) == 1


@pytest.mark.skipif(not uses_postgres(), reason="pg_terminate_backend is PostgreSQL")
def test_postgres_connections_dropped_mid_run(api, rel_worker, emulator):
    emulator.add_fault("slow", delay_ms=2500)
    run_id = submit(api, LLAMA, {"prompt": "db drop"})
    wait_until(lambda: Run.objects.get(pk=run_id).status == "running", message="running")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        (terminated,) = cursor.fetchone()
    assert terminated >= 1  # the worker's connections
    run = wait_for_status(run_id, timeout=60)
    assert run.status in ("succeeded", "failed")
    if run.status == "failed":
        assert run.error_message
    assert len(calls_with(emulator, "db drop")) <= run.attempts


def test_cancel_running_stream_keeps_partial_usage(api, rel_worker, emulator):
    emulator.configure(token_delay_ms=150)
    run_id = submit(api, LLAMA, {"prompt": "a long story", "stream": True, "max_tokens": 256})
    wait_until(lambda: Run.objects.get(pk=run_id).status == "running", message="running")
    time.sleep(1.0)  # some tokens streamed
    assert api.post(f"/api/runs/{run_id}/cancel/").status_code == 200
    run = wait_until(lambda: (r := Run.objects.get(pk=run_id)).upstream_ms is not None and r, timeout=15, message="worker stopped")
    assert run.status == "canceled" and run.result is None
    assert run.usage and run.usage["completion_tokens"] >= 1
    assert run.upstream_ms < 5000  # the stream was closed, not read to its end


def test_pacing_spaces_calls_without_burning_attempts(api, rel_worker, emulator):
    # 1 request/s with a burst of 3 for this rate class (conftest): 6 runs need >= 2 s.
    ids = [submit(api, PACED_MODEL, {"text": f"paced {i}"}) for i in range(6)]
    for run_id in ids:
        run = wait_for_status(run_id, timeout=60)
        assert run.status == "succeeded", run.error_message
        assert run.attempts == 1
    stamps = sorted(r["ts"] for r in emulator.requests if r["model"] == PACED_MODEL)
    assert len(stamps) == 6
    assert stamps[-1] - stamps[0] >= (6 - PACED_BURST_SECONDS) - 1.0 - 0.3


def test_cancel_running_call_discards_result_keeps_usage(api, rel_worker, emulator):
    emulator.add_fault("slow", delay_ms=1500)
    run_id = submit(api, LLAMA, {"prompt": "cancel me mid-call"})
    wait_until(lambda: Run.objects.get(pk=run_id).status == "running", message="running")
    assert api.post(f"/api/runs/{run_id}/cancel/").status_code == 200
    run = wait_until(lambda: (r := Run.objects.get(pk=run_id)).usage and r, timeout=15, message="usage recorded")
    assert run.status == "canceled" and run.result is None
    assert run.usage["completion_tokens"] >= 1  # the call was billed upstream
