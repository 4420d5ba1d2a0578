"""Refreshing the database copy of Cloudflare's model records.

``manage.py inference_sync_models`` calls these: from the live API
(``ai/models/search`` for the listing, ``ai/models/schema`` for each model's
schemas) or offline from a folder or file of records (``--from PATH``).  The
whole record is stored; models Cloudflare stops listing are marked delisted,
never deleted; a changed price becomes a new dated ``Price`` version.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.utils import timezone

from .. import catalog, records
from ..catalog_db import task_slug as catalog_task_slug
from .pricing import seed_price_list

logger = logging.getLogger(__name__)


@dataclass
class SyncReport:
    seen: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    delisted: int = 0
    prices_added: int = 0
    skipped: list[str] = field(default_factory=list)  # "name (task)" we cannot run

    def __str__(self) -> str:
        return (
            f"{self.seen} models listed: {self.created} new, {self.updated} updated, "
            f"{self.unchanged} unchanged, {self.delisted} delisted, {self.prices_added} price versions added, "
            f"{len(self.skipped)} skipped (unknown task)"
        )


def _row_values(entry: records.Entry) -> dict[str, Any]:
    spec = catalog.spec_from_entry(entry)
    props = dict(entry.properties)
    return {
        "task": entry.task,
        "description": entry.description[:5000],
        "output_kind": str(spec.output_kind),
        "properties": props,
        "beta": entry.beta,
        "input_schema": entry.input_schema,
        "output_schema": entry.output_schema,
        "prices": None if entry.prices is None else [
            {"unit": p.unit, "usd": str(p.usd), "per": p.per,
             "neurons": None if p.neurons is None else str(p.neurons)} for p in entry.prices
        ],
        "retired_on": date.fromisoformat(entry.retired_on) if entry.retired_on else None,
        "replacement": entry.replacement or "",
    }


def sync_entries(entries: Iterable[records.Entry], *, complete: bool = True) -> SyncReport:
    """Upsert ``entries`` (whole records) into the table.  ``complete``: the
    listing is all Cloudflare serves, so rows missing from it are marked
    delisted (never deleted).  Changed prices become new ``Price`` versions.
    Idempotent: a re-run with the same records changes nothing but ``synced_at``."""
    from ..models import CatalogModel

    report = SyncReport()
    now = timezone.now()
    seen: set[str] = set()
    prices: list[tuple[str, str, Decimal, Decimal, int]] = []
    for entry in entries:
        report.seen += 1
        if entry.task not in catalog.TASKS:
            report.skipped.append(f"{entry.name} ({entry.task})")
            continue
        seen.add(entry.name)
        values = _row_values(entry)
        # A retirement the snapshot knows is not undone by a listing without it.
        seed = catalog.get_model(entry.name)
        if values["retired_on"] is None and seed is not None and seed.retired_on:
            values["retired_on"] = date.fromisoformat(seed.retired_on)
            values["replacement"] = values["replacement"] or (seed.replacement or "")
        for p in catalog.spec_from_entry(entry).prices:
            prices.append((entry.name, str(p.unit), p.usd, p.neurons, p.per))
        row = CatalogModel.objects.filter(name=entry.name).first()
        source = CatalogModel.Source.SEED if seed else CatalogModel.Source.SYNC
        if row is None:
            CatalogModel.objects.create(name=entry.name, synced_at=now, source=source, **values)
            report.created += 1
            continue
        changed = any(getattr(row, k) != v for k, v in values.items()) or row.delisted_at is not None
        CatalogModel.objects.filter(pk=row.pk).update(synced_at=now, delisted_at=None, source=source, **values)
        if changed:
            report.updated += 1
        else:
            report.unchanged += 1
    if complete:
        report.delisted = CatalogModel.objects.exclude(name__in=seen).filter(delisted_at=None).update(
            delisted_at=now
        )
    report.prices_added = seed_price_list(prices, note="sync: Cloudflare model record", effective_from=now)
    return report


def sync_models(
    items: Iterable[Mapping[str, Any]],
    schemas: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    complete: bool = True,
) -> SyncReport:
    """Sync search results ``items`` (Cloudflare's shape), with each model's
    ``{"input": ..., "output": ...}`` from ``schemas`` when fetched."""
    entries = []
    skipped = []
    for item in items:
        task = item.get("task")
        task_name = str(task.get("name", "") if isinstance(task, dict) else task or "")
        if catalog_task_slug(task_name) is None:
            skipped.append(f"{item.get('name')} ({task_name})")
            continue
        record = dict(item)
        if schemas and item.get("name") in schemas:
            record["schema"] = schemas[item["name"]]
        try:
            entries.append(records.parse_record(record))
        except (KeyError, TypeError, ValueError) as exc:
            logger.warning("skipping an unreadable model record: %s", exc)
    report = sync_entries(entries, complete=complete)
    report.seen += len(skipped)
    report.skipped += skipped
    return report


def sync_from_path(path: str | Path) -> SyncReport:
    """Offline sync from a folder of records (the reference folder's layout, with
    deprecated-models.ts / pricing.mdx / changelog when present) or one JSON file."""
    entries = records.build_snapshot(Path(path))
    return sync_entries(entries.values(), complete=Path(path).is_dir())
