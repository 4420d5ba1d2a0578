"""Our API keys: high entropy, shown once, stored as a digest, revocable at
once, never in responses, admin pages or logs."""

from __future__ import annotations

import io
import logging
import re
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from inference.models import APIKey
from inference.redaction import (
    REDACTED,
    SecretScrubFilter,
    register_secret,
    scrub,
)
from inference.services.access import authenticate_api_key, create_api_key, revoke_api_key

from ..conftest import make_client
from .conftest import LLAMA

KEY_RE = re.compile(r"^cfai_[0-9a-f]{8}_[A-Za-z0-9_\-]{43}$")


def key_row_text(key: APIKey) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM inference_apikey WHERE id = %s", [key.pk])
        return " ".join(map(str, cursor.fetchone()))


@pytest.mark.django_db
class TestKeys:
    def test_shape_entropy_and_digest_only(self, user):
        key, raw = create_api_key(user, name="k")
        assert KEY_RE.match(raw)  # 32 random bytes after the lookup prefix
        row = key_row_text(key)
        secret_part = raw.split("_", 2)[2]  # the secret may itself contain "_"
        assert raw not in row and secret_part not in row
        assert key.hashed_key != raw and len(key.hashed_key) == 64
        others = {create_api_key(user)[1] for _ in range(20)}
        assert len(others) == 20

    def test_wrong_secret_with_right_prefix_is_refused(self, user):
        key, raw = create_api_key(user)
        forged = raw[:-4] + ("AAAA" if not raw.endswith("AAAA") else "BBBB")
        assert authenticate_api_key(forged) is None
        assert authenticate_api_key(raw).pk == key.pk
        assert authenticate_api_key("cfai_" + key.prefix) is None
        assert authenticate_api_key("") is None

    def test_revocation_is_immediate(self, api):
        assert api.get("/api/runs/").status_code == 200
        revoke_api_key(api.key)
        response = api.get("/api/runs/")
        assert response.status_code == 401
        assert response["WWW-Authenticate"].startswith("Bearer")

    def test_inactive_user_is_refused(self, api, user):
        user.is_active = False
        user.save()
        assert api.get("/api/runs/").status_code == 401

    def test_last_used_at_is_recorded_and_throttled(self, api):
        assert api.key.last_used_at is None
        api.get("/api/models/")
        api.key.refresh_from_db()
        first = api.key.last_used_at
        assert first is not None and timezone.now() - first < timedelta(seconds=30)
        api.get("/api/models/")
        api.key.refresh_from_db()
        assert api.key.last_used_at == first  # one write a minute, not one a request
        APIKey.objects.filter(pk=api.key.pk).update(last_used_at=first - timedelta(minutes=5))
        api.get("/api/models/")
        api.key.refresh_from_db()
        assert api.key.last_used_at > first - timedelta(minutes=5)

    def test_key_never_in_api_responses(self, api):
        response = api.post("/api/runs/", {"model": LLAMA, "input": {"prompt": "x"}}, format="json")
        assert response.status_code == 202
        bodies = [response.content, api.get("/api/runs/").content, api.get(f"/api/runs/{response.json()['id']}/").content]
        for body in bodies:
            assert api.raw_key.encode() not in body and api.key.hashed_key.encode() not in body

    def test_management_command_prints_key_once_on_stdout(self, user):
        out, err = io.StringIO(), io.StringIO()
        call_command("inference_create_key", user.username, "--name", "cli", stdout=out, stderr=err)
        raw = out.getvalue().strip().splitlines()[-1]
        assert KEY_RE.match(raw) and out.getvalue().count(raw) == 1
        assert raw not in err.getvalue()
        assert authenticate_api_key(raw).name == "cli"


