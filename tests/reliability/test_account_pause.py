"""The 3036 pause (daily allocation used up) is per Cloudflare account actually
used: a team's own account running out stops that team's runs only, and the
default account running out does not stop teams with their own account.
Checked at the emulator: which account each call reached, and that a paused
account's runs reach nothing."""

from __future__ import annotations

import pytest

from inference.models import CloudflareAccount, Run, Team
from inference.services import recovery as reliability
from inference.services.execution import execute_run
from inference.services.submission import Submission, submit_run

from ..conftest import ACCOUNT_ID, TEAM_CF_TOKEN, make_client

LLAMA = "@cf/meta/llama-3.1-8b-instruct-fp8"
ACME = "acme-own-account"
GLOBEX = "globex-own-account"


@pytest.fixture
def teams(user):
    made = {}
    for slug, account_id in (("acme", ACME), ("globex", GLOBEX)):
        team = Team.objects.create(slug=slug, name=slug.title())
        account = CloudflareAccount(team=team, account_id=account_id)
        account.set_credentials(api_token=TEAM_CF_TOKEN)
        account.save()
        made[slug] = make_client(user, name=slug, team=team).key
    made["default"] = make_client(user, name="default").key
    yield made
    for account_id in (ACME, GLOBEX):
        reliability.clear_pause(account_id)


def run_with(user, key, prompt: str) -> Run:
    run, _ = submit_run(user, Submission(model=LLAMA, input={"prompt": prompt}),
                                 api_key=key, enqueue=False)
    execute_run(run.pk)
    return Run.objects.get(pk=run.pk)


def calls(emulator, text: str) -> list[str]:
    return [r["account_id"] for r in emulator.requests if text in r["body"]]


@pytest.mark.django_db
def test_team_account_3036_pauses_that_account_only(user, teams, emulator):
    emulator.add_fault("429_3036", count=1)
    first = run_with(user, teams["acme"], "acme uses up its allocation")
    assert first.status == "failed" and first.error_code == 3036
    assert calls(emulator, "acme uses up") == [ACME]
    assert reliability.account_paused(ACME) and not reliability.account_paused(ACCOUNT_ID)

    again = run_with(user, teams["acme"], "acme while paused")
    assert again.status == "failed" and again.error_code == 3036
    assert "Not sent upstream" in again.error_message
    assert calls(emulator, "acme while paused") == []  # nothing reached upstream

    other_team = run_with(user, teams["globex"], "globex is not paused")
    default = run_with(user, teams["default"], "default is not paused")
    assert (other_team.status, default.status) == ("succeeded", "succeeded")
    assert calls(emulator, "globex is not paused") == [GLOBEX]
    assert calls(emulator, "default is not paused") == [ACCOUNT_ID]


@pytest.mark.django_db
def test_default_account_3036_does_not_pause_team_accounts(user, teams, emulator):
    emulator.add_fault("429_3036", count=1)
    first = run_with(user, teams["default"], "default uses up its allocation")
    assert first.error_code == 3036 and calls(emulator, "default uses up") == [ACCOUNT_ID]
    assert reliability.account_paused(ACCOUNT_ID) and not reliability.account_paused(ACME)

    blocked = run_with(user, teams["default"], "default while paused")
    assert blocked.status == "failed" and calls(emulator, "default while paused") == []
    team_run = run_with(user, teams["acme"], "acme still runs")
    assert team_run.status == "succeeded" and calls(emulator, "acme still runs") == [ACME]
