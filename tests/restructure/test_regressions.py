"""The two bugs the restructure (one owner per rule) fixed: run media in a
non-default storage alias, and the sweeper failing a queued run without the
rollup row and the cost reason every other finish writes."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone
from PIL import Image

from inference.models import Run, RunMedia, UsageDaily
from inference.services import recovery as reliability
from inference.services.execution import execute_run

RESNET = "@cf/microsoft/resnet-50"
LLAMA = "@cf/meta/llama-3.3-70b-instruct-fp8-fast"


def png_bytes() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def media_alias(settings, tmp_path):
    """A second storage alias, in its own folder, as INFERENCE["MEDIA_STORAGE"]."""
    folder = tmp_path / "run-media"
    settings.STORAGES = {
        **settings.STORAGES,
        "runmedia": {"BACKEND": "django.core.files.storage.FileSystemStorage",
                     "OPTIONS": {"location": str(folder)}},
    }
    settings.INFERENCE = {**settings.INFERENCE, "MEDIA_STORAGE": "runmedia", "QUEUE": "nobody-restructure"}
    return folder


@pytest.mark.embedded
@pytest.mark.django_db(transaction=True)
def test_media_round_trip_and_purge_in_a_non_default_storage(api, emulator, media_alias, settings):
    upload = io.BytesIO(png_bytes())
    upload.name = "cat.png"
    response = api.post("/api/runs/", {"model": RESNET, "image": upload}, format="multipart")
    assert response.status_code == 202, response.content
    run_id = response.json()["id"]

    # The attempt a worker makes: it must read the upload from the alias it was saved to.
    execute_run(run_id, 1)
    run = Run.objects.get(pk=run_id)
    assert run.status == "succeeded", run.error_message
    sent = [r for r in emulator.requests if r.get("model") == RESNET]
    assert sent, "the run reached the emulator"

    media = RunMedia.objects.get(run=run, role="input")
    assert (media_alias / media.file.name).is_file()
    assert not (Path(settings.MEDIA_ROOT) / media.file.name).exists()

    download = api.get(f"/api/media/{media.pk}/")
    assert download.status_code == 200
    assert b"".join(download.streaming_content) == png_bytes()

    Run.objects.filter(pk=run.pk).update(created_at=timezone.now() - timedelta(days=40))
    call_command("inference_purge", "--older-than", "30d")
    assert not RunMedia.objects.filter(pk=media.pk).exists()
    assert not (media_alias / media.file.name).exists()


@pytest.mark.embedded
@pytest.mark.django_db(transaction=True)
def test_a_queued_run_failed_by_the_sweeper_is_in_the_rollup_once_with_its_reason(user, emulator):
    run = Run.objects.create(user=user, model=LLAMA, task="text-generation", input={"prompt": "late"},
                             deadline_at=timezone.now() - timedelta(seconds=1))

    assert reliability.sweep().expired == 1
    assert reliability.sweep().expired == 0  # a second pass finds nothing to fail

    run.refresh_from_db()
    assert run.status == "failed" and "deadline" in run.error_message.lower()
    assert run.cost_reason, "the cost reason says why nothing was billed"
    assert run.reserved_usd == 0
    rollup = UsageDaily.objects.get(user=user, model=LLAMA)
    assert (rollup.runs, rollup.failed, rollup.succeeded) == (1, 1, 0)
    assert not emulator.requests, "nothing was sent upstream"
