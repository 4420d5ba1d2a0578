"""The production profile: `manage.py check --deploy` is clean with it, and the
settings it turns on are the ones we mean."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def production_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CLOUDFLARE_"))}
    env.update(
        DJANGO_DEBUG="false",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(60),
        DJANGO_ALLOWED_HOSTS="example.com",
        DATABASE_URL="sqlite:////tmp/cfai-security-deploy-check.sqlite3",
        PYTHONPATH=str(ROOT),
    )
    env.update(extra)
    return env


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_check_deploy_is_clean():
    # A production site has its Cloudflare default configured (or the inference
    # checks W001/W002 say so, rightly): give it one, everything else as briefed.
    env = production_env(CLOUDFLARE_ACCOUNT_ID="prod-account", CLOUDFLARE_API_TOKEN="prod-token-value")
    result = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], env)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "System check identified no issues" in output


def test_check_deploy_without_cloudflare_reports_only_that():
    result = run(["manage.py", "check", "--deploy"], production_env())
    output = result.stdout + result.stderr
    assert "security." not in output, output
    assert "drf_spectacular" not in output, output


def test_production_settings_values():
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.DEBUG, s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS, s.SECURE_HSTS_INCLUDE_SUBDOMAINS, "
        "s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SESSION_COOKIE_HTTPONLY, s.X_FRAME_OPTIONS, "
        "'inference.middleware.RequestSizeLimitMiddleware' in s.MIDDLEWARE)"
    )
    env = production_env(DJANGO_SETTINGS_MODULE="cfai_project.settings")
    result = run(["-c", code], env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "True", "31536000", "True", "True", "True", "True", "DENY", "True"]


def test_production_refuses_to_start_without_secret_key():
    env = production_env(DJANGO_SETTINGS_MODULE="cfai_project.settings")
    env.pop("DJANGO_SECRET_KEY")
    result = run(["-c", "import django; django.setup()"], env)
    assert result.returncode != 0 and "DJANGO_SECRET_KEY must be set" in result.stderr


@pytest.mark.django_db
def test_https_redirect_and_hsts(settings, client):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 31536000
    response = client.get("/api/models/")
    assert response.status_code == 301 and response["Location"].startswith("https://")
    response = client.get("/api/models/", secure=True)
    assert response["Strict-Transport-Security"].startswith("max-age=31536000")


@pytest.mark.parametrize(("overrides", "check_id"), [
    ({"ENCRYPTION_KEYS": "one-key-not-a-list"}, "inference.E090"),
    ({"ENCRYPTION_KEYS": ["", "x"]}, "inference.E090"),
    ({"MAX_JSON_DEPTH": 0}, "inference.E091"),
    ({"MAX_REQUEST_BYTES": "big"}, "inference.E092"),
])
def test_security_setting_checks(settings, overrides, check_id):
    from inference.checks import check_security_settings

    settings.INFERENCE = {**settings.INFERENCE, **overrides}
    assert [m.id for m in check_security_settings()] == [check_id]


def test_security_setting_checks_pass_by_default():
    from inference.checks import check_security_settings

    assert check_security_settings() == []