@pytest.mark.django_db
class TestAdminShowsKeyOnce:
    def test_add_shows_once_then_never(self, client, django_user_model, settings):
        settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
        boss = django_user_model.objects.create_superuser("boss", password="pw-boss-123")
        client.force_login(boss)
        response = client.post("/admin/inference/apikey/add/", {"user": boss.pk, "name": "adm"}, follow=True)
        assert response.status_code == 200
        page = response.content.decode()
        (raw,) = re.findall(r"cfai_[0-9a-f]{8}_[A-Za-z0-9_\-]{43}", page)
        key = authenticate_api_key(raw)
        assert key is not None and key.user == boss
        for url in ("/admin/inference/apikey/", f"/admin/inference/apikey/{key.pk}/change/"):
            again = client.get(url).content.decode()
            assert raw not in again and key.hashed_key not in again
        # The revoke action has immediate effect.
        client.post("/admin/inference/apikey/", {"action": "revoke", "_selected_action": [key.pk]})
        assert authenticate_api_key(raw) is None


class TestScrubFilter:
    def record(self, msg, *args, exc_info=None) -> logging.LogRecord:
        return logging.LogRecord("t", logging.INFO, __file__, 1, msg, args, exc_info)

    def formatted(self, record: logging.LogRecord) -> str:
        SecretScrubFilter().filter(record)
        return logging.Formatter("%(message)s").format(record)

    @pytest.mark.parametrize("text, secret", [
        ("headers={'Authorization': 'Bearer tok-abcdef123456'}", "tok-abcdef123456"),
        ("Authorization: Bearer tok-abcdef123456", "tok-abcdef123456"),
        ('{"X-Auth-Key": "legacy-key-987654321"}', "legacy-key-987654321"),
        ("x-auth-key=legacy-key-987654321", "legacy-key-987654321"),
        ("caller used cfai_0a1b2c3d_" + "Z" * 43, "Z" * 43),
        ("secret whsec_" + "A" * 32, "A" * 32),
    ])
    def test_patterns(self, text, secret):
        out = self.formatted(self.record("%s", text))
        assert secret not in out and REDACTED in out

    def test_registered_and_configured_secrets(self, settings):
        register_secret("decrypted-team-token-xyz")
        settings.INFERENCE = {**settings.INFERENCE, "API_TOKEN": "configured-env-token-123"}
        out = self.formatted(self.record("a %s b %s", "decrypted-team-token-xyz", "configured-env-token-123"))
        assert "decrypted-team-token-xyz" not in out and "configured-env-token-123" not in out
        register_secret("short")  # too short to redact safely: ignored
        assert scrub("a short story") == "a short story"

    def test_traceback_is_scrubbed(self):
        register_secret("traceback-secret-4242")
        try:
            raise RuntimeError("failed with token traceback-secret-4242")
        except RuntimeError:
            import sys

            record = self.record("boom", exc_info=sys.exc_info())
        out = self.formatted(record)
        assert "RuntimeError" in out and "traceback-secret-4242" not in out

    def test_custom_key_prefix(self, settings):
        settings.INFERENCE = {**settings.INFERENCE, "API_KEY_PREFIX": "acme"}
        out = scrub("key acme_0a1b2c3d_" + "Q" * 43)
        assert "Q" * 43 not in out

    def test_installed_on_the_console_handler(self, settings):
        assert "scrub_secrets" in settings.LOGGING["handlers"]["console"]["filters"]

    def test_worker_handlers_get_the_filter(self):
        from cfai_project.celery import _scrub_worker_logs

        logger = logging.getLogger("celery-test-scrub")
        handler = logging.StreamHandler(io.StringIO())
        logger.addHandler(handler)
        try:
            _scrub_worker_logs(logger=logger)
            _scrub_worker_logs(logger=logger)
            assert sum(isinstance(f, SecretScrubFilter) for f in handler.filters) == 1
            logger.warning("Authorization: Bearer leaked-token-0000")
            assert "leaked-token-0000" not in handler.stream.getvalue()
        finally:
            logger.removeHandler(handler)


@pytest.mark.django_db
def test_other_users_key_cannot_reach_runs(api, other_user):
    other = make_client(other_user)
    run_id = api.post("/api/runs/", {"model": LLAMA, "input": {"prompt": "x"}}, format="json").json()["id"]
    assert other.get(f"/api/runs/{run_id}/").status_code == 404
