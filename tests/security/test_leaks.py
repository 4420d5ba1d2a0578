"""The leak test: run a set of runs (successes and failures) with distinctive
secrets — the Cloudflare token the emulator accepts, our API keys, a team
account's encrypted token, a rejected team token — then look for them in the
logs (this process and the worker's), every API response, every admin page and
every column of every table.  Nothing may show them in plaintext.  A user's
webhook signing secret, used to sign a real delivery, must not show either
(its owner reads it from ``GET /api/webhook-secret/``, not collected here)."""

from __future__ import annotations

import logging
import uuid

import pytest
from django.contrib import admin
from django.db import connection
from django.test import Client
from django.urls import reverse

from inference.models import CloudflareAccount, Run, Team, WebhookDelivery
from inference.services import webhooks

from ..conftest import (
    CF_TOKEN,
    TEAM_CF_EMAIL,
    TEAM_CF_KEY,
    TEAM_CF_TOKEN,
    make_client,
    wait_for_status,
)
from ..test_webhooks import Receiver, verify

LLAMA = "@cf/meta/llama-3.1-8b-instruct-fp8"
SDXL = "@cf/stabilityai/stable-diffusion-xl-base-1.0"
# A token the emulator refuses: the run fails with an auth error, and the token
# must not end up in the error message either.
REJECTED_TOKEN = "team-rejected-token-Hq81ZpVv"


def marker(kind: str, times: int = 1) -> str:
    return f"[[emulator:fault={kind},times={times},key={uuid.uuid4().hex}]]"


def account(team: Team, account_id: str, *, token: str = "", email: str = "", key: str = "") -> CloudflareAccount:
    acct = CloudflareAccount(team=team, account_id=account_id, email=email)
    acct.set_credentials(api_token=token or None, api_key=key or None)
    acct.save()
    return acct


def database_text() -> str:
    """Every row of every table, every column, as text."""
    chunks = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            for row in cursor.fetchall():
                chunks.append(f"{table}: " + " | ".join(
                    bytes(v).decode("latin-1") if isinstance(v, bytes | memoryview) else str(v) for v in row
                ))
    return "\n".join(chunks)


def admin_pages(staff_client: Client) -> list[tuple[str, str]]:
    pages = []
    for model in admin.site._registry:
        opts = model._meta
        url = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
        response = staff_client.get(url)
        assert response.status_code == 200, url
        pages.append((url, response.content.decode()))
        for obj in model._default_manager.all()[:30]:
            change = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
            response = staff_client.get(change)
            assert response.status_code == 200, change
            pages.append((change, response.content.decode()))
    return pages


