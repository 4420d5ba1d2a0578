"""The /_emulator/ control endpoints, usable from another process."""

from __future__ import annotations

import json

import requests

from .conftest import ACCOUNT, LLAMA


def _control(emulator, method: str, name: str, body: dict | None = None) -> requests.Response:
    return requests.request(method, f"{emulator.url}/_emulator/{name}", json=body, timeout=10)


def test_requests_log_records_run_requests(emulator, run):
    assert run(LLAMA, {"prompt": "hello log", "stream": True}).content.endswith(b"data: [DONE]\n\n")
    run(LLAMA, {"prompt": "x" * 5000}, headers={"X-Auth-Email": "e@x.org", "X-Auth-Key": "k"})
    run("@cf/unknown/model", {"prompt": "hi"})
    log = _control(emulator, "GET", "requests").json()
    assert [(r["model"], r["status"], r["stream"], r["auth"]) for r in log] == [
        (LLAMA, 200, True, "bearer"), (LLAMA, 200, False, "legacy"), ("@cf/unknown/model", 400, False, "bearer"),
    ]
    assert all(r["account_id"] == ACCOUNT and isinstance(r["ts"], float) for r in log)
    assert json.loads(log[0]["body"]) == {"prompt": "hello log", "stream": True}
    assert len(log[1]["body"]) == 2048  # truncated to 2 KB
    assert emulator.requests == log


def test_stats(emulator, run):
    for _ in range(3):
        run(LLAMA, {"prompt": "hi"})
    run("@cf/baai/bge-base-en-v1.5", {"text": "hi"})
    stats = _control(emulator, "GET", "stats").json()
    assert stats["requests"] == 4
    assert stats["by_model"] == {LLAMA: 3, "@cf/baai/bge-base-en-v1.5": 1}
    assert stats["by_status"] == {"200": 4}


def test_config_roundtrip_and_extra_models(emulator, run):
    assert run("@cf/custom/x", {"prompt": "hi"}).status_code == 400
    response = _control(emulator, "POST", "config", {
        "latency_ms": 5, "token_delay_ms": 1, "image_noise": True,
        "models": {"@cf/custom/x": "text-generation", "@cf/custom/img": {"task": "text-to-image",
                                                                         "output_kind": "jpeg"}},
    })
    assert response.status_code == 200
    config = _control(emulator, "GET", "config").json()
    assert config["latency_ms"] == 5 and config["token_delay_ms"] == 1 and config["image_noise"] is True
    assert config["models"]["@cf/custom/x"]["task"] == "text-generation"
    assert run("@cf/custom/x", {"prompt": "hi"}).json()["result"]["response"]
    assert run("@cf/custom/img", {"prompt": "hi", "width": 64, "height": 64}).headers["Content-Type"] == "image/jpeg"


def test_config_rejects_bad_values(emulator):
    assert _control(emulator, "POST", "config", {"latency_ms": -1}).status_code == 400
    assert _control(emulator, "POST", "config", {"bogus": 1}).status_code == 400
    assert _control(emulator, "POST", "config", {"models": {"@cf/x/y": "dancing"}}).status_code == 400
    assert _control(emulator, "GET", "config").json()["latency_ms"] == 0


def test_reset_restores_constructor_state(emulator, run):
    _control(emulator, "POST", "config", {"latency_ms": 50, "models": {"@cf/custom/y": "summarization"}})
    _control(emulator, "POST", "faults", {"faults": [{"kind": "500", "count": 5}]})
    run(LLAMA, {"prompt": "hi"})
    assert _control(emulator, "POST", "reset").status_code == 200
    config = _control(emulator, "GET", "config").json()
    assert config["latency_ms"] == 0 and "@cf/custom/y" not in config["models"]
    # Models given to the constructor survive a reset.
    assert "@cf/microsoft/resnet-50" in config["models"]
    assert _control(emulator, "GET", "faults").json() == {"faults": []}
    assert _control(emulator, "GET", "requests").json() == []
    assert _control(emulator, "GET", "stats").json()["requests"] == 0
    assert run(LLAMA, {"prompt": "hi"}).status_code == 200


def test_control_needs_no_auth_and_unknown_is_404(emulator):
    assert _control(emulator, "GET", "health").json() == {"ok": True}
    assert _control(emulator, "GET", "nothing").status_code == 404


def test_request_in_flight_across_a_reset_is_not_logged_after_it(emulator, run):
    """A slow answer still being written when the next test resets must not leak into its log."""
    import threading

    emulator.add_fault("slow", model=LLAMA, delay_ms=400)
    worker = threading.Thread(target=run, args=(LLAMA, {"prompt": "slow"}))
    worker.start()
    deadline = __import__("time").monotonic() + 5
    while emulator.state.faults.pending() and __import__("time").monotonic() < deadline:
        __import__("time").sleep(0.01)
    emulator.reset()
    worker.join(10)
    assert emulator.requests == []
    run(LLAMA, {"prompt": "after"})
    assert [json.loads(r["body"])["prompt"] for r in emulator.requests] == ["after"]
