"""Webhook signing secrets at rest: encrypted like team credentials, decrypted
for signing and for their owner, re-encrypted by the rotation command, and
existing plaintext rows encrypted by the migration."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from inference import crypto
from inference.models import WebhookSecret
from inference.services import webhooks
from inference.services.access import rotate_credentials

SECRET_MIGRATION = ("inference", "0006_webhook_secret_encrypted")
BEFORE = ("inference", "0005_cost")


def raw_row(pk: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM inference_webhooksecret WHERE id = %s", [pk])
        return " | ".join(str(v) for v in cursor.fetchone())


@pytest.mark.django_db
class TestEncryptedAtRest:
    def test_stored_encrypted_and_signs_with_the_plaintext(self, api, user):
        shown = api.get("/api/webhook-secret/").json()["secret"]
        stored = WebhookSecret.objects.get(user=user)
        row = raw_row(stored.pk)
        assert shown.startswith("whsec_")
        assert shown not in row and shown.removeprefix("whsec_") not in row
        assert stored.secret_ciphertext.startswith("gAAAA") and stored.secret == shown
        headers = webhooks.sign_headers(stored.secret, "msg_1", '{"a":1}')
        Webhook(shown).verify('{"a":1}', headers)  # an independent verifier accepts it

    def test_rotating_the_secret_stores_new_ciphertext(self, api, user):
        first = api.get("/api/webhook-secret/").json()["secret"]
        before = WebhookSecret.objects.get(user=user).secret_ciphertext
        rotated = api.post("/api/webhook-secret/").json()["secret"]
        row = WebhookSecret.objects.get(user=user)
        assert rotated != first and row.secret == rotated
        assert row.secret_ciphertext != before and rotated not in raw_row(row.pk)

    def test_rotation_command_reencrypts_webhook_secrets(self, user, settings):
        old, new = crypto.generate_key(), crypto.generate_key()
        settings.INFERENCE = {**settings.INFERENCE, "ENCRYPTION_KEYS": [old]}
        secret = webhooks.secret_for(user)
        plaintext, before = secret.secret, secret.secret_ciphertext
        settings.INFERENCE = {**settings.INFERENCE, "ENCRYPTION_KEYS": [new, old]}
        out = io.StringIO()
        call_command("inference_rotate_credentials", stdout=out)
        assert "Re-encrypted 1 of 1" in out.getvalue()
        settings.INFERENCE = {**settings.INFERENCE, "ENCRYPTION_KEYS": [new]}  # old key dropped
        row = WebhookSecret.objects.get(pk=secret.pk)
        assert row.secret_ciphertext != before and row.secret == plaintext
        assert rotate_credentials() == 0  # idempotent


@pytest.mark.django_db(transaction=True)
def test_migration_encrypts_existing_plaintext_rows(django_user_model):
    user = django_user_model.objects.create_user("legacy-hooks", password="x")
    plaintext = "whsec_" + "QUJD" * 11
    executor = MigrationExecutor(connection)
    try:
        executor.migrate([BEFORE])
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO inference_webhooksecret (user_id, secret, created_at) VALUES (%s, %s, %s)",
                [user.pk, plaintext, timezone.now()],
            )
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate([SECRET_MIGRATION])
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes("inference"))
    row = WebhookSecret.objects.get(user=user)
    assert plaintext not in raw_row(row.pk)
    assert row.secret == plaintext  # receivers keep verifying with the same secret
