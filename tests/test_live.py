"""Live results: streamed generation relayed over /events/, wait mode."""

from __future__ import annotations

import json
import threading
import time
import uuid

import pytest
import requests

from inference.models import Run
from inference.services import live

from .conftest import wait_for_status

LLAMA = "@cf/meta/llama-3.1-8b-instruct-fp8"


def parse_sse(lines):
    """Parse SSE text lines into (id, event, data) tuples; comments skipped."""
    event_id, event, data = None, None, []
    for line in lines:
        if line == "":
            if event is not None or data:
                yield event_id, event, json.loads("\n".join(data))
            event_id, event, data = None, None, []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "id":
            event_id = int(value)
        elif name == "event":
            event = value
        elif name == "data":
            data.append(value)


def streaming_lines(response):
    buffer = ""
    for chunk in response.streaming_content:
        buffer += chunk.decode() if isinstance(chunk, bytes) else chunk
        while "\n" in buffer:
            line, buffer = buffer.split("\n", 1)
            yield line


def read_events(api, run_id):
    response = api.get(f"/api/runs/{run_id}/events/")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream"
    return list(parse_sse(streaming_lines(response)))


def outputs_in_backlog(run_id) -> int:
    return sum(1 for e in live.read_backlog(run_id) if e.event == "output")


