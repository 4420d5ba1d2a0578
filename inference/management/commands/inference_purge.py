"""``manage.py inference_purge --older-than 30d``: retention.

Deletes finished runs older than the cutoff, their media rows and files and
their webhook delivery log, in batches.  The daily usage rollup (UsageDaily) is
kept: it holds no reference to runs, and usage history outlives run history.  Each batch locks its rows with SKIP LOCKED (PostgreSQL), so two purges
running at once take disjoint batches instead of deadlocking or double-deleting;
files are removed after the batch commits, and a file already gone is no error.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, transaction
from django.utils import timezone

from inference.models import TERMINAL_STATUSES, Run, RunMedia, WebhookDelivery

_UNITS = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds", "w": "weeks"}


def parse_age(text: str) -> timedelta:
    match = re.fullmatch(r"\s*(\d+)\s*([dhmsw])\s*", text or "")
    if not match:
        raise CommandError(f"--older-than: expected a number and a unit (d, h, m, s, w), e.g. 30d; got {text!r}.")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def purge_batch(cutoff, batch_size: int) -> tuple[int, int, int]:
    """Delete one batch; returns (runs deleted, files removed, deliveries deleted)."""
    files: list[tuple[Any, str]] = []
    with transaction.atomic():
        runs = Run.objects.filter(created_at__lt=cutoff, status__in=TERMINAL_STATUSES).order_by("created_at")
        if connection.features.has_select_for_update_skip_locked:
            runs = runs.select_for_update(skip_locked=True)
        pks = list(runs.values_list("pk", flat=True)[:batch_size])
        if not pks:
            return 0, 0, 0
        for media in RunMedia.objects.filter(run_id__in=pks).only("file"):
            if media.file.name:
                files.append((media.file.storage, media.file.name))
        RunMedia.objects.filter(run_id__in=pks).delete()
        # Explicitly, in the same transaction (the FK cascades only in Django's
        # collector, not in the database): no delivery row outlives its run.
        deliveries = WebhookDelivery.objects.filter(run_id__in=pks).delete()[0]
        deleted = Run.objects.filter(pk__in=pks).delete()[1].get(Run._meta.label, 0)
    removed = 0
    for storage, name in files:
        try:
            storage.delete(name)  # FileSystemStorage: a missing file is not an error
            removed += 1
        except FileNotFoundError:
            pass
    return deleted, removed, deliveries


class Command(BaseCommand):
    help = "Delete finished runs older than --older-than (e.g. 30d), with their media files, in batches."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--older-than", required=True, help="age such as 30d, 12h, 90m")
        parser.add_argument("--batch-size", type=int, default=500)
        parser.add_argument("--dry-run", action="store_true", help="count only")

    def handle(self, *args: Any, **options: Any) -> None:
        cutoff = timezone.now() - parse_age(options["older_than"])
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1.")
        if options["dry_run"]:
            count = Run.objects.filter(created_at__lt=cutoff, status__in=TERMINAL_STATUSES).count()
            self.stdout.write(f"{count} runs older than {cutoff:%Y-%m-%d %H:%M} UTC would be deleted.")
            return
        runs = files = deliveries = 0
        while True:
            deleted, removed, hooks = purge_batch(cutoff, options["batch_size"])
            if not deleted:
                break
            runs += deleted
            files += removed
            deliveries += hooks
        self.stdout.write(
            f"Deleted {runs} runs and {files} media files older than {cutoff:%Y-%m-%d %H:%M} UTC, "
            f"with {deliveries} webhook deliveries; the daily usage rollup is kept."
        )
