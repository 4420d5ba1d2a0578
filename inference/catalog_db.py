"""The catalog as the app sees it: the shipped snapshot, overlaid by the synced table.

``inference.catalog.get_model`` never touches the database (the emulator and the
pure ``inference.tasks`` package use it); code that runs inside Django resolves
models here instead, so records refreshed by ``inference_sync_models`` (newer
schemas, prices, retirement dates, models the snapshot lacks) take effect
without a release.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from email.utils import format_datetime
from typing import Any

from . import catalog, records
from .catalog import ModelSpec

logger = logging.getLogger(__name__)


def task_slug(task_name: str) -> str | None:
    """Cloudflare's task name ("Text Generation", "Text-to-Image") as our slug,
    or None for a task we have no shape for."""
    name = task_name.strip()
    slug = records.TASK_SLUGS.get(name) or "-".join(name.lower().replace("_", " ").split())
    return slug if slug in catalog.TASKS else None


def entry_from_row(row: Any) -> records.Entry:
    prices = None
    if row.prices is not None:
        prices = tuple(
            records.Price(p["unit"], Decimal(str(p["usd"])), int(p.get("per") or 1),
                          None if p.get("neurons") is None else Decimal(str(p["neurons"])))
            for p in row.prices
        )
    props = dict(row.properties or {})
    return records.Entry(
        name=row.name,
        task=row.task,
        description=row.description,
        input_schema=row.input_schema,
        output_schema=row.output_schema,
        properties=props,
        prices=prices,
        retired_on=row.retired_on.isoformat() if row.retired_on else None,
        planned_deprecation=(str(props["planned_deprecation_date"])[:10]
                             if props.get("planned_deprecation_date") else None),
        replacement=row.replacement or None,
    )


def spec_from_row(row: Any) -> ModelSpec:
    spec = catalog.spec_from_entry(entry_from_row(row))
    seed = catalog.get_model(row.name)
    if seed is not None and spec.input_schema is None:
        # A search-only row (no schema fetched): the snapshot's schemas stand.
        spec = replace(spec, input_schema=seed.input_schema, output_schema=seed.output_schema,
                       output_kind=seed.output_kind, streams=seed.streams,
                       audio_input=seed.audio_input, image_input=seed.image_input)
    return spec


def resolve_model(name: str) -> ModelSpec | None:
    """The synced record for ``name`` when there is one, else the snapshot's."""
    from .models import CatalogModel  # the app registry must be ready

    row = CatalogModel.objects.filter(name=name).first()
    if row is not None:
        return spec_from_row(row)
    return catalog.get_model(name)


def lifecycle(spec: ModelSpec | None, today: date | None = None) -> dict[str, Any]:
    """``{"status": "current" | "deprecation_pending" | "retired", "retires_on", "replacement"}``."""
    if spec is None:
        return {"status": "unknown", "retires_on": None, "replacement": None}
    when = spec.retired_on or spec.planned_deprecation
    if spec.is_retired(today):
        state = "retired"
    elif when:
        state = "deprecation_pending"
    else:
        state = "current"
    return {"status": state, "retires_on": when, "replacement": spec.replacement}


def lifecycle_headers(spec: ModelSpec | None) -> dict[str, str]:
    """``Deprecation`` (RFC 9745) and ``Sunset`` (RFC 8594) for a model whose
    retirement date is ahead; nothing otherwise."""
    when = spec.deprecation_pending() if spec is not None else None
    if not when:
        return {}
    sunset = datetime.fromisoformat(when).replace(tzinfo=UTC)
    # The model is deprecated (announced for retirement) now; it stops at Sunset.
    headers = {"Deprecation": f"@{int(sunset.timestamp())}", "Sunset": format_datetime(sunset, usegmt=True)}
    if spec.replacement:
        headers["Link"] = f'<{spec.replacement}>; rel="successor-version"'
    return headers


@dataclass(frozen=True)
class CatalogEntry:
    """One model as ``GET /api/models/`` lists it."""

    spec: ModelSpec
    source: str  # "snapshot" or "sync"
    pricing_units: tuple[str, ...] = ()
    delisted: bool = False

    def __getattr__(self, name: str) -> Any:
        # Serializers read name/task/output_kind/… straight through to the spec.
        if name == "spec":  # not yet set (copy/pickle): avoid recursing
            raise AttributeError(name)
        return getattr(self.spec, name)

    @property
    def lifecycle(self) -> dict[str, Any]:
        return lifecycle(self.spec)


def list_models(task: str | None = None, *, include_retired: bool = False) -> list[CatalogEntry]:
    """Every model, snapshot and synced (the synced record wins), sorted by name.
    Retired and delisted models only with ``include_retired``."""
    from .models import CatalogModel

    entries: dict[str, CatalogEntry] = {}
    for spec in catalog.MODELS:
        entries[spec.name] = CatalogEntry(spec, "snapshot", tuple(str(p.unit) for p in spec.prices))
    for row in CatalogModel.objects.all():
        spec = spec_from_row(row)
        entries[row.name] = CatalogEntry(spec, "sync", tuple(str(p.unit) for p in spec.prices),
                                         delisted=row.delisted_at is not None)
    out = []
    for name in sorted(entries):
        entry = entries[name]
        if task and entry.spec.task != task:
            continue
        if not include_retired and (entry.delisted or entry.spec.is_retired()):
            continue
        out.append(entry)
    return out
