"""The app as a stranger installs it: build the wheel, install it into a fresh
virtualenv, and drive a minimal host project (not cfai_project) from zero to a
finished run against the emulator, with Celery eager."""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from .conftest import ACCOUNT_ID, CF_TOKEN

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    cmd = [sys.executable, "-m", "build", "--wheel", "--outdir", str(out)]
    try:
        import hatchling  # noqa: F401

        cmd.append("--no-isolation")  # the backend is here already: no download
    except ImportError:
        pass
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (built,) = out.glob("cfai_inference-*.whl")
    return built


def test_wheel_carries_migrations_templates_and_static(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "inference/migrations/0001_initial.py" in names
    assert "inference/templates/inference/playground/index.html" in names
    assert "inference/templates/inference/playground/login.html" in names
    assert "inference/static/inference/playground.js" in names
    assert "inference/static/inference/playground.css" in names
    assert "inference/management/commands/inference_run.py" in names
    # The host site and the tests are not part of the app.
    assert not any(n.startswith(("cfai_project/", "tests/")) for n in names)
    assert not any("__pycache__" in n for n in names)


HOST_SETTINGS = """
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "host-site-test-key-not-secret-0123456789-abcdefghijkl"
DEBUG = True
ALLOWED_HOSTS = ["testserver", "localhost"]
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "inference",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "hostsite.urls"
TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "DIRS": [],
    "APP_DIRS": True,
    "OPTIONS": {"context_processors": [
        "django.template.context_processors.request",
        "django.contrib.auth.context_processors.auth",
        "django.contrib.messages.context_processors.messages",
    ]},
}]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "db.sqlite3"}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "static"
MEDIA_ROOT = BASE_DIR / "media"
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "inference.api.authentication.APIKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
CELERY_BROKER_URL = "memory://"
CELERY_TASK_ALWAYS_EAGER = True
INFERENCE = {
    "ACCOUNT_ID": "%(account)s",
    "API_TOKEN": "%(token)s",
    "BASE_URL": "%(base_url)s",
    "REDIS_URL": None,
}
"""

HOST_URLS = """
from django.urls import include, path

urlpatterns = [
    path("api/", include("inference.api.urls")),
    path("playground/", include("inference.playground.urls")),
]
"""

HOST_CELERY = """
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hostsite.settings")
app = Celery("hostsite")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(related_name="jobs")
"""

HOST_MANAGE = """
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hostsite.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
"""

# Submits over the REST API with an API key, the way a user's script would.
HOST_SCRIPT = """
import json, os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hostsite.settings")
import django
django.setup()
from django.contrib.auth import get_user_model
from django.template.loader import get_template
from django.test import Client
from inference.services.access import create_api_key

user = get_user_model().objects.create_user("hostuser", password="pw-hostuser-1")
_key, raw = create_api_key(user, name="host")
client = Client(HTTP_AUTHORIZATION=f"Bearer {raw}")
text = client.post("/api/runs/", {"model": "@cf/meta/llama-3.1-8b-instruct-fp8",
                   "input": {"prompt": "Hello from a host site", "max_tokens": 8}},
                   content_type="application/json", HTTP_PREFER="wait=30")
image = client.post("/api/runs/", {"model": "@cf/stabilityai/stable-diffusion-xl-base-1.0",
                    "input": {"prompt": "a lighthouse", "width": 256, "height": 256}},
                    content_type="application/json", HTTP_PREFER="wait=30")
media_url = image.json()["result"]["image"]
media = client.get(media_url)
schema = client.get("/api/schema/", HTTP_ACCEPT="application/json")
get_template("inference/playground/index.html")
print(json.dumps({
    "text_status": text.status_code, "text": text.json(),
    "image_status": image.status_code, "media_status": media.status_code,
    "media_type": media["Content-Type"], "media_head": b"".join(media.streaming_content)[:8].hex(),
    "schema_status": schema.status_code,
    "playground_status": Client().get("/playground/").status_code,
}))
"""


def _site_packages(venv: Path) -> Path:
    (path,) = venv.glob("lib/python*/site-packages")
    return path


@pytest.fixture(scope="module")
def host(tmp_path_factory, wheel) -> dict:
    """A fresh virtualenv with the wheel installed (dependencies reused from this
    environment through a .pth file, so no network), and a host project."""
    base = tmp_path_factory.mktemp("host")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    # Plain path lines: .pth files found inside those directories are not run, so
    # nothing but the third-party dependencies becomes importable.
    (_site_packages(venv) / "_reuse_deps.pth").write_text(
        "\n".join(site.getsitepackages()) + "\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
         "--no-index", "--quiet", str(wheel)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    project = base / "project"
    (project / "hostsite").mkdir(parents=True)
    (project / "manage.py").write_text(HOST_MANAGE)
    (project / "hostsite" / "__init__.py").write_text(
        "from .celery import app as celery_app\n\n__all__ = ['celery_app']\n"
    )
    (project / "hostsite" / "celery.py").write_text(HOST_CELERY)
    (project / "hostsite" / "urls.py").write_text(HOST_URLS)
    return {"python": python, "project": project, "venv": venv}


def _run(host: dict, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CLOUDFLARE_", "CFAI_", "CELERY_"))}
    env.pop("PYTHONPATH", None)
    env.pop("DATABASE_URL", None)
    return subprocess.run(
        [str(host["python"]), *args], cwd=host["project"], env=env,
        capture_output=True, text=True, timeout=timeout,
    )


def test_wheel_installs_and_runs_in_a_host_project(host, emulator):
    (host["project"] / "hostsite" / "settings.py").write_text(
        HOST_SETTINGS % {"account": ACCOUNT_ID, "token": CF_TOKEN, "base_url": emulator.base_url}
    )
    where = _run(host, "-c", "import inference, importlib.util as u; "
                 "print(inference.__file__); print(u.find_spec('cfai_project'))")
    assert where.returncode == 0, where.stderr
    location, cfai_project = where.stdout.split()
    assert location.startswith(str(host["venv"])), location  # the wheel, not this checkout
    assert cfai_project == "None"

    check = _run(host, "manage.py", "check", "--fail-level", "WARNING")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "no issues" in check.stdout

    migrate = _run(host, "manage.py", "migrate", "--noinput")
    assert migrate.returncode == 0, migrate.stderr[-2000:]
    assert "inference.0001_initial" in migrate.stdout or "Applying inference" in migrate.stdout

    static = _run(host, "manage.py", "collectstatic", "--noinput")
    assert static.returncode == 0, static.stderr[-2000:]
    assert (host["project"] / "static" / "inference" / "playground.js").is_file()

    (host["project"] / "check_run.py").write_text(HOST_SCRIPT)
    run = _run(host, "check_run.py")
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["text_status"] == 201, out
    assert out["text"]["status"] == "succeeded" and out["text"]["result"]["response"]
    assert out["image_status"] == 201
    assert out["media_status"] == 200 and out["media_type"] == "image/png"
    assert out["media_head"] == "89504e470d0a1a0a"  # the PNG signature
    assert out["schema_status"] == 200
    assert out["playground_status"] == 302  # login first

    # The CLI works in the host too, through the same services.
    cli = _run(host, "manage.py", "inference_run", "@cf/meta/llama-3.1-8b-instruct-fp8",
               "--input", '{"prompt": "hi from the CLI", "max_tokens": 4}', "--wait",
               "--user", "hostuser")
    assert cli.returncode == 0, cli.stderr[-2000:]
    printed = json.loads(cli.stdout)
    assert printed["status"] == "succeeded" and printed["result"]["response"]


def test_check_reports_missing_and_contradictory_settings(host, emulator):
    settings = HOST_SETTINGS % {"account": "", "token": "", "base_url": emulator.base_url}
    settings += (
        "\nINFERENCE.update({'RETRY_BACKOFF_BASE': 30, 'RETRY_BACKOFF_MAX': 5, 'COLOUR': 1})\n"
        "REST_FRAMEWORK['DEFAULT_PERMISSION_CLASSES'] = []\n"
    )
    (host["project"] / "hostsite" / "settings.py").write_text(settings)
    check = _run(host, "manage.py", "check")
    assert check.returncode != 0
    report = check.stderr + check.stdout
    for check_id in ("inference.E002", "inference.E006", "inference.E011", "inference.W001", "inference.W002"):
        assert check_id in report, report
    assert "COLOUR" in report and "RETRY_BACKOFF_MAX" in report
