"""Idempotency-Key, caller throttling, retention, the sweeper, take-over of a
dead attempt, upstream pacing and timeouts (in-process; the emulator is real)."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.core.files.base import ContentFile
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from inference.models import Run, RunMedia
from inference.services import recovery as reliability
from inference.services.execution import execute_run

from ..conftest import make_client, uses_postgres

LLAMA = "@cf/meta/llama-3.1-8b-instruct-fp8"
BODY = {"model": LLAMA, "input": {"prompt": "idempotent"}}


def post(api, body=BODY, key="key-1", **extra):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    return api.post("/api/runs/", body, format="json", **headers, **extra)


# --- Idempotency-Key ----------------------------------------------------------------


@pytest.mark.embedded
@pytest.mark.django_db(transaction=True)
class TestIdempotency:
    def test_same_key_and_body_returns_the_original_and_queues_nothing(self, api, eager, emulator):
        first = post(api)
        assert first.status_code in (201, 202)
        calls = len(emulator.requests)
        assert calls == 1  # eager: the first submission ran
        second = post(api)
        assert second.status_code in (201, 202)
        assert second.json()["id"] == first.json()["id"]
        assert Run.objects.count() == 1
        assert len(emulator.requests) == calls  # nothing new executed

    def test_same_key_other_body_is_422(self, api, eager):
        assert post(api).status_code in (201, 202)
        response = post(api, {"model": LLAMA, "input": {"prompt": "something else"}})
        assert response.status_code == 422
        assert "Idempotency-Key" in response.json()
        assert Run.objects.count() == 1

    def test_keys_are_per_user(self, api, other_api, eager):
        mine = post(api).json()["id"]
        theirs = post(other_api).json()["id"]
        assert mine != theirs

    def test_key_expires_after_24_hours(self, api, eager):
        old_id = post(api).json()["id"]
        Run.objects.filter(pk=old_id).update(created_at=timezone.now() - timedelta(hours=24, minutes=1))
        response = post(api, {"model": LLAMA, "input": {"prompt": "a new day"}})
        assert response.status_code in (201, 202), response.json()
        assert response.json()["id"] != old_id
        assert Run.objects.get(pk=old_id).idempotency_key == ""  # the expired key was purged
        assert Run.objects.count() == 2

    def test_sweeper_purges_expired_keys(self, user):
        fresh = Run.objects.create(user=user, model=LLAMA, task="text-generation", input={}, idempotency_key="a", status="succeeded")
        old = Run.objects.create(user=user, model=LLAMA, task="text-generation", input={}, idempotency_key="b", status="succeeded")
        Run.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(hours=25))
        assert reliability.sweep().keys_cleared == 1
        assert Run.objects.get(pk=old.pk).idempotency_key == ""
        assert Run.objects.get(pk=fresh.pk).idempotency_key == "a"


@pytest.mark.skipif(not uses_postgres(), reason="concurrent writers need PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_concurrent_same_key_submissions_make_one_run(user, settings):
    # No worker consumes this queue: submissions only.
    settings.INFERENCE = {**settings.INFERENCE, "QUEUE": f"nobody-{uuid.uuid4().hex[:6]}"}
    clients = [make_client(user, name=f"c{i}") for i in range(8)]
    barrier = threading.Barrier(len(clients))
    results: list[tuple[int, str]] = []

    def go(client):
        from django.db import connection

        barrier.wait()
        try:
            response = post(client, key="race")
            results.append((response.status_code, response.json().get("id")))
        finally:
            connection.close()

    threads = [threading.Thread(target=go, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(results) == 8
    assert {code for code, _ in results} == {202}
    assert len({run_id for _, run_id in results}) == 1
    assert Run.objects.filter(idempotency_key="race").count() == 1


# --- Caller throttling ---------------------------------------------------------------


@pytest.mark.embedded
@pytest.mark.django_db
class TestThrottling:
    @pytest.fixture(autouse=True)
    def low_rates(self, settings):
        settings.REST_FRAMEWORK = {
            **settings.REST_FRAMEWORK,
            "DEFAULT_THROTTLE_RATES": {"inference_key": "4/min", "inference_submit": "2/min"},
        }

    def _forget(self, client):
        for scope in ("inference_key", "inference_submit"):
            cache.delete(f"throttle:{scope}:key:{client.key.pk}")

    def test_per_key_429_with_retry_after(self, api, other_api):
        self._forget(api)
        self._forget(other_api)
        for _ in range(4):
            assert api.get("/api/runs/").status_code == 200
        response = api.get("/api/runs/")
        assert response.status_code == 429
        assert 0 < int(response["Retry-After"]) <= 60
        # Another key is not affected.
        assert other_api.get("/api/runs/").status_code == 200

    def test_submissions_have_their_own_lower_rate(self, api):
        self._forget(api)
        bad = {"model": LLAMA, "input": "not an object"}
        assert api.post("/api/runs/", bad, format="json").status_code == 400
        assert api.post("/api/runs/", bad, format="json").status_code == 400
        response = api.post("/api/runs/", bad, format="json")
        assert response.status_code == 429 and int(response["Retry-After"]) > 0
        assert Run.objects.count() == 0


# --- Retention -------------------------------------------------------------------------


def _run_with_media(user, *, days_old: int, status: str = "succeeded") -> tuple[Run, RunMedia]:
    run = Run.objects.create(user=user, model=LLAMA, task="text-generation", input={}, status=status)
    Run.objects.filter(pk=run.pk).update(created_at=timezone.now() - timedelta(days=days_old))
    run.refresh_from_db()
    media = RunMedia(run=run, role="output", field="image", content_type="image/png", size=3, sha256="x")
    media.file.save("x.png", ContentFile(b"png"), save=True)
    return run, media


@pytest.mark.embedded
@pytest.mark.django_db(transaction=True)
class TestPurge:
    def test_purges_old_finished_runs_and_files_in_batches(self, user, capsys):
        old = [_run_with_media(user, days_old=40) for _ in range(5)]
        recent, recent_media = _run_with_media(user, days_old=5)
        running, _ = _run_with_media(user, days_old=40, status="running")
        call_command("inference_purge", "--older-than", "30d", "--batch-size", "2")
        assert "Deleted 5 runs and 5 media files" in capsys.readouterr().out
        assert not Run.objects.filter(pk__in=[r.pk for r, _ in old]).exists()
        for _, media in old:
            assert not media.file.storage.exists(media.file.name)
        assert Run.objects.filter(pk__in=[recent.pk, running.pk]).count() == 2
        assert recent_media.file.storage.exists(recent_media.file.name)

    def test_bad_age_is_a_clear_error(self):
        with pytest.raises(CommandError, match="--older-than"):
            call_command("inference_purge", "--older-than", "thirty days")

    @pytest.mark.skipif(not uses_postgres(), reason="concurrent purges need PostgreSQL")
    def test_two_purges_at_once(self, user):
        old = [_run_with_media(user, days_old=40) for _ in range(30)]
        errors: list[BaseException] = []

        def purge():
            from django.db import connection

            try:
                call_command("inference_purge", "--older-than", "30d", "--batch-size", "3")
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
            finally:
                connection.close()

        threads = [threading.Thread(target=purge) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert errors == []
        assert Run.objects.count() == 0
        assert RunMedia.objects.count() == 0
        for _, media in old:
            assert not media.file.storage.exists(media.file.name)


# --- Sweeper and take-over ---------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
class TestSweeper:
    def test_fails_running_runs_past_their_deadline(self, user):
        run = Run.objects.create(
            user=user, model=LLAMA, task="text-generation", input={}, status="running", attempts=1,
            heartbeat_at=timezone.now(), deadline_at=timezone.now() - timedelta(seconds=1),
        )
        assert reliability.sweep().expired == 1
        run.refresh_from_db()
        assert run.status == "failed" and "deadline exceeded" in run.error_message.lower()
        assert run.attempts == 1

    def test_requeues_old_queued_runs_once_per_threshold(self, user, settings):
        settings.INFERENCE = {**settings.INFERENCE, "SWEEP_QUEUED_AFTER": 60, "QUEUE": f"nobody-{uuid.uuid4().hex[:6]}"}
        run = Run.objects.create(user=user, model=LLAMA, task="text-generation", input={})
        Run.objects.filter(pk=run.pk).update(created_at=timezone.now() - timedelta(minutes=5))
        young = Run.objects.create(user=user, model=LLAMA, task="text-generation", input={})
        assert reliability.sweep().requeued == 1
        assert reliability.sweep().requeued == 0  # not again within the threshold
        assert Run.objects.get(pk=young.pk).status == "queued"

    def test_stale_attempt_is_taken_over_exactly_once(self, user, emulator):
        stale = timezone.now() - timedelta(minutes=5)
        run = Run.objects.create(
            user=user, model=LLAMA, task="text-generation", input={"prompt": "take over"},
            status="running", attempts=1, heartbeat_at=stale,
            deadline_at=timezone.now() + timedelta(minutes=5),
        )
        execute_run(run.pk, 1)  # the redelivered message of the dead attempt
        run.refresh_from_db()
        assert run.status == "succeeded" and run.attempts == 2
        execute_run(run.pk, 1)  # and again: nothing happens
        execute_run(run.pk, 2)
        assert len([r for r in emulator.requests if "take over" in r["body"]]) == 1
        assert Run.objects.get(pk=run.pk).attempts == 2

    def test_live_attempt_is_not_taken_over(self, user, emulator):
        run = Run.objects.create(
            user=user, model=LLAMA, task="text-generation", input={"prompt": "alive"},
            status="running", attempts=1, heartbeat_at=timezone.now(),
        )
        execute_run(run.pk, 1)
        run.refresh_from_db()
        assert run.status == "running" and run.attempts == 1
        assert [r for r in emulator.requests if "alive" in r["body"]] == []

    def test_lost_last_attempt_fails_clearly(self, user, settings, emulator):
        settings.INFERENCE = {**settings.INFERENCE, "MAX_ATTEMPTS": 2}
        run = Run.objects.create(
            user=user, model=LLAMA, task="text-generation", input={"prompt": "x"},
            status="running", attempts=2, heartbeat_at=timezone.now() - timedelta(minutes=5),
        )
        execute_run(run.pk, 2)
        run.refresh_from_db()
        assert run.status == "failed" and run.attempts == 2
        assert "was lost" in run.error_message and "MAX_ATTEMPTS=2" in run.error_message
        assert emulator.requests == []


# --- Pacing and timeouts -----------------------------------------------------------------


def test_token_bucket_grants_burst_then_waits(settings):
    settings.INFERENCE = {**settings.INFERENCE, "RATE_LIMITS": {"text-generation": 60}, "RATE_LIMIT_BURST": 2}
    account = f"acct-{uuid.uuid4().hex[:8]}"
    assert reliability.acquire_slot(LLAMA, "text-generation", account) == 0.0
    assert reliability.acquire_slot(LLAMA, "text-generation", account) == 0.0
    wait = reliability.acquire_slot(LLAMA, "text-generation", account)
    assert 0.0 < wait <= 1.0
    # Another account and another class have their own buckets.
    assert reliability.acquire_slot(LLAMA, "text-generation", account + "x") == 0.0
    assert reliability.acquire_slot("@cf/baai/bge-large-en-v1.5", "text-embeddings", account) == 0.0


def test_catalog_classes_drive_the_default_limits():
    assert reliability.rate_limit_per_minute(LLAMA, "text-generation") == ("text-generation", 300.0)
    assert reliability.rate_limit_per_minute("@cf/baai/bge-large-en-v1.5", "text-embeddings") == ("bge-large", 1500.0)


def test_pause_lasts_until_utc_midnight():
    from datetime import UTC, datetime

    assert reliability.next_utc_midnight(datetime(2026, 3, 4, 23, 59, tzinfo=UTC)) == datetime(2026, 3, 5, tzinfo=UTC)
    account = f"acct-{uuid.uuid4().hex[:8]}"
    reliability.pause_account("3036 daily allocation", account)
    ttl = reliability.get_redis().ttl(f"cfai:paused:{account}")
    assert 0 < ttl <= 24 * 3600
    assert reliability.account_paused(account) == "3036 daily allocation"
    reliability.clear_pause(account)
    assert reliability.account_paused(account) is None


@pytest.mark.embedded
@pytest.mark.django_db(transaction=True)
def test_task_timeout_fails_a_slow_call(api, eager, emulator, settings):
    settings.INFERENCE = {**settings.INFERENCE, "TASK_TIMEOUTS": {"text-generation": 0.5}, "MAX_ATTEMPTS": 1}
    emulator.add_fault("slow", delay_ms=3000)
    body = api.post("/api/runs/", {"model": LLAMA, "input": {"prompt": "slow"}}, format="json").json()
    run = Run.objects.get(pk=body["id"])
    assert run.status == "failed" and run.attempts == 1
    assert "time" in run.error_message.lower()
    assert run.upstream_ms < 2500


@pytest.mark.embedded
@pytest.mark.django_db(transaction=True)
def test_run_past_its_deadline_is_not_sent(api, user, emulator):
    run = Run.objects.create(
        user=user, model=LLAMA, task="text-generation", input={"prompt": "late"},
        deadline_at=timezone.now() - timedelta(seconds=1),
    )
    execute_run(run.pk, 1)
    run.refresh_from_db()
    assert run.status == "failed" and "deadline exceeded" in run.error_message.lower()
    # (a slow call of an earlier test may still be logged: look for this prompt only)
    assert [r for r in emulator.requests if "late" in r["body"]] == []
