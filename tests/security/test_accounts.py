"""Team Cloudflare accounts: encrypted at rest, write-only in the admin,
rotatable, and used for the team's runs (checked at the emulator)."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.db import connection

from inference import crypto
from inference.crypto import DecryptionError
from inference.exceptions import MissingCredentialsError
from inference.models import CloudflareAccount, Run, Team
from inference.services.upstream import get_client

from ..conftest import (
    ACCOUNT_ID,
    TEAM_CF_EMAIL,
    TEAM_CF_KEY,
    TEAM_CF_TOKEN,
    make_client,
    wait_for_status,
)
from .conftest import LLAMA

TEAM_ACCOUNT_ID = "team-acme-account-0001"


def make_account(team: Team, *, token: str = TEAM_CF_TOKEN, **extra) -> CloudflareAccount:
    account = CloudflareAccount(team=team, account_id=extra.pop("account_id", TEAM_ACCOUNT_ID), **extra)
    account.set_credentials(api_token=token)
    account.save()
    return account


def raw_columns(account: CloudflareAccount) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT token_ciphertext, api_key_ciphertext, email, account_id FROM inference_cloudflareaccount WHERE id = %s",
            [account.pk],
        )
        return " ".join(str(v) for v in cursor.fetchone())


class TestCrypto:
    def test_round_trip_and_not_plaintext(self, settings):
        settings.INFERENCE = {**settings.INFERENCE, "ENCRYPTION_KEYS": [crypto.generate_key()]}
        token = crypto.encrypt("s3cret-value-123")
        assert "s3cret" not in token and token.startswith("gAAAA")
        assert crypto.decrypt(token) == "s3cret-value-123"
        assert crypto.encrypt("") == "" and crypto.decrypt("") == ""

    def test_rotation_first_key_encrypts_all_decrypt(self, settings):
        old, new = crypto.generate_key(), crypto.generate_key()
        settings.INFERENCE = {**settings.INFERENCE, "ENCRYPTION_KEYS": [old]}
        token = crypto.encrypt("rotate-me-please")
        settings.INFERENCE = {**settings.INFERENCE, "ENCRYPTION_KEYS": [new, old]}
        assert crypto.decrypt(token) == "rotate-me-please"
        assert crypto.needs_rotation(token)
        rotated = crypto.rotate(token)
        assert not crypto.needs_rotation(rotated)
        settings.INFERENCE = {**settings.INFERENCE, "ENCRYPTION_KEYS": [new]}
        assert crypto.decrypt(rotated) == "rotate-me-please"
        with pytest.raises(DecryptionError, match="ENCRYPTION_KEYS"):
            crypto.decrypt(token)

    def test_derived_from_secret_key_and_fallbacks(self, settings):
        settings.INFERENCE = {**settings.INFERENCE, "ENCRYPTION_KEYS": []}
        settings.SECRET_KEY = "first-secret-key-" + "x" * 40
        token = crypto.encrypt("derived")
        settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
        settings.SECRET_KEY = "second-secret-key-" + "y" * 40
        assert crypto.decrypt(token) == "derived"
        settings.SECRET_KEY_FALLBACKS = []
        with pytest.raises(DecryptionError):
            crypto.decrypt(token)

    def test_passphrase_keys_are_derived(self, settings):
        settings.INFERENCE = {**settings.INFERENCE, "ENCRYPTION_KEYS": ["a long passphrase, not a Fernet key"]}
        assert crypto.decrypt(crypto.encrypt("ok")) == "ok"


@pytest.mark.django_db
class TestAccountModel:
    def test_credentials_encrypted_at_rest(self, world):
        account = make_account(world.team)
        account.email = TEAM_CF_EMAIL
        account.set_credentials(api_key=TEAM_CF_KEY)
        account.save()
        stored = raw_columns(account)
        assert TEAM_CF_TOKEN not in stored and TEAM_CF_KEY not in stored
        fresh = CloudflareAccount.objects.get(pk=account.pk)
        assert fresh.get_api_token() == TEAM_CF_TOKEN and fresh.get_api_key() == TEAM_CF_KEY
        assert TEAM_CF_TOKEN not in repr(fresh) and TEAM_CF_TOKEN not in str(fresh)

    def test_one_active_account_per_team(self, world):
        from django.db import IntegrityError, transaction

        make_account(world.team)
        with pytest.raises(IntegrityError), transaction.atomic():
            make_account(world.team, account_id="second")
        make_account(world.team, account_id="old", is_active=False)  # inactive: kept for audit
        assert CloudflareAccount.objects.filter(team=world.team).count() == 2

    def test_rotate_command_reencrypts(self, world, settings):
        old, new = crypto.generate_key(), crypto.generate_key()
        settings.INFERENCE = {**settings.INFERENCE, "ENCRYPTION_KEYS": [old]}
        account = make_account(world.team)
        before = raw_columns(account)
        settings.INFERENCE = {**settings.INFERENCE, "ENCRYPTION_KEYS": [new, old]}
        out = io.StringIO()
        call_command("inference_rotate_credentials", stdout=out)
        assert "Re-encrypted 1 of 1" in out.getvalue()
        assert raw_columns(account) != before
        settings.INFERENCE = {**settings.INFERENCE, "ENCRYPTION_KEYS": [new]}
        assert CloudflareAccount.objects.get(pk=account.pk).get_api_token() == TEAM_CF_TOKEN
        out = io.StringIO()
        call_command("inference_rotate_credentials", stdout=out)
        assert "Re-encrypted 0 of 1" in out.getvalue()  # idempotent


@pytest.mark.django_db
class TestAdminWriteOnly:
    def add_url(self):
        return "/admin/inference/cloudflareaccount/add/"

    @pytest.fixture
    def admin_client(self, client, django_user_model, settings):
        settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
        boss = django_user_model.objects.create_superuser("boss", password="pw-boss-123")
        client.force_login(boss)
        return client

    def test_add_change_never_renders_secret(self, admin_client, world):
        response = admin_client.post(self.add_url(), {
            "team": world.team.pk, "name": "prod", "account_id": TEAM_ACCOUNT_ID, "email": "",
            "is_active": "on", "api_token": TEAM_CF_TOKEN, "api_key": "",
        })
        assert response.status_code == 302, response.content.decode()[:2000]
        account = CloudflareAccount.objects.get()
        assert account.get_api_token() == TEAM_CF_TOKEN
        assert TEAM_CF_TOKEN not in raw_columns(account)
        change = admin_client.get(f"/admin/inference/cloudflareaccount/{account.pk}/change/")
        page = change.content.decode()
        assert change.status_code == 200 and 'name="api_token"' in page
        assert TEAM_CF_TOKEN not in page and account.token_ciphertext not in page
        listing = admin_client.get("/admin/inference/cloudflareaccount/").content.decode()
        assert TEAM_CF_TOKEN not in listing and "api_token" in listing  # the scheme, not the value

        # A blank field keeps the stored secret; the rest of the form still saves.
        response = admin_client.post(f"/admin/inference/cloudflareaccount/{account.pk}/change/", {
            "team": world.team.pk, "name": "renamed", "account_id": TEAM_ACCOUNT_ID, "email": "",
            "is_active": "on", "api_token": "", "api_key": "",
        })
        assert response.status_code == 302
        account.refresh_from_db()
        assert account.name == "renamed" and account.get_api_token() == TEAM_CF_TOKEN

    def test_add_without_credentials_is_refused(self, admin_client, world):
        response = admin_client.post(self.add_url(), {
            "team": world.team.pk, "name": "x", "account_id": "a1", "email": "", "is_active": "on",
            "api_token": "", "api_key": "",
        })
        assert response.status_code == 200
        assert "Give an API token" in response.content.decode()
        assert not CloudflareAccount.objects.exists()

    def test_rotate_action(self, admin_client, world, settings):
        old, new = crypto.generate_key(), crypto.generate_key()
        settings.INFERENCE = {**settings.INFERENCE, "ENCRYPTION_KEYS": [old]}
        account = make_account(world.team)
        settings.INFERENCE = {**settings.INFERENCE, "ENCRYPTION_KEYS": [new, old]}
        admin_client.post("/admin/inference/cloudflareaccount/", {
            "action": "rotate_encryption", "_selected_action": [account.pk],
        })
        account.refresh_from_db()
        assert not crypto.needs_rotation(account.token_ciphertext)


@pytest.mark.django_db
class TestClientSelection:
    def test_team_run_uses_team_account(self, world):
        make_account(world.team)
        run = world.make_run()
        client = get_client(run)
        assert client.account_id == TEAM_ACCOUNT_ID
        assert TEAM_CF_TOKEN not in repr(client)
        assert get_client(team=world.team).account_id == TEAM_ACCOUNT_ID

    def test_run_without_team_uses_default(self, world):
        make_account(world.team)
        run = Run.objects.create(user=world.users["other"], model=LLAMA, task="text-generation", input={})
        assert get_client(run).account_id == ACCOUNT_ID
        assert get_client().account_id == ACCOUNT_ID

    def test_inactive_account_falls_back_to_default(self, world):
        make_account(world.team, is_active=False)
        assert get_client(world.make_run()).account_id == ACCOUNT_ID

    def test_account_without_credentials_names_it(self, world):
        account = CloudflareAccount.objects.create(team=world.team, account_id="empty")
        with pytest.raises(MissingCredentialsError, match=f"account {account.pk}"):
            get_client(world.make_run())


@pytest.mark.worker
class TestTeamRunsAtTheEmulator:
    def test_team_runs_use_team_account_others_default(self, worker, emulator, django_user_model):
        team = Team.objects.create(slug="acme", name="Acme")
        olivia = django_user_model.objects.create_user("olivia-w", password="x" * 12)
        make_account(team)
        legacy_team = Team.objects.create(slug="legacy", name="Legacy")
        legacy = CloudflareAccount(team=legacy_team, account_id="legacy-account", email=TEAM_CF_EMAIL)
        legacy.set_credentials(api_key=TEAM_CF_KEY)
        legacy.save()

        team_api = make_client(olivia, name="team", team=team)
        legacy_api = make_client(olivia, name="legacy", team=legacy_team)
        plain_api = make_client(olivia, name="plain")
        ids = {}
        for label, api in (("team", team_api), ("legacy", legacy_api), ("plain", plain_api)):
            body = {"model": LLAMA, "input": {"prompt": f"who am I? {label}", "max_tokens": 4}}
            response = api.post("/api/runs/", body, format="json")
            assert response.status_code == 202, response.content
            ids[label] = response.json()["id"]
        for label, run_id in ids.items():
            run = wait_for_status(run_id)
            assert run.status == "succeeded", (label, run.error_message)
        seen = {}
        for entry in emulator.requests:
            for label in ids:
                if f"who am I? {label}" in entry["body"]:
                    seen[label] = (entry["account_id"], entry["auth"])
        assert seen == {
            "team": (TEAM_ACCOUNT_ID, "bearer"),
            "legacy": ("legacy-account", "legacy"),
            "plain": (ACCOUNT_ID, "bearer"),
        }
