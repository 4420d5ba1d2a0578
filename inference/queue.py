"""Enqueue a Celery job by its registered name.  Nothing imports ``jobs.py``:
the app's ``ready()`` imports it once so the tasks are registered in every
process, and services send work through here."""

from __future__ import annotations

from typing import Any

from celery import current_app

from .conf import inference_settings

EXECUTE_RUN = "inference.execute_run"
DELIVER_WEBHOOK = "inference.deliver_webhook"


def enqueue(name: str, args: tuple, *, countdown: float | None = None) -> None:
    options: dict[str, Any] = {}
    if inference_settings.QUEUE:
        options["queue"] = inference_settings.QUEUE
    if countdown:
        options["countdown"] = countdown
    current_app.tasks[name].apply_async(args, **options)


def enqueue_run(run_id, attempt: int = 1, countdown: float | None = None) -> None:
    enqueue(EXECUTE_RUN, (str(run_id), attempt), countdown=countdown)


def enqueue_webhook(delivery_id: int, countdown: float | None = None) -> None:
    enqueue(DELIVER_WEBHOOK, (delivery_id,), countdown=countdown)
