"""The Cloudflare-compatible endpoint against a live server: the official SDK,
raw HTTP for binary / SSE passthrough and error envelopes, and the runs it records."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time

import pytest
import requests
from cloudflare import Cloudflare, RateLimitError

from inference.client import WorkersAIClient, parse_sse
from inference.models import Run, RunMedia

from .conftest import ACCOUNT_ID, CF_TOKEN

LLAMA = "@cf/meta/llama-3.1-8b-instruct-fp8"
SDXL = "@cf/stabilityai/stable-diffusion-xl-base-1.0"
FLUX = "@cf/black-forest-labs/flux-1-schnell"
LLAMA_ENCODED = "%40cf%2Fmeta%2Fllama-3.1-8b-instruct-fp8"

# No Celery involved: the endpoint executes in the web process, so the embedded
# (SQLite) configuration runs these too.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.embedded]


@pytest.fixture
def base(live_server) -> str:
    return f"{live_server.url}/client/v4"


@pytest.fixture
def key(api) -> str:
    return api.raw_key


def direct(emulator) -> WorkersAIClient:
    """The emulator called without us in between: the reference answer."""
    return WorkersAIClient(ACCOUNT_ID, api_token=CF_TOKEN, base_url=emulator.base_url)


def post(base, key, model, payload=None, *, account=ACCOUNT_ID, stream=False, **kwargs):
    headers = kwargs.pop("headers", {"Authorization": f"Bearer {key}"})
    return requests.post(
        f"{base}/accounts/{account}/ai/run/{model}", json=payload, headers=headers,
        stream=stream, timeout=30, **kwargs,
    )


def wait_terminal(run_id, timeout: float = 20) -> Run:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = Run.objects.get(pk=run_id)
        if run.is_terminal:
            return run
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} still {run.status}")


def assert_error(response, status: int, code: int) -> dict:
    assert response.status_code == status, response.text[:300]
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["success"] is False and body["result"] is None and body["messages"] == []
    assert body["errors"][0]["code"] == code, body
    assert body["errors"][0]["message"]
    return body


class TestOfficialSDK:
    def test_text_generation_through_the_sdk(self, base, key, user, emulator):
        # Closed at the end: a kept-alive connection would pin a server thread
        # (and its database session) past the test.
        with Cloudflare(api_token=key, base_url=base, max_retries=0) as client:
            result = client.ai.run(LLAMA, account_id=ACCOUNT_ID, prompt="Tell me about Django")
        expected = direct(emulator).run(LLAMA, {"prompt": "Tell me about Django"}).result
        assert result["response"] == expected["response"]
        assert result["usage"] == expected["usage"]

        run = Run.objects.get(source=Run.Source.COMPAT)
        assert run.user == user and run.api_key.prefix == key.split("_")[1]
        assert run.model == LLAMA and run.task == "text-generation"
        assert run.status == "succeeded" and run.attempts == 1
        assert run.result["response"] == expected["response"]
        assert run.usage == expected["usage"] and run.usage["total_tokens"] > 0
        assert run.upstream_ms is not None and run.completed_at is not None
        # The SDK encodes the slashes (%2F); upstream got the literal name (an
        # encoded one is answered 400/7000), once from us and once from direct().
        # (Filtered by prompt: a straggler of an earlier test may land meanwhile.)
        ours = [r for r in emulator.requests if "Tell me about Django" in str(r["body"])]
        assert [(r["model"], r["status"]) for r in ours] == [(LLAMA, 200), (LLAMA, 200)]

    def test_sdk_sees_upstream_rate_limit(self, base, key, emulator):
        emulator.add_fault("429_3040", model=LLAMA)
        with Cloudflare(api_token=key, base_url=base, max_retries=0) as client, \
                pytest.raises(RateLimitError) as info:
            client.ai.run(LLAMA, account_id=ACCOUNT_ID, prompt="busy?")
        assert info.value.status_code == 429
        assert info.value.body["errors"][0]["code"] == 3040
        run = Run.objects.get(source=Run.Source.COMPAT)
        assert run.status == "failed" and run.error_code == 3040 and run.error_retryable is True


class TestJSONAndBinary:
    @pytest.mark.parametrize("name", [LLAMA, LLAMA_ENCODED, "%40cf/meta/llama-3.1-8b-instruct-fp8"])
    def test_model_name_literal_or_percent_encoded(self, base, key, emulator, name):
        response = post(base, key, name, {"prompt": "hello", "max_tokens": 20})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["success"] is True and body["errors"] == [] and body["messages"] == []
        assert body["result"] == direct(emulator).run(LLAMA, {"prompt": "hello", "max_tokens": 20}).result
        run = Run.objects.get(pk=response.headers["X-CFAI-Run-Id"])
        assert run.model == LLAMA and run.status == "succeeded" and run.usage["total_tokens"] > 0
        assert {r["model"] for r in emulator.requests} == {LLAMA}
        assert all(r["status"] == 200 for r in emulator.requests)

    def test_png_bytes_passed_through_unchanged_and_stored(self, base, key, emulator):
        payload = {"prompt": "a lighthouse", "width": 256, "height": 256}
        response = post(base, key, SDXL, payload)
        assert response.status_code == 200, response.text[:300]
        assert response.headers["Content-Type"] == "image/png"
        expected = direct(emulator).run(SDXL, payload)
        assert response.content == expected.content and response.content[:8] == b"\x89PNG\r\n\x1a\n"
        run = Run.objects.get(pk=response.headers["X-CFAI-Run-Id"])
        assert run.status == "succeeded"
        (media,) = run.media.filter(role=RunMedia.Role.OUTPUT)
        assert media.sha256 == hashlib.sha256(response.content).hexdigest()
        assert run.result["image"] == f"/api/media/{media.pk}/"

    def test_base64_image_relayed_as_cloudflare_sent_it(self, base, key, emulator):
        payload = {"prompt": "a fox", "steps": 4}
        response = post(base, key, FLUX, payload)
        assert response.status_code == 200, response.text[:300]
        image = response.json()["result"]["image"]
        assert image == direct(emulator).run(FLUX, payload).result["image"]
        run = Run.objects.get(pk=response.headers["X-CFAI-Run-Id"])
        (media,) = run.media.filter(role=RunMedia.Role.OUTPUT)
        # Stored as a file, not inlined; the bytes are the decoded base64.
        assert run.result["image"] == f"/api/media/{media.pk}/"
        assert media.sha256 == hashlib.sha256(base64.b64decode(image)).hexdigest()


def iter_chunks(response):
    """The body as it arrives: ``iter_content`` reads a close-delimited body (what
    the test server sends for a stream) to EOF before yielding anything."""
    while True:
        chunk = response.raw.read1(65536)
        if not chunk:
            return
        yield chunk


def sse_events(raw: bytes) -> list[str]:
    return [event.data for event in parse_sse(raw)]


class TestStreaming:
    def test_sse_passthrough_and_recorded_usage(self, base, key, emulator):
        response = post(base, key, LLAMA, {"prompt": "stream please", "stream": True}, stream=True)
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        raw = b"".join(response.iter_content(None))
        events = sse_events(raw)
        assert events[-1] == "[DONE]"
        parsed = [json.loads(e) for e in events[:-1]]
        assert all("p" in e for e in parsed[:-1])  # Cloudflare's padding relayed as sent
        text = "".join(e["response"] for e in parsed)
        usage = parsed[-1]["usage"]
        # The same answer as the emulator gives for a non-streamed call.
        assert text == direct(emulator).run(LLAMA, {"prompt": "stream please"}).result["response"]
        run = wait_terminal(response.headers["X-CFAI-Run-Id"])
        assert run.status == "succeeded" and run.stream is True
        assert run.result["response"] == text
        assert run.usage == usage and usage["completion_tokens"] > 0

    def test_events_are_relayed_as_they_arrive(self, base, key, emulator):
        emulator.configure(token_delay_ms=60)
        started = time.monotonic()
        response = post(base, key, LLAMA, {"prompt": "slowly", "stream": True, "max_tokens": 30}, stream=True)
        chunks = iter_chunks(response)
        first = next(chunks)
        first_at = time.monotonic() - started
        rest = b"".join(chunks)
        total = time.monotonic() - started
        assert b'"response"' in first
        assert sse_events(first + rest)[-1] == "[DONE]"
        # ~30 tokens × 60 ms ≈ 1.8 s for the whole stream: the first token must not
        # wait for it (a buffering proxy would deliver everything at the end).
        assert total > 1.0 and first_at < total / 2, (first_at, total)

    def test_cut_stream_records_failed_run_with_partial_text(self, base, key, emulator):
        emulator.add_fault("cut_stream", model=LLAMA)
        response = post(base, key, LLAMA, {"prompt": "cut me", "stream": True}, stream=True)
        assert response.status_code == 200
        try:
            raw = b"".join(response.iter_content(None))
        except requests.exceptions.ChunkedEncodingError:
            raw = b""
        run = wait_terminal(response.headers["X-CFAI-Run-Id"])
        assert run.status == "failed" and "cut short" in run.error_message
        assert run.result["response"]  # the partial text is kept
        if raw:
            assert b"[DONE]" not in raw
            relayed = "".join(json.loads(e)["response"] for e in sse_events(raw))
            assert relayed == run.result["response"]

    def test_client_disconnect_keeps_the_usage(self, base, key, emulator):
        emulator.configure(token_delay_ms=30)
        response = post(base, key, LLAMA, {"prompt": "I will hang up", "stream": True, "max_tokens": 40}, stream=True)
        run_id = response.headers["X-CFAI-Run-Id"]
        next(iter_chunks(response))
        response.close()
        run = wait_terminal(run_id)
        assert run.status == "succeeded", run.error_message
        assert run.usage and run.usage["completion_tokens"] > 0
        assert run.result["response"] == direct(emulator).run(
            LLAMA, {"prompt": "I will hang up", "max_tokens": 40}
        ).result["response"]


class TestErrors:
    @pytest.mark.parametrize("fault,status,code,retryable", [
        ("429_3040", 429, 3040, True), ("429_3036", 429, 3036, False), ("500", 500, 3043, True),
    ])
    def test_upstream_errors_passed_through(self, base, key, emulator, fault, status, code, retryable):
        emulator.add_fault(fault, model=LLAMA, retry_after=7 if status == 429 else None)
        response = post(base, key, LLAMA, {"prompt": "hi"})
        body = assert_error(response, status, code)
        assert body["errors"][0]["message"]
        if status == 429:
            assert response.headers["Retry-After"] == "7"
        run = Run.objects.get(pk=response.headers["X-CFAI-Run-Id"])
        assert run.status == "failed" and run.error_code == code and run.error_retryable is retryable
        # One attempt: the Cloudflare client retries itself, as it would against Cloudflare.
        assert len(emulator.requests) == 1 and run.attempts == 1

    def test_3036_pauses_the_account_for_inline_calls_too(self, base, key, emulator):
        emulator.add_fault("429_3036", model=LLAMA)
        assert_error(post(base, key, LLAMA, {"prompt": "first"}), 429, 3036)
        # The account is paused until midnight UTC: refused here, never sent upstream.
        response = post(base, key, LLAMA, {"prompt": "second"})
        body = assert_error(response, 429, 3036)
        assert "Not sent upstream" in body["errors"][0]["message"]
        assert len(emulator.requests) == 1
        run = Run.objects.get(pk=response.headers["X-CFAI-Run-Id"])
        assert run.status == "failed" and run.error_code == 3036 and run.cost_usd is None

    @pytest.mark.parametrize("fault", ["drop", "invalid_json"])
    def test_unreadable_upstream_is_502_in_envelope(self, base, key, emulator, fault):
        emulator.add_fault(fault, model=LLAMA)
        response = post(base, key, LLAMA, {"prompt": "hi"})
        assert_error(response, 502, 3043)
        run = Run.objects.get(pk=response.headers["X-CFAI-Run-Id"])
        assert run.status == "failed" and run.error_message and run.attempts == 1

    def test_bad_input_is_400_and_nothing_is_stored(self, base, key, emulator):
        response = post(base, key, LLAMA, {"max_tokens": 20})
        body = assert_error(response, 400, 5006)
        assert "prompt" in body["errors"][0]["message"] or "messages" in body["errors"][0]["message"]
        response = post(base, key, LLAMA, {"prompt": "x", "max_tokens": "many"})
        body = assert_error(response, 400, 5006)
        assert "input.max_tokens" in body["errors"][0]["message"]
        assert_error(post(base, key, "@cf/nobody/unknown-model", {"prompt": "x"}), 400, 5007)
        assert_error(requests.post(f"{base}/accounts/{ACCOUNT_ID}/ai/run/{LLAMA}",
                                   data=b"not json", headers={"Authorization": f"Bearer {key}",
                                                              "Content-Type": "application/json"}),
                     400, 5006)
        assert_error(requests.post(f"{base}/accounts/{ACCOUNT_ID}/ai/run/{LLAMA}",
                                   headers={"Authorization": f"Bearer {key}"}), 400, 3003)
        assert Run.objects.count() == 0 and emulator.requests == []

    @pytest.mark.parametrize("headers", [
        {}, {"Authorization": "Bearer cfai_nope_nope"}, {"Authorization": "Basic Zm9vOmJhcg=="},
        {"Authorization": f"Bearer {CF_TOKEN}"},
    ])
    def test_missing_or_bad_key_is_401(self, base, key, emulator, headers):
        response = post(base, key, LLAMA, {"prompt": "hi"}, headers=headers)
        assert_error(response, 401, 10000)
        assert Run.objects.count() == 0 and emulator.requests == []

    def test_revoked_key_is_401(self, base, api, emulator):
        from django.utils import timezone

        api.key.revoked_at = timezone.now()
        api.key.save()
        assert_error(post(base, api.raw_key, LLAMA, {"prompt": "hi"}), 401, 10000)

    def test_unknown_account_is_refused(self, base, key, emulator):
        assert_error(post(base, key, LLAMA, {"prompt": "hi"}, account="someone-else"), 403, 10000)
        assert Run.objects.count() == 0 and emulator.requests == []

    def test_get_is_405_in_envelope(self, base, key):
        response = requests.get(f"{base}/accounts/{ACCOUNT_ID}/ai/run/{LLAMA}",
                                headers={"Authorization": f"Bearer {key}"}, timeout=10)
        assert_error(response, 405, 10405)


def test_every_call_is_a_run_with_usage(base, key, emulator, api):
    """Concurrent calls: each recorded once, with its usage, visible in history."""
    results: list[int] = []

    def call(i: int) -> None:
        results.append(post(base, key, LLAMA, {"prompt": f"call {i}", "max_tokens": 10}).status_code)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [200] * 6
    runs = list(Run.objects.filter(source=Run.Source.COMPAT))
    assert len(runs) == 6 and all(r.status == "succeeded" and r.usage["total_tokens"] > 0 for r in runs)
    history = api.get("/api/runs/").json()["results"]
    assert {h["id"] for h in history} == {str(r.pk) for r in runs}


def png_bytes(size: int = 32) -> bytes:
    import io
    import os

    from PIL import Image

    buffer = io.BytesIO()
    # Noise: incompressible, so the file is about size² × 3 bytes.
    Image.frombytes("RGB", (size, size), os.urandom(size * size * 3)).save(buffer, format="PNG")
    return buffer.getvalue()


class TestRawBodies:
    RESNET = "@cf/microsoft/resnet-50"

    def test_raw_image_body_like_cloudflare(self, base, key, emulator):
        data = png_bytes()
        response = requests.post(
            f"{base}/accounts/{ACCOUNT_ID}/ai/run/{self.RESNET}", data=data, timeout=30,
            headers={"Authorization": f"Bearer {key}", "Content-Type": "image/png"},
        )
        assert response.status_code == 200, response.text[:300]
        result = response.json()["result"]
        assert isinstance(result, list) and {"label", "score"} <= set(result[0])
        run = Run.objects.get(pk=response.headers["X-CFAI-Run-Id"])
        (media,) = run.media.filter(role=RunMedia.Role.INPUT)
        assert media.sha256 == hashlib.sha256(data).hexdigest() and media.content_type == "image/png"
        assert run.status == "succeeded" and emulator.requests[-1]["status"] == 200

    def test_too_large_is_our_refusal_in_cloudflare_shape(self, base, key, emulator, settings):
        settings.INFERENCE = {**settings.INFERENCE, "MAX_UPLOAD_BYTES": 1000}
        response = requests.post(
            f"{base}/accounts/{ACCOUNT_ID}/ai/run/{self.RESNET}", data=png_bytes(64), timeout=30,
            headers={"Authorization": f"Bearer {key}", "Content-Type": "image/png"},
        )
        assert_error(response, 413, 3006)
        assert Run.objects.count() == 0 and emulator.requests == []


class TestASGI:
    """Under ASGI (uvicorn workers), Django would buffer a synchronous stream whole;
    the endpoint hands it an asynchronous one fed as upstream events arrive."""

    def test_stream_is_not_buffered_under_asgi(self, key, emulator):
        from asgiref.sync import async_to_sync
        from django.test import AsyncClient

        emulator.configure(token_delay_ms=60)

        async def call():
            response = await AsyncClient().post(
                f"/client/v4/accounts/{ACCOUNT_ID}/ai/run/{LLAMA_ENCODED}",
                data={"prompt": "async please", "stream": True, "max_tokens": 30},
                content_type="application/json", headers={"Authorization": f"Bearer {key}"},
            )
            started = time.monotonic()
            arrivals = []
            async for chunk in response.streaming_content:
                arrivals.append((time.monotonic() - started, chunk))
            return response, arrivals

        response, arrivals = async_to_sync(call)()
        assert response.status_code == 200 and response["Content-Type"] == "text/event-stream"
        raw = b"".join(chunk for _at, chunk in arrivals)
        assert sse_events(raw)[-1] == "[DONE]"
        # One chunk per token, 60 ms apart: delivered as they came, not in one blob.
        first_at, last_at = arrivals[0][0], arrivals[-1][0]
        assert len(arrivals) > 5 and last_at - first_at > 0.04 * (len(arrivals) - 2), arrivals
        run = wait_terminal(response["X-CFAI-Run-Id"])
        assert run.status == "succeeded" and run.usage["completion_tokens"] > 0
        text = "".join(json.loads(e)["response"] for e in sse_events(raw)[:-1])
        assert run.result["response"] == text


class TestBodySize:
    def test_body_over_djangos_default_limit_gets_an_envelope(self, base, key, emulator):
        # 3 MB is over DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB): still judged by us, in
        # Cloudflare's shape (here: not a JSON object).
        response = requests.post(
            f"{base}/accounts/{ACCOUNT_ID}/ai/run/{LLAMA}", data=b"[" + b"1," * 1_500_000 + b"1]",
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"}, timeout=60,
        )
        body = assert_error(response, 400, 5006)
        assert "object" in body["errors"][0]["message"]

    def test_body_over_our_limit_is_413(self, base, key, emulator, settings):
        settings.INFERENCE = {**settings.INFERENCE, "MAX_UPLOAD_BYTES": 1000}
        # Limit = 4 × 1000 + 1 MiB.
        response = post(base, key, LLAMA, {"prompt": "x" * (1024 * 1024 + 5000)})
        body = assert_error(response, 413, 3006)
        assert "body" in body["errors"][0]["message"]
        assert Run.objects.count() == 0 and emulator.requests == []
