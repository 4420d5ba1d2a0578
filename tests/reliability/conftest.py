"""A worker for the fault tests: its own queue, beat embedded (-B) so the
sweeper really runs, and short heartbeat / sweep thresholds so recovery is
observable within seconds."""

from __future__ import annotations

import json

import pytest

from ..conftest import QUEUE as ROOT_QUEUE
from ..conftest import WorkerProcess, _worker_env

QUEUE = f"{ROOT_QUEUE}-rel"
# One rate class deliberately slow (1 request/s, burst of 3) to observe pacing.
PACED_MODEL = "@cf/huggingface/distilbert-sst-2-int8"
PACED_LIMITS = {"text-classification": 60}
PACED_BURST_SECONDS = 3.0

FAST = {
    "CFAI_QUEUE": QUEUE,
    "CFAI_HEARTBEAT_INTERVAL": "0.3",
    "CFAI_HEARTBEAT_TIMEOUT": "3",
    "CFAI_SWEEP_INTERVAL": "1",
    "CFAI_SWEEP_QUEUED_AFTER": "3",
    "CFAI_RATE_LIMITS": json.dumps(PACED_LIMITS),
    "CFAI_RATE_LIMIT_BURST": str(PACED_BURST_SECONDS),
}


def beat_worker(env: dict[str, str], schedule_path, concurrency: int = 4) -> WorkerProcess:
    """``celery worker -B``: the worker plus the beat scheduler (the sweeper)."""
    return WorkerProcess(
        env, concurrency=concurrency, queue=QUEUE, extra_args=("-B", "-s", str(schedule_path))
    )


@pytest.fixture(autouse=True)
def inference_config(inference_config, settings):
    settings.INFERENCE = {**settings.INFERENCE, "QUEUE": QUEUE}
    yield


@pytest.fixture(scope="session")
def rel_worker_process(request, emulator, django_db_setup, django_db_blocker, tmp_path_factory):
    with django_db_blocker.unblock():
        env = _worker_env(emulator, request.config._cfai_media_root)
    env.update(FAST)
    env["CFAI_RATE_LIMIT_BURST"] = str(PACED_BURST_SECONDS)
    proc = beat_worker(env, tmp_path_factory.mktemp("beat") / "schedule").start()
    yield proc
    proc.stop()


@pytest.fixture
def rel_worker(rel_worker_process, transactional_db):
    if rel_worker_process.proc.poll() is not None:  # a test killed it: bring it back
        rel_worker_process.start()
    return rel_worker_process