def wait_for_outputs(run_id, count: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while outputs_in_backlog(run_id) < count:
        assert time.monotonic() < deadline, f"fewer than {count} deltas published"
        time.sleep(0.02)


def submit_stream(api, prompt="Tell me a story", max_tokens=40, **headers):
    payload = {"model": LLAMA, "input": {"prompt": prompt, "max_tokens": max_tokens, "stream": True}}
    return api.post("/api/runs/", payload, format="json", **headers)


@pytest.mark.skipif(not live.enabled(), reason="needs REDIS_URL")
class TestSubscriptionOrdering:
    def test_late_subscriber_gets_every_event_once_in_order(self, settings):
        """A publisher thread races the subscriber: whatever the interleaving,
        backlog + live covers 1..N with no gap and no duplicate."""
        run_id = uuid.uuid4()
        total = 400
        started = threading.Event()

        def publisher():
            for index in range(total):
                live.publish(run_id, "output", {"delta": f"{index},"})
                if index == 50:
                    started.set()

        thread = threading.Thread(target=publisher)
        thread.start()
        started.wait(10)
        seen = []
        with live.Subscription(run_id) as sub:
            seen.extend(e.seq for e in sub.backlog)
            assert 0 < len(seen) < total or thread.is_alive() is False
            while len(seen) < total:
                item = sub.next_live(10)
                assert item is not None, f"stalled after {len(seen)} events"
                seen.append(item.seq)
                assert item.data["delta"] == f"{item.seq - 1},"
        thread.join()
        assert seen == list(range(1, total + 1))
        live.get_redis().delete(live.backlog_key(run_id))

    def test_backlog_deltas_are_merged_into_text_so_far(self):
        events = [
            live.LiveEvent(1, "status", {"status": "running"}),
            live.LiveEvent(2, "output", {"delta": "Hel"}),
            live.LiveEvent(3, "output", {"delta": "lo"}),
            live.LiveEvent(4, "output", {"delta": " there"}),
        ]
        merged = list(live.coalesce(events))
        assert [(e.seq, e.event) for e in merged] == [(1, "status"), (4, "output")]
        assert merged[1].data["delta"] == "Hello there"


@pytest.mark.worker
@pytest.mark.skipif(not live.enabled(), reason="needs REDIS_URL")
class TestStreamingWithWorker:
    def test_late_subscriber_gets_text_so_far_then_live_deltas(self, api, worker, emulator):
        emulator.configure(token_delay_ms=120)
        body = submit_stream(api).json()
        run_id = body["id"]
        wait_for_outputs(run_id, 3)
        events = read_events(api, run_id)

        names = [name for _, name, _ in events]
        assert names[0] == "status" and names[-1] == "done"
        assert names.count("done") == 1
        outputs = [(i, data) for i, name, data in events if name == "output"]
        # The first output is the backlog merged: at least the three deltas we waited for.
        first_text = outputs[0][1]["delta"]
        assert len(outputs) >= 2, "no live deltas after the backlog"
        ids = [i for i, _ in outputs]
        assert ids == sorted(set(ids)), "duplicate or out-of-order deltas"
        text = "".join(data["delta"] for _, data in outputs)
        run = Run.objects.get(pk=run_id)
        assert run.status == "succeeded"
        assert text == run.result["response"] and text.startswith(first_text)
        # Every published delta made it into the relayed text exactly once.
        published = [e.data["delta"] for e in live.read_backlog(run_id) if e.event == "output"]
        assert text == "".join(published) and len(published) >= len(outputs) + 2
        done = events[-1][2]
        assert done["status"] == "succeeded" and done["result"]["response"] == text
        assert done["usage"]["completion_tokens"] > 0
        assert [d["status"] for _, n, d in events if n == "status"][-1] == "succeeded"

    def test_disconnecting_client_does_not_stop_the_run(self, api, worker, emulator, live_server):
        emulator.configure(token_delay_ms=100)
        run_id = submit_stream(api).json()["id"]
        url = f"{live_server.url}/api/runs/{run_id}/events/"
        with requests.get(url, headers={"Authorization": f"Bearer {api.raw_key}"}, stream=True, timeout=30) as r:
            assert r.status_code == 200
            got_output = False
            for _id, name, _data in parse_sse(r.iter_lines(decode_unicode=True)):
                if name == "output":
                    got_output = True
                    break  # and hang up mid-stream
        assert got_output
        run = wait_for_status(run_id)
        assert run.status == "succeeded"
        assert run.usage and run.usage["completion_tokens"] > 0
        assert run.result["response"] == "".join(
            e.data["delta"] for e in live.read_backlog(run_id) if e.event == "output"
        )

    def test_cancel_mid_stream_reaches_a_live_subscriber(self, api, worker, emulator, live_server):
        emulator.configure(token_delay_ms=300)  # this prompt streams 18 tokens: ~5 s
        run_id = submit_stream(api, max_tokens=60).json()["id"]
        wait_for_outputs(run_id, 1)
        received: list = []

        def subscribe():
            url = f"{live_server.url}/api/runs/{run_id}/events/"
            with requests.get(url, headers={"Authorization": f"Bearer {api.raw_key}"}, stream=True, timeout=30) as r:
                for item in parse_sse(r.iter_lines(decode_unicode=True)):
                    received.append((time.monotonic(), item))

        thread = threading.Thread(target=subscribe)
        thread.start()
        deadline = time.monotonic() + 20
        while not any(name == "output" for _, (_, name, _) in received):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        canceled_at = time.monotonic()
        assert api.post(f"/api/runs/{run_id}/cancel/").status_code == 200
        thread.join(20)
        assert not thread.is_alive()
        names = [name for _, (_, name, _) in received]
        assert names[-2:] == ["status", "done"] and received[-1][1][2]["status"] == "canceled"
        # Pushed, not discovered by the relay's idle re-read of the row.
        assert received[-1][0] - canceled_at < 2.0
        # The worker notices the cancel and stops reading upstream: no more deltas.
        time.sleep(1.5)
        published = outputs_in_backlog(run_id)
        time.sleep(1.2)
        assert outputs_in_backlog(run_id) == published < 18
        run = Run.objects.get(pk=run_id)
        assert run.status == "canceled" and run.result is None

    def test_cut_stream_fails_with_partial_text_and_relays_it(self, api, worker, emulator):
        emulator.configure(token_delay_ms=50)
        emulator.add_fault("cut_stream", model=LLAMA)
        run_id = submit_stream(api).json()["id"]
        events = read_events(api, run_id)
        run = Run.objects.get(pk=run_id)
        assert run.status == "failed"
        assert "cut short" in run.error_message
        relayed = "".join(d["delta"] for _, n, d in events if n == "output")
        assert relayed and run.result["response"] == relayed
        assert events[-1][1] == "done" and events[-1][2]["status"] == "failed"
        assert events[-1][2]["error"]["message"] == run.error_message

    def test_subscriber_after_the_end_gets_status_and_done(self, api, worker):
        run_id = submit_stream(api, max_tokens=5).json()["id"]
        run = wait_for_status(run_id)
        events = read_events(api, run_id)
        assert [n for _, n, _ in events] == ["status", "done"]
        assert events[1][2]["result"]["response"] == run.result["response"]

    def test_other_user_cannot_subscribe(self, api, other_api, worker):
        run_id = submit_stream(api, max_tokens=5).json()["id"]
        assert other_api.get(f"/api/runs/{run_id}/events/").status_code == 404
        wait_for_status(run_id)


@pytest.mark.worker
class TestWaitMode:
    def test_wait_returns_201_with_the_finished_run(self, api, worker):
        started = time.monotonic()
        response = api.post(
            "/api/runs/", {"model": LLAMA, "input": {"prompt": "hi"}}, format="json", HTTP_PREFER="wait=30"
        )
        assert response.status_code == 201, response.json()
        assert response.json()["status"] == "succeeded"
        assert response.json()["result"]["response"]
        assert time.monotonic() - started < 20

    def test_wait_times_out_with_202_and_the_run_as_it_stands(self, api, worker, emulator):
        emulator.configure(latency_ms=4000)
        started = time.monotonic()
        response = api.post(
            "/api/runs/", {"model": LLAMA, "input": {"prompt": "slow"}}, format="json", HTTP_PREFER="wait=1"
        )
        elapsed = time.monotonic() - started
        assert response.status_code == 202
        assert response.json()["status"] in ("queued", "running")
        assert 0.9 <= elapsed < 3.5
        assert response["Location"] == f"/api/runs/{response.json()['id']}/"
        assert wait_for_status(response.json()["id"]).status == "succeeded"

    def test_wait_is_capped_at_60_seconds(self):
        from inference.api.views import parse_prefer_wait

        assert parse_prefer_wait("wait=600") == 60
        assert parse_prefer_wait("respond-async, wait=5") == 5
        assert parse_prefer_wait("wait") == 60
        assert parse_prefer_wait("wait=abc") is None


@pytest.mark.embedded
@pytest.mark.django_db(transaction=True)
class TestEmbeddedWithoutRedis:
    def test_events_and_wait_fall_back_to_the_database(self, api, eager, settings):
        settings.INFERENCE = {**settings.INFERENCE, "REDIS_URL": None}
        assert not live.enabled()
        response = submit_stream(api, max_tokens=8, HTTP_PREFER="wait=10")
        assert response.status_code == 201, response.json()
        body = response.json()
        assert body["status"] == "succeeded" and body["usage"]["completion_tokens"] > 0
        events = read_events(api, body["id"])
        assert [n for _, n, _ in events] == ["status", "done"]
        assert events[0][2] == {"status": "succeeded"}
        assert events[1][2]["result"]["response"] == body["result"]["response"]
