"""The run pipeline end to end: REST → database → Celery worker → emulator → result."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from inference.models import Run, RunMedia

from .conftest import wait_for_status

LLAMA = "@cf/meta/llama-3.1-8b-instruct-fp8"
SDXL = "@cf/stabilityai/stable-diffusion-xl-base-1.0"
FLUX = "@cf/black-forest-labs/flux-1-schnell"
MELO = "@cf/myshell-ai/melotts"


def submit(api, model, payload, **extra):
    return api.post("/api/runs/", {"model": model, "input": payload, **extra}, format="json")


def media_bytes(api, url):
    response = api.get(url)
    assert response.status_code == 200, response.content[:200]
    return response, b"".join(response.streaming_content)


@pytest.mark.worker
class TestWithRealWorker:
    def test_text_generation_succeeds(self, api, worker, emulator):
        response = submit(api, LLAMA, {"prompt": "Tell me about Django", "max_tokens": 16})
        assert response.status_code == 202, response.json()
        body = response.json()
        assert response["Location"] == f"/api/runs/{body['id']}/"
        assert body["status"] in ("queued", "running", "succeeded")
        run = wait_for_status(body["id"])
        assert run.status == "succeeded", run.error_message
        detail = api.get(f"/api/runs/{run.pk}/").json()
        assert isinstance(detail["result"]["response"], str) and detail["result"]["response"]
        assert detail["usage"]["total_tokens"] == (
            detail["usage"]["prompt_tokens"] + detail["usage"]["completion_tokens"]
        )
        assert detail["attempts"] == 1
        assert detail["queue_ms"] is not None and detail["upstream_ms"] is not None
        assert detail["started_at"] and detail["completed_at"]
        calls = [r for r in emulator.requests if r["model"] == LLAMA]
        assert len(calls) == 1 and calls[0]["auth"] == "bearer"

    def test_png_bytes_are_stored_as_media(self, api, worker):
        body = submit(api, SDXL, {"prompt": "a lighthouse", "width": 256, "height": 256}).json()
        run = wait_for_status(body["id"])
        assert run.status == "succeeded", run.error_message
        detail = api.get(f"/api/runs/{run.pk}/").json()
        (media,) = detail["media"]
        assert media["role"] == "output" and media["content_type"] == "image/png"
        assert detail["result"]["image"] == media["url"]
        response, data = media_bytes(api, media["url"])
        assert response["Content-Type"] == "image/png"
        assert len(data) == media["size"]
        assert Image.open(io.BytesIO(data)).size == (256, 256)

    def test_base64_image_and_audio_are_decoded_to_media(self, api, worker):
        flux = submit(api, FLUX, {"prompt": "a fox", "steps": 4}).json()
        melo = submit(api, MELO, {"prompt": "hello there general kenobi"}).json()
        for run_id, content_type, key in ((flux["id"], "image/png", "image"), (melo["id"], "audio/mpeg", "audio")):
            run = wait_for_status(run_id)
            assert run.status == "succeeded", run.error_message
            detail = api.get(f"/api/runs/{run_id}/").json()
            (media,) = detail["media"]
            assert media["content_type"] == content_type
            # Never inlined: the result holds the media URL, not base64.
            assert detail["result"][key] == media["url"]
            assert len(str(detail["result"])) < 500

    def test_retryable_error_is_retried_then_succeeds(self, api, worker, emulator):
        emulator.add_fault("429_3040", count=2)
        body = submit(api, LLAMA, {"prompt": "retry me"}).json()
        run = wait_for_status(body["id"])
        assert run.status == "succeeded", run.error_message
        assert run.attempts == 3
        assert len([r for r in emulator.requests if r["model"] == LLAMA]) == 3

    def test_daily_quota_fails_after_one_call(self, api, worker, emulator):
        emulator.add_fault("429_3036", count=5)
        body = submit(api, LLAMA, {"prompt": "quota"}).json()
        run = wait_for_status(body["id"])
        assert run.status == "failed"
        assert run.error_code == 3036 and run.error_retryable is False
        assert len([r for r in emulator.requests if r["model"] == LLAMA]) == 1
        error = api.get(f"/api/runs/{run.pk}/").json()["error"]
        assert error["code"] == 3036 and error["retryable"] is False and error["message"]

    def test_garbage_from_upstream_fails_readably(self, api, worker, emulator):
        emulator.add_fault("invalid_json")
        body = submit(api, LLAMA, {"prompt": "garbage"}).json()
        run = wait_for_status(body["id"])
        assert run.status == "failed"
        assert "unreadable" in run.error_message.lower() or "json" in run.error_message.lower()

    def test_dropped_connection_exhausts_retries_and_fails(self, api, worker, emulator, settings):
        emulator.add_fault("drop", count=10)
        body = submit(api, LLAMA, {"prompt": "drop"}).json()
        run = wait_for_status(body["id"], timeout=60)
        assert run.status == "failed"
        assert run.attempts == 4  # the worker's CFAI_MAX_ATTEMPTS default
        assert run.error_retryable is True

    def test_duplicate_message_does_not_run_twice(self, api, worker, emulator):
        from inference.queue import enqueue_run

        body = submit(api, LLAMA, {"prompt": "once"}).json()
        run = wait_for_status(body["id"])
        enqueue_run(run.pk, 1)  # a redelivered message for a finished run
        enqueue_run(run.pk, 2)
        import time

        time.sleep(1.0)
        run.refresh_from_db()
        assert run.status == "succeeded" and run.attempts == 1
        assert len([r for r in emulator.requests if r["model"] == LLAMA]) == 1

    def test_cancel_queued_then_409(self, api, worker, emulator):
        emulator.add_fault("slow", delay_ms=1500)
        body = submit(api, LLAMA, {"prompt": "slow"}).json()
        response = api.post(f"/api/runs/{body['id']}/cancel/")
        assert response.status_code == 200
        assert response.json()["status"] == "canceled"
        again = api.post(f"/api/runs/{body['id']}/cancel/")
        assert again.status_code == 409
        import time

        time.sleep(2.0)
        run = Run.objects.get(pk=body["id"])
        assert run.status == "canceled"
        assert run.result is None


@pytest.mark.embedded
@pytest.mark.django_db(transaction=True)
class TestEmbeddedEager:
    def test_text_and_image_in_process(self, api, eager, emulator):
        response = api.post(
            "/api/runs/", {"model": LLAMA, "input": {"prompt": "hi"}}, format="json",
            HTTP_PREFER="wait=5",
        )
        assert response.status_code == 201, response.json()
        assert response.json()["status"] == "succeeded"
        image = api.post(
            "/api/runs/", {"model": SDXL, "input": {"prompt": "x", "width": 256, "height": 256}},
            format="json", HTTP_PREFER="wait",
        )
        assert image.status_code == 201
        (media,) = image.json()["media"]
        _, data = media_bytes(api, media["url"])
        assert data.startswith(b"\x89PNG")

    def test_missing_credentials_fail_the_run_naming_the_variable(self, api, eager, settings):
        settings.INFERENCE = {**settings.INFERENCE, "API_TOKEN": ""}
        body = api.post("/api/runs/", {"model": LLAMA, "input": {"prompt": "hi"}}, format="json").json()
        run = Run.objects.get(pk=body["id"])
        assert run.status == "failed"
        assert "CLOUDFLARE_API_TOKEN" in run.error_message


@pytest.mark.embedded
@pytest.mark.django_db
class TestBadInput:
    @pytest.mark.parametrize(
        "body, field",
        [
            ({"input": {"prompt": "x"}}, "model"),
            ({"model": LLAMA}, "input"),
            ({"model": LLAMA, "input": ["not", "an", "object"]}, "input"),
            ({"model": LLAMA, "input": "text"}, "input"),
            ({"model": "@cf/unknown/model", "input": {"prompt": "x"}}, "task"),
            ({"model": "@cf/unknown/model", "task": "nope", "input": {"prompt": "x"}}, "task"),
        ],
    )
    def test_400_names_the_field_and_stores_nothing(self, api, emulator, body, field):
        response = api.post("/api/runs/", body, format="json")
        assert response.status_code == 400
        assert field in response.json()
        assert Run.objects.count() == 0
        assert emulator.requests == []

    def test_no_key_401_bad_key_401(self, api):
        from rest_framework.test import APIClient

        assert APIClient().get("/api/runs/").status_code == 401
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION="Bearer cfai_deadbeef_nope")
        assert client.get("/api/runs/").status_code == 401

    def test_revoked_key_is_refused_at_once(self, api):
        from django.utils import timezone

        assert api.get("/api/runs/").status_code == 200
        api.key.__class__.objects.filter(pk=api.key.pk).update(revoked_at=timezone.now())
        assert api.get("/api/runs/").status_code == 401


@pytest.mark.embedded
@pytest.mark.django_db
class TestScoping:
    def test_other_users_run_and_media_are_404(self, api, other_api, user):
        from django.core.files.base import ContentFile

        run = Run.objects.create(user=user, model=LLAMA, task="text-generation", input={})
        media = RunMedia(run=run, role="output", field="image", content_type="image/png", size=3, sha256="x")
        media.file.save("x.png", ContentFile(b"png"), save=True)
        assert api.get(f"/api/runs/{run.pk}/").status_code == 200
        assert other_api.get(f"/api/runs/{run.pk}/").status_code == 404
        assert other_api.post(f"/api/runs/{run.pk}/cancel/").status_code == 404
        assert other_api.get(f"/api/media/{media.pk}/").status_code == 404
        assert other_api.get("/api/runs/").json()["results"] == []

    def test_list_is_newest_first_cursor_paginated_and_filtered(self, api, user):
        for i in range(5):
            Run.objects.create(user=user, model=LLAMA if i % 2 else SDXL, task="text-generation" if i % 2 else "text-to-image", input={"i": i}, status="succeeded" if i < 3 else "failed")
        page = api.get("/api/runs/?page_size=2").json()
        assert set(page) == {"next", "previous", "results"}
        assert len(page["results"]) == 2 and page["next"]
        created = [r["created_at"] for r in page["results"]]
        assert created == sorted(created, reverse=True)
        assert {r["status"] for r in api.get("/api/runs/?status=failed").json()["results"]} == {"failed"}
        assert {r["task"] for r in api.get("/api/runs/?task=text-to-image").json()["results"]} == {"text-to-image"}
        assert api.get(f"/api/runs/?model={LLAMA}").json()["results"][0]["model"] == LLAMA
