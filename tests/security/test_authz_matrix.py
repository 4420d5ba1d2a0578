"""Every endpoint × every kind of caller, with the expected status.

Owners see their runs, team admins their team's, staff everything; team members
and outsiders get 404 for objects that are not theirs (never 403: no oracle for
which ids exist)."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from django.utils import timezone

from inference.models import Run, RunStatus, UsageDaily
from inference.services import webhooks

from ..conftest import ACCOUNT_ID
from .conftest import LLAMA, ROLES

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]

SEES = {"owner", "team_admin", "staff"}  # who may see the owner's team run


def own(role: str, allowed: int, denied: int = 404) -> dict[str, int]:
    return {r: 401 if r == "anonymous" else allowed if r in SEES else denied for r in ROLES}


def authenticated(status: int) -> dict[str, int]:
    return {r: 401 if r == "anonymous" else status for r in ROLES}


ADMIN = {r: 200 if r == "staff" else 302 for r in ROLES}
# The playground is a login page for anonymous visitors, a personal page for the rest.
PLAYGROUND = {r: 302 if r == "anonymous" else 200 for r in ROLES}

# Usage in the rollup: the owner's team run (0.5) and an outsider's own (0.25);
# each caller's total is what its scope (own, administered teams, all) sums to.
USAGE_TOTAL = {
    "other": Decimal("0.25"), "owner": Decimal("0.5"), "member": Decimal("0"),
    "team_admin": Decimal("0.5"), "staff": Decimal("0.75"),
}

MATRIX = {
    "runs-list": authenticated(200),
    "runs-create": authenticated(202),
    "run-detail": own("detail", 200),
    "run-cancel": own("cancel", 200),
    "run-events": own("events", 200),
    "media": own("media", 200),
    "models": authenticated(200),
    # The OpenAPI document is public on purpose: it describes, it holds no data.
    "schema": {r: 200 for r in ROLES},
    "docs": {r: 200 for r in ROLES},
    "admin-run-changelist": ADMIN,
    "admin-run-change": ADMIN,
    "admin-apikey-changelist": ADMIN,
    "admin-cfaccount-changelist": ADMIN,
    "usage": authenticated(200),
    "webhook-secret": authenticated(200),
    "webhook-secret-rotate": authenticated(200),
    "compat-run": authenticated(200),
    "playground": PLAYGROUND,
}

CASES = [(endpoint, role, expected[role]) for endpoint, expected in MATRIX.items() for role in ROLES]


@pytest.mark.parametrize(("endpoint", "role", "expected"), CASES, ids=[f"{e}-{r}" for e, r, _ in CASES])
def test_matrix(world, finished_run, run_media, endpoint, role, expected):
    api, web = world.api[role], world.web[role]
    run = finished_run
    if endpoint == "runs-list":
        response = api.get("/api/runs/")
    elif endpoint == "runs-create":
        before = Run.objects.count()
        response = api.post("/api/runs/", {"model": LLAMA, "input": {"prompt": "x"}}, format="json")
        assert Run.objects.count() == before + (1 if expected == 202 else 0)
    elif endpoint == "run-detail":
        response = api.get(f"/api/runs/{run.pk}/")
    elif endpoint == "run-cancel":
        run = world.make_run(status=RunStatus.QUEUED)
        response = api.post(f"/api/runs/{run.pk}/cancel/")
        run.refresh_from_db()
        assert run.status == (RunStatus.CANCELED if expected == 200 else RunStatus.QUEUED)
    elif endpoint == "run-events":
        response = api.get(f"/api/runs/{run.pk}/events/")
        if expected == 200:
            stream = b"".join(response.streaming_content).decode()
            assert "event: done" in stream and str(run.pk) in stream
    elif endpoint == "media":
        response = api.get(f"/api/media/{run_media.pk}/")
        if expected == 200:
            assert b"".join(response.streaming_content).startswith(b"\x89PNG")
    elif endpoint == "models":
        response = api.get("/api/models/")
    elif endpoint == "schema":
        response = api.get("/api/schema/")
    elif endpoint == "docs":
        response = api.get("/api/docs/")
    elif endpoint == "admin-run-changelist":
        response = web.get("/admin/inference/run/")
        if expected == 200:
            assert str(run.pk) in response.content.decode()
    elif endpoint == "admin-run-change":
        response = web.get(f"/admin/inference/run/{run.pk}/change/")
    elif endpoint == "admin-apikey-changelist":
        response = web.get("/admin/inference/apikey/")
    elif endpoint == "admin-cfaccount-changelist":
        response = web.get("/admin/inference/cloudflareaccount/")
    elif endpoint == "usage":
        today = timezone.localdate()
        UsageDaily.objects.create(day=today, user=world.users["owner"], team=world.team, model=LLAMA,
                                  task="text-generation", runs=1, succeeded=1, cost_usd=Decimal("0.5"))
        UsageDaily.objects.create(day=today, user=world.users["other"], team=None, model=LLAMA,
                                  task="text-generation", runs=1, succeeded=1, cost_usd=Decimal("0.25"))
        response = api.get("/api/usage/?group_by=user")
        if expected == 200:
            assert Decimal(response.json()["totals"]["usd"]) == USAGE_TOTAL[role]
    elif endpoint in ("webhook-secret", "webhook-secret-rotate"):
        owners = webhooks.secret_for(world.users["owner"]).secret
        if endpoint == "webhook-secret":
            response = api.get("/api/webhook-secret/")
        else:
            response = api.post("/api/webhook-secret/")
        if expected == 200:
            # Everyone gets their own secret; only the owner's own call touches the owner's.
            shown = response.json()["secret"]
            assert shown == webhooks.secret_for(world.users[role]).secret
            assert (shown == owners) == (role == "owner" and endpoint == "webhook-secret")
        unchanged = webhooks.secret_for(world.users["owner"]).secret == owners
        assert unchanged == (not (role == "owner" and endpoint == "webhook-secret-rotate"))
    elif endpoint == "compat-run":
        before = Run.objects.count()
        response = api.post(f"/client/v4/accounts/{ACCOUNT_ID}/ai/run/{LLAMA}", {"prompt": "x"}, format="json")
        if expected == 200:
            assert response.json()["success"] is True
            recorded = Run.objects.get(pk=response["X-CFAI-Run-Id"])
            assert recorded.user == world.users[role] and recorded.source == Run.Source.COMPAT
        else:
            assert response.json()["success"] is False and response.json()["errors"][0]["code"] == 10000
            assert Run.objects.count() == before
    elif endpoint == "playground":
        response = web.get("/")
        if expected == 200:
            # A personal page: the owner's run is on the owner's page only.
            assert (str(run.pk) in response.content.decode()) == (role == "owner")
    else:  # pragma: no cover
        raise AssertionError(endpoint)
    assert response.status_code == expected, (endpoint, role, getattr(response, "content", b"")[:300])
    if expected == 302:
        assert response["Location"].startswith("/login/" if endpoint == "playground" else "/admin/login/")
    if expected == 404 and endpoint.startswith(("run-", "media")):
        # The same answer as for an id that does not exist at all.
        missing = uuid.uuid4()
        path = f"/api/media/{missing}/" if endpoint == "media" else f"/api/runs/{missing}/"
        assert api.get(path).status_code == 404


@pytest.mark.parametrize("role", ROLES)
def test_list_shows_exactly_the_visible_runs(world, finished_run, role):
    other_run = Run.objects.create(
        user=world.users["other"], model=LLAMA, task="text-generation", input={}, status="succeeded"
    )
    member_run = Run.objects.create(
        user=world.users["member"], team=world.team, model=LLAMA, task="text-generation",
        input={}, status="succeeded",
    )
    response = world.api[role].get("/api/runs/")
    if role == "anonymous":
        assert response.status_code == 401
        return
    ids = {item["id"] for item in response.json()["results"]}
    expected = {
        "other": {other_run.pk},
        "owner": {finished_run.pk},
        "member": {member_run.pk},
        "team_admin": {finished_run.pk, member_run.pk},
        "staff": {finished_run.pk, member_run.pk, other_run.pk},
    }[role]
    assert ids == {str(pk) for pk in expected}


def test_session_post_needs_csrf(world):
    """Session (cookie) callers must send the CSRF token; Bearer callers need none."""
    from django.test import Client

    browser = Client(enforce_csrf_checks=True)
    browser.force_login(world.users["owner"])
    body = {"model": LLAMA, "input": {"prompt": "x"}}
    response = browser.post("/api/runs/", body, content_type="application/json")
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    assert Run.objects.count() == 0
    browser.get("/admin/login/")  # sets the csrftoken cookie
    token = browser.cookies["csrftoken"].value
    response = browser.post("/api/runs/", body, content_type="application/json", HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 202
