"""Shared fixtures: the emulator (a real HTTP server), callers with API keys,
and a real Celery worker process against the test database and Redis."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from inference.emulator.server import EmulatorServer

ROOT = Path(__file__).resolve().parent.parent
CF_TOKEN = "test-cf-token-0123456789"
ACCOUNT_ID = "test-account"
# A team's own Cloudflare account (stored encrypted in the database): a second
# token, and a legacy e-mail + global key, the emulator also accepts.
TEAM_CF_TOKEN = "team-cf-token-TQ7xk29vLmZp4Rw8"
TEAM_CF_EMAIL = "ops@team.example"
TEAM_CF_KEY = "team-cf-global-key-9f8e7d6c5b4a"
# One queue per test session: several suites may share this machine's Redis.
QUEUE = f"cfai-test-{uuid.uuid4().hex[:8]}"


def uses_postgres() -> bool:
    return settings.DATABASES["default"]["ENGINE"].endswith("postgresql")


@pytest.fixture(scope="session")
def emulator():
    server = EmulatorServer(
        tokens={CF_TOKEN, TEAM_CF_TOKEN}, legacy_credentials=(TEAM_CF_EMAIL, TEAM_CF_KEY)
    ).start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def inference_config(request, settings, tmp_path):
    """Point the app at the emulator (never at Cloudflare) with fast retries."""
    emulator = request.getfixturevalue("emulator")
    emulator.reset()
    settings.INFERENCE = {
        **settings.INFERENCE,
        "ACCOUNT_ID": ACCOUNT_ID,
        "API_TOKEN": CF_TOKEN,
        "EMAIL": "",
        "API_KEY": "",
        "BASE_URL": emulator.base_url,
        "RETRY_BACKOFF_BASE": 0.05,
        "RETRY_BACKOFF_MAX": 2.0,
        "QUEUE": QUEUE,
    }
    settings.MEDIA_ROOT = str(getattr(request.config, "_cfai_media_root", tmp_path / "media"))
    # A 3036 in one test pauses the test account in Redis: never leak it into the next.
    from inference.services import pricing
    from inference.services import recovery as reliability

    reliability.clear_pause()
    # Each test's prices roll back with it; the per-process price cache must not outlive them.
    pricing.clear_price_cache()
    yield
    reliability.clear_pause()
    pricing.clear_price_cache()


@pytest.fixture(scope="session", autouse=True)
def _shared_media_root(request, tmp_path_factory):
    # The worker process and the test process must see the same MEDIA_ROOT.
    request.config._cfai_media_root = tmp_path_factory.mktemp("media")


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user("alice", password="pw-alice-123")


@pytest.fixture
def other_user(django_user_model):
    return django_user_model.objects.create_user("bob", password="pw-bob-123")


def make_client(user, **key_kwargs):
    from inference.services.access import create_api_key

    key, raw = create_api_key(user, **key_kwargs)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    client.raw_key = raw
    client.key = key
    return client


@pytest.fixture
def api(user):
    return make_client(user, name="test")


@pytest.fixture
def other_api(other_user):
    return make_client(other_user, name="other")


@pytest.fixture
def eager(settings):
    """Run Celery tasks in-process (the embedded SQLite default)."""
    from cfai_project.celery import app

    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = False


def _worker_env(emulator, media_root) -> dict[str, str]:
    from django.db import connection

    db = connection.settings_dict
    env = dict(os.environ)
    if uses_postgres():
        env["DATABASE_URL"] = (
            f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
        )
    else:
        env["DATABASE_URL"] = f"sqlite:///{db['NAME']}"
    env.update(
        {
            "CLOUDFLARE_ACCOUNT_ID": ACCOUNT_ID,
            "CLOUDFLARE_API_TOKEN": CF_TOKEN,
            "CLOUDFLARE_BASE_URL": emulator.base_url,
            "CFAI_QUEUE": QUEUE,
            "CFAI_RETRY_BACKOFF_BASE": "0.05",
            "CFAI_RETRY_BACKOFF_MAX": "2.0",
            # Leases refresh fast so a cancel reaches a streaming worker quickly.
            "CFAI_HEARTBEAT_INTERVAL": "0.5",
            # Webhook tests deliver to a receiver inside the test process.
            "CFAI_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",
            "CFAI_WEBHOOK_BACKOFF_BASE": "0.2",
            "MEDIA_ROOT": str(media_root),
            "PYTHONPATH": str(ROOT),
        }
    )
    env.pop("CLOUDFLARE_EMAIL", None)
    env.pop("CLOUDFLARE_API_KEY", None)
    return env


class WorkerProcess:
    def __init__(
        self,
        env: dict[str, str],
        concurrency: int = 4,
        pool: str = "threads",
        *,
        queue: str = QUEUE,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.env = env
        self.concurrency = concurrency
        self.pool = pool
        self.queue = queue
        self.extra_args = list(extra_args)  # e.g. ("-B", "-s", path): beat embedded
        self.proc: subprocess.Popen | None = None
        self.log_path = ROOT / ".pytest_cache" / f"worker-{queue}.log"

    def start(self) -> WorkerProcess:
        self.log_path.parent.mkdir(exist_ok=True)
        # Readiness is read from this log: a restart (after a test killed the
        # worker) must not see the previous process's "ready.".
        self.log_path.write_bytes(b"")
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [
                sys.executable, "-m", "celery", "-A", "cfai_project", "worker", *self.extra_args,
                "-Q", self.queue, "-P", self.pool, "-c", str(self.concurrency),
                "--without-gossip", "--without-mingle", "--without-heartbeat",
                "-l", "INFO", "-n", f"{self.queue}-{uuid.uuid4().hex[:4]}@%h",
            ],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._wait_ready()
        return self

    def _wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited: {self.log_path.read_text()[-3000:]}")
            if b"ready." in self.log_path.read_bytes():
                return
            time.sleep(0.1)
        raise RuntimeError("worker did not become ready")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(timeout=20)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture(scope="session")
def worker_process(request, emulator, django_db_setup, django_db_blocker):
    """A real ``celery worker`` process consuming this session's queue, started
    once for the session against the test database."""
    with django_db_blocker.unblock():
        env = _worker_env(emulator, request.config._cfai_media_root)
    proc = WorkerProcess(env).start()
    yield proc
    proc.stop()


@pytest.fixture
def worker(worker_process, transactional_db):
    if worker_process.proc.poll() is not None:  # a test killed it: bring it back
        worker_process.start()
    return worker_process


def wait_for_status(run_id, statuses=("succeeded", "failed", "canceled"), timeout: float = 30):
    from inference.models import Run

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = Run.objects.get(pk=run_id)
        if run.status in statuses:
            return run
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} still {Run.objects.get(pk=run_id).status} after {timeout}s")


@pytest.fixture(autouse=True)
def seeded_prices(request):
    """Prices are seeded on post_migrate, which pytest-django's flush after a
    transactional test does not emit: seed again (idempotent, one query)."""
    if not request.node.get_closest_marker("django_db") and not {"db", "transactional_db", "worker", "live_server"} & set(request.fixturenames):
        return
    request.getfixturevalue("_django_db_helper")
    from inference.services.pricing import seed_prices

    seed_prices()
