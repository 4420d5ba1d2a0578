"""Celery tasks: thin, take ids only, call services."""

from __future__ import annotations

from celery import shared_task
from django.db import close_old_connections

from .services.execution import execute_run


@shared_task(name="inference.execute_run", acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def execute_run_job(run_id: str, attempt: int = 1) -> None:
    if not execute_run_job.request.is_eager:
        # Connections outlive tasks (CELERY_DB_REUSE_MAX): as Django does at the start
        # of a request, drop one that is broken or older than CONN_MAX_AGE.  Not when
        # eager: that would close the caller's connection mid-transaction.
        close_old_connections()
    execute_run(run_id, attempt)


@shared_task(name="inference.deliver_webhook", acks_late=True, ignore_result=True)
def deliver_webhook_job(delivery_id: int) -> None:
    from .services import webhooks

    webhooks.deliver(delivery_id)


@shared_task(name="inference.sweep", ignore_result=True)
def sweep_job() -> dict[str, int]:
    """Periodic (Celery beat, CELERY_BEAT_SCHEDULE): the database is the source
    of truth; re-enqueue what the broker lost, fail what outlived its deadline."""
    from .services import recovery as reliability

    return reliability.sweep().as_dict()