@pytest.mark.worker
def test_no_secret_appears_anywhere(worker, emulator, caplog, django_user_model, settings):
    caplog.set_level(logging.DEBUG)
    worker_log_start = worker.log_path.stat().st_size

    alice = django_user_model.objects.create_user("alice-leak", password="pw-alice-leak-1")
    boss = django_user_model.objects.create_superuser("boss-leak", password="pw-boss-leak-1")
    acme = Team.objects.create(slug="acme-leak", name="Acme")
    legacy = Team.objects.create(slug="legacy-leak", name="Legacy")
    broken = Team.objects.create(slug="broken-leak", name="Broken")
    account(acme, "acme-account", token=TEAM_CF_TOKEN)
    account(legacy, "legacy-account", email=TEAM_CF_EMAIL, key=TEAM_CF_KEY)
    account(broken, "broken-account", token=REJECTED_TOKEN)

    callers = {
        "default": make_client(alice, name="default"),
        "acme": make_client(alice, name="acme", team=acme),
        "legacy": make_client(alice, name="legacy", team=legacy),
        "broken": make_client(alice, name="broken", team=broken),
    }
    secrets = {
        "cloudflare env token": CF_TOKEN,
        "team token": TEAM_CF_TOKEN,
        "team legacy key": TEAM_CF_KEY,
        "rejected team token": REJECTED_TOKEN,
        **{f"api key {n}": c.raw_key for n, c in callers.items()},
        # cfai_<prefix>_<secret>: the secret itself may contain "_" (urlsafe base64).
        **{f"api key secret part {n}": c.raw_key.split("_", 2)[2] for n, c in callers.items()},
    }
    # Alice's webhook secret, fetched the way its owner does (that answer is hers
    # to see, so it is not among the responses checked below).
    webhook_secret = callers["default"].get("/api/webhook-secret/").json()["secret"]
    assert webhook_secret.startswith("whsec_")
    secrets["webhook secret"] = webhook_secret
    secrets["webhook secret body"] = webhook_secret.removeprefix("whsec_")

    submissions = [
        ("default", LLAMA, {"prompt": "plain success", "max_tokens": 8}),
        ("default", SDXL, {"prompt": "an image", "width": 256, "height": 256}),
        ("default", LLAMA, {"prompt": "rate limited " + marker("429_3040", 10)}),
        ("default", LLAMA, {"prompt": "bad upstream json " + marker("invalid_json", 10)}),
        ("acme", LLAMA, {"prompt": "team success", "max_tokens": 8}),
        ("acme", LLAMA, {"prompt": "team retry then ok " + marker("500", 1)}),
        ("acme", LLAMA, {"prompt": "team stream cut " + marker("cut_stream", 10), "stream": True}),
        ("legacy", LLAMA, {"prompt": "legacy success", "max_tokens": 8}),
        ("broken", LLAMA, {"prompt": "rejected credentials"}),
    ]
    responses: list[bytes] = []
    run_ids = []
    for caller, model, payload in submissions:
        response = callers[caller].post("/api/runs/", {"model": model, "input": payload}, format="json")
        assert response.status_code == 202, response.content
        responses.append(response.content)
        run_ids.append(response.json()["id"])
    # Mistakes a caller makes with credentials: none may be echoed back or logged.
    for header in (
        {"HTTP_AUTHORIZATION": f"Bearer {callers['default'].raw_key}x"},
        {"HTTP_AUTHORIZATION": f"Bearer {CF_TOKEN}"},
        {"HTTP_X_AUTH_KEY": TEAM_CF_KEY, "HTTP_X_AUTH_EMAIL": TEAM_CF_EMAIL},
        {"HTTP_AUTHORIZATION": f"Token {TEAM_CF_TOKEN}"},
    ):
        response = Client().get("/api/runs/", **header)
        assert response.status_code in (401, 403)
        responses.append(response.content)

    # Two runs executed in this process too (the real service call the job makes),
    # so their log records pass through caplog, not only the worker's log file.
    from inference.services.execution import execute_run
    from inference.services.submission import Submission, submit_run

    for caller, prompt in (("acme", "in-process team run"), ("broken", "in-process rejected")):
        run, _ = submit_run(
            alice, Submission(model=LLAMA, input={"prompt": prompt}),
            api_key=callers[caller].key, enqueue=False,
        )
        execute_run(run.pk)
        run_ids.append(str(run.pk))

    finished = {run_id: wait_for_status(run_id, timeout=90) for run_id in run_ids}

    # A real signed delivery in this process (its log records reach caplog): the
    # first attempt is refused by the receiver (logged, retried), the second accepted.
    settings.INFERENCE = {**settings.INFERENCE, "WEBHOOK_ALLOWED_HOSTS": ["127.0.0.1"]}
    hook = Receiver(lambda kind, n: (500, {}) if n == 1 else (200, {}))
    try:
        hooked = Run.objects.get(pk=run_ids[0])
        Run.objects.filter(pk=hooked.pk).update(webhook=hook.url, webhook_events=["completed"])
        hooked.refresh_from_db()
        first = WebhookDelivery.objects.create(
            run=hooked, event="completed", webhook_id="msg_leaktest", attempt=1, url=hook.url,
            payload=webhooks.build_payload(hooked, "completed"),
        )
        webhooks.deliver(first.pk)
        # The retry was queued with a backoff of seconds; made here first (the
        # worker's later claim then finds it taken).
        webhooks.deliver(WebhookDelivery.objects.get(webhook_id="msg_leaktest", attempt=2).pk)
        assert [r["headers"]["webhook-id"] for r in hook.requests] == ["msg_leaktest"] * 2
        for request in hook.requests:
            verify(webhook_secret, request)  # signed with the decrypted secret
    finally:
        hook.close()

    statuses = [finished[r].status for r in run_ids]
    assert statuses.count("succeeded") >= 6 and statuses.count("failed") >= 4, statuses
    broken_run = finished[run_ids[len(submissions) - 1]]
    assert broken_run.status == "failed" and broken_run.error_message
    accounts_seen = {entry["account_id"] for entry in emulator.requests}
    assert {"acme-account", "legacy-account", "broken-account", "test-account"} <= accounts_seen

    for caller in callers.values():
        listing = caller.get("/api/runs/?page_size=200")
        responses.append(listing.content)
        for item in listing.json()["results"]:
            responses.append(caller.get(item["urls"]["self"]).content)
            responses.append(b"".join(caller.get(item["urls"]["events"]).streaming_content))
            for media in item["media"]:
                responses.append(b"".join(caller.get(media["url"]).streaming_content))
        responses.append(caller.get("/api/models/").content)
    responses.append(Client().get("/api/schema/").content)

    staff = Client()
    staff.force_login(boss)
    pages = admin_pages(staff)
    assert any(str(run_ids[0]) in text for _, text in pages)
    assert any("acme-account" in text for _, text in pages)

    worker_log = worker.log_path.read_bytes()[worker_log_start:].decode("utf-8", "replace")
    assert worker_log.count("inference.execute_run") >= len(run_ids)  # the worker logged these runs
    captured = caplog.text + "\n".join(
        f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records
    )
    database = database_text()
    assert CloudflareAccount.objects.count() == 3 and Run.objects.count() == len(run_ids)

    places = {
        "captured logs": captured,
        "worker log": worker_log,
        "API responses": b"\n".join(responses).decode("latin-1"),
        **{f"admin {url}": text for url, text in pages},
        "database": database,
    }
    leaks = [
        (what, where) for what, secret in secrets.items() for where, text in places.items() if secret in text
    ]
    assert leaks == []
