"""The catalog as the app sees it: the code seed first, then the synced table.

``inference.catalog.get_model`` never touches the database (the emulator and the
pure ``inference.tasks`` package use it); code that runs inside Django resolves
models here instead, so models learned by ``inference_sync_models`` can run
without the caller naming their task.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.utils import timezone

from . import catalog
from .catalog import ModelSpec, OutputKind, Task

logger = logging.getLogger(__name__)

# What a synced model's results look like, by task.  The search endpoint does
# not say; a binary kind is safe for these tasks because the output helpers
# accept both raw bytes and base64-in-JSON for every binary kind.
_TASK_OUTPUT_KIND: dict[str, OutputKind] = {
    Task.TEXT_TO_IMAGE.value: OutputKind.PNG_BYTES,
    Task.TEXT_TO_SPEECH.value: OutputKind.BASE64_AUDIO,
}

# Cloudflare price unit labels ("per M input tokens", "per 512 by 512 tile", …)
# mapped to our pricing units; the first matching fragment wins.
_UNIT_FRAGMENTS: tuple[tuple[str, str], ...] = (
    ("input token", catalog.Unit.INPUT_TOKENS.value),
    ("output token", catalog.Unit.OUTPUT_TOKENS.value),
    ("tile", catalog.Unit.TILE.value),
    ("step", catalog.Unit.STEP.value),
    ("audio minute", catalog.Unit.AUDIO_MINUTE.value),
    ("minute", catalog.Unit.AUDIO_MINUTE.value),
    ("character", catalog.Unit.KCHARS.value),
    ("image", catalog.Unit.IMAGE.value),
)


def task_slug(task_name: str) -> str | None:
    """Cloudflare's task name ("Text Generation", "Text-to-Image") as our slug,
    or None for a task we have no shape for."""
    slug = re.sub(r"[\s_]+", "-", task_name.strip().lower())
    return slug if slug in catalog.TASKS else None


def pricing_unit(label: str) -> str:
    text = label.lower()
    for fragment, unit in _UNIT_FRAGMENTS:
        if fragment in text:
            return unit
    return label


def _spec_from_row(row: Any) -> ModelSpec:
    try:
        kind = OutputKind(row.output_kind)
    except ValueError:
        kind = OutputKind.JSON
    return ModelSpec(
        name=row.name,
        task=row.task,
        output_kind=kind,
        streams=row.task == Task.TEXT_GENERATION.value,
        beta=row.beta,
    )


def resolve_model(name: str) -> ModelSpec | None:
    """The seed entry for ``name``, else a spec built from the synced table."""
    spec = catalog.get_model(name)
    if spec is not None:
        return spec
    from .models import CatalogModel  # the app registry must be ready

    row = CatalogModel.objects.filter(name=name).first()
    return _spec_from_row(row) if row is not None else None


@dataclass(frozen=True)
class CatalogEntry:
    """One model as ``GET /api/models/`` lists it."""

    spec: ModelSpec
    source: str  # "seed" or "sync"
    # Pricing units: the seed's priced units, or those named by the search's
    # price property for a synced model (whose USD-only prices we do not use
    # for costing: unknown is not free).
    pricing_units: tuple[str, ...] = ()

    def __getattr__(self, name: str) -> Any:
        # Serializers read name/task/output_kind/… straight through to the spec.
        if name == "spec":  # not yet set (copy/pickle): avoid recursing
            raise AttributeError(name)
        return getattr(self.spec, name)


def list_models(task: str | None = None) -> list[CatalogEntry]:
    """Seed and synced models (the seed wins on a name clash), sorted by name."""
    from .models import CatalogModel

    entries: dict[str, CatalogEntry] = {}
    for spec in catalog.MODELS:
        if not task or spec.task == task:
            entries[spec.name] = CatalogEntry(spec, "seed", tuple(str(p.unit) for p in spec.prices))
    rows = CatalogModel.objects.all()
    if task:
        rows = rows.filter(task=task)
    for row in rows:
        if row.name in entries:
            continue
        prices = row.properties.get("price") if isinstance(row.properties, dict) else None
        units: list[str] = []
        if isinstance(prices, list):
            units = [pricing_unit(str(p.get("unit", ""))) for p in prices if isinstance(p, dict)]
        entries[row.name] = CatalogEntry(_spec_from_row(row), "sync", tuple(units))
    return [entries[name] for name in sorted(entries)]


@dataclass
class SyncReport:
    seen: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: list[str] = field(default_factory=list)  # "name (task)" we cannot run

    def __str__(self) -> str:
        return (
            f"{self.seen} models listed: {self.created} new, {self.updated} updated, "
            f"{self.unchanged} unchanged, {len(self.skipped)} skipped (unknown task)"
        )


def _properties(item: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for prop in item.get("properties") or []:
        if isinstance(prop, dict) and isinstance(prop.get("property_id"), str):
            out[prop["property_id"]] = prop.get("value")
    return out


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


def sync_models(items: Iterable[Mapping[str, Any]]) -> SyncReport:
    """Upsert the search results ``items`` (Cloudflare's shape).  Idempotent: a
    re-run with the same listing changes nothing but ``synced_at``."""
    from .models import CatalogModel

    report = SyncReport()
    now = timezone.now()
    for item in items:
        report.seen += 1
        name = item.get("name")
        task_info = item.get("task") or {}
        task_name = task_info.get("name", "") if isinstance(task_info, dict) else str(task_info)
        slug = task_slug(str(task_name))
        if not isinstance(name, str) or not name or slug is None:
            report.skipped.append(f"{name} ({task_name})")
            continue
        properties = _properties(item)
        seed = catalog.get_model(name)
        values = {
            "task": slug,
            "description": str(item.get("description") or "")[:5000],
            "output_kind": str(seed.output_kind if seed else _TASK_OUTPUT_KIND.get(slug, OutputKind.JSON)),
            "properties": properties,
            "beta": _truthy(properties.get("beta")),
            "source": CatalogModel.Source.SEED if seed else CatalogModel.Source.SYNC,
        }
        row = CatalogModel.objects.filter(name=name).first()
        if row is None:
            CatalogModel.objects.create(name=name, synced_at=now, **values)
            report.created += 1
            continue
        changed = any(getattr(row, k) != v for k, v in values.items())
        CatalogModel.objects.filter(pk=row.pk).update(synced_at=now, **values)
        if changed:
            report.updated += 1
        else:
            report.unchanged += 1
    return report
