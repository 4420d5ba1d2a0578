"""Cloudflare's published Workers AI model records, as shipped data.

Cloudflare publishes every model as a record: name, task, properties (price list,
context window, ``planned_deprecation_date``, ``async_queue``, ``beta``, ...) and
its own draft-07 JSON Schemas for input and output.  The package ships a snapshot
of those records (``inference/data/workers_ai_models.json.gz``), generated from the
record format by ``manage.py inference_build_catalog --from FOLDER``; the catalog,
validation, media encoding, outputs, prices and lifecycle are all read from it.

This module is pure (no Django, no database): it loads and builds snapshots.
"""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

SNAPSHOT_PATH = Path(__file__).parent / "data" / "workers_ai_models.json.gz"

# Cloudflare's task names (record ``task.name``) -> the run endpoint's task slugs.
TASK_SLUGS: dict[str, str] = {
    "Text Generation": "text-generation",
    "Text-to-Image": "text-to-image",
    "Text-to-Speech": "text-to-speech",
    "Text Embeddings": "text-embeddings",
    "Automatic Speech Recognition": "automatic-speech-recognition",
    "Image Classification": "image-classification",
    "Object Detection": "object-detection",
    "Translation": "translation",
    "Summarization": "summarization",
    "Image-to-Text": "image-to-text",
    "Text Classification": "text-classification",
    "Voice Activity Detection": "voice-activity-detection",
    "Image-Text-to-Text": "image-text-to-text",
    "Multimodal Embeddings": "multimodal-embeddings",
}

# Published price labels -> (unit, how many units the price is for).  Units are
# the values of ``inference.catalog.Unit``.
_PRICE_LABELS: tuple[tuple[str, str, int], ...] = (
    (r"per m cached input tokens?", "cached_input_tokens", 1_000_000),
    (r"per m input tokens?", "input_tokens", 1_000_000),
    (r"per m output tokens?", "output_tokens", 1_000_000),
    (r"per input 512 ?(x|by) ?512 tile, per step", "input_tile_step", 1),
    (r"per output 512 ?(x|by) ?512 tile, per step", "output_tile_step", 1),
    (r"per input 512 ?(x|by) ?512 tile", "input_tile", 1),
    (r"per output 512 ?(x|by) ?512 tile", "output_tile", 1),
    (r"per 512 ?(x|by) ?512 tile", "tile", 1),
    (r"per step", "step", 1),
    (r"per first mp.*", "first_megapixel", 1),
    (r"per subsequent mp", "subsequent_megapixel", 1),
    (r"per input image mp", "input_image_megapixel", 1),
    (r"per audio minute( input)?", "audio_minute", 1),
    (r"per 1k characters( input)?", "1k_chars", 1),
    (r"per m images?", "image", 1_000_000),
    (r"per inference request", "request", 1),
)


# The label Cloudflare publishes for each unit (the inverse of ``price_unit``).
UNIT_LABELS: dict[str, str] = {
    "input_tokens": "per M input tokens",
    "output_tokens": "per M output tokens",
    "cached_input_tokens": "per M cached input tokens",
    "tile": "per 512 by 512 tile",
    "step": "per step",
    "input_tile": "per input 512x512 tile",
    "output_tile": "per output 512x512 tile",
    "input_tile_step": "per input 512x512 tile, per step",
    "output_tile_step": "per output 512x512 tile, per step",
    "first_megapixel": "per first MP (1024x1024)",
    "subsequent_megapixel": "per subsequent MP",
    "input_image_megapixel": "per input image MP",
    "audio_minute": "per audio minute",
    "1k_chars": "per 1k characters",
    "image": "per M images",
    "request": "per inference request",
}


def price_unit(label: str) -> tuple[str, int] | None:
    """``"per M input tokens"`` -> ``("input_tokens", 1_000_000)``; None if unknown."""
    text = " ".join(label.lower().replace("<br/>", " ").split())
    for pattern, unit, per in _PRICE_LABELS:
        if re.fullmatch(pattern, text):
            return unit, per
    return None


@dataclass(frozen=True)
class Price:
    unit: str
    usd: Decimal
    per: int = 1
    neurons: Decimal | None = None


@dataclass(frozen=True)
class Entry:
    """One model record, normalized."""

    name: str
    task: str  # run-endpoint slug, e.g. "text-generation"
    description: str = ""
    created_at: str = ""
    input_schema: dict[str, Any] | None = None
    output_schema: dict[str, Any] | None = None
    properties: dict[str, Any] = field(default_factory=dict)
    prices: tuple[Price, ...] | None = None  # None = unpublished; () = explicitly free
    retired_on: str | None = None  # YYYY-MM-DD, from deprecated-models.ts
    planned_deprecation: str | None = None  # the record's planned_deprecation_date
    replacement: str | None = None  # the model Cloudflare names instead
    built: bool = False  # schemas rebuilt (record too large to ship unchanged)

    @property
    def beta(self) -> bool:
        return str(self.properties.get("beta", "")).lower() == "true"

    @property
    def streams(self) -> bool:
        props = (self.input_schema or {}).get("properties") or {}
        branches = (self.input_schema or {}).get("oneOf") or (self.input_schema or {}).get("anyOf") or []
        return "stream" in props or any("stream" in (b.get("properties") or {}) for b in branches)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "task": self.task,
            "description": self.description,
            "created_at": self.created_at,
            "properties": self.properties,
            "schema": {"input": self.input_schema, "output": self.output_schema},
            "prices": None if self.prices is None else [
                {"unit": p.unit, "usd": str(p.usd), "per": p.per,
                 "neurons": None if p.neurons is None else str(p.neurons)}
                for p in self.prices
            ],
            "retired_on": self.retired_on,
            "planned_deprecation": self.planned_deprecation,
            "replacement": self.replacement,
            "built": self.built,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Entry:
        schema = data.get("schema") or {}
        prices = data.get("prices")
        return cls(
            name=data["name"],
            task=data["task"],
            description=data.get("description") or "",
            created_at=data.get("created_at") or "",
            input_schema=schema.get("input"),
            output_schema=schema.get("output"),
            properties=dict(data.get("properties") or {}),
            prices=None if prices is None else tuple(
                Price(p["unit"], Decimal(p["usd"]), int(p.get("per") or 1),
                      None if p.get("neurons") is None else Decimal(p["neurons"]))
                for p in prices
            ),
            retired_on=data.get("retired_on"),
            planned_deprecation=data.get("planned_deprecation"),
            replacement=data.get("replacement"),
            built=bool(data.get("built")),
        )


# ---------------------------------------------------------------- loading


@lru_cache(maxsize=1)
def snapshot() -> dict[str, Entry]:
    """The shipped snapshot, by model name (retired models included, marked)."""
    return load_snapshot(SNAPSHOT_PATH)


def load_snapshot(path: Path) -> dict[str, Entry]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        data = json.load(fh)
    return {m["name"]: Entry.from_json(m) for m in data["models"]}


def get(name: str) -> Entry | None:
    return snapshot().get(name)


def current_models() -> list[Entry]:
    return [e for e in snapshot().values() if not e.retired_on]


# ---------------------------------------------------------------- building


def parse_record(record: dict[str, Any]) -> Entry:
    """One Cloudflare record (the ``ai/models/search`` / docs JSON shape) -> Entry.

    Accepts ``properties`` as Cloudflare's list of ``{property_id, value}`` or as
    a dict, and the task as ``{"name": ...}`` or a plain name / slug.
    """
    task = record.get("task")
    task_name = task.get("name", "") if isinstance(task, dict) else str(task or "")
    slug = TASK_SLUGS.get(task_name, task_name.lower().replace(" ", "-"))
    raw_props = record.get("properties") or []
    if isinstance(raw_props, dict):
        props = dict(raw_props)
    else:
        props = {p.get("property_id"): p.get("value") for p in raw_props if isinstance(p, dict)}
    schema = record.get("schema") or {}
    prices: tuple[Price, ...] | None = None
    listed = props.pop("price", None)
    if isinstance(listed, list):
        parsed = []
        for item in listed:
            unit = price_unit(str(item.get("unit", "")))
            if unit is not None:
                parsed.append(Price(unit[0], Decimal(str(item.get("price", 0))), unit[1]))
        prices = tuple(parsed) if parsed or not listed else None
    return Entry(
        name=record["name"],
        task=slug,
        description=record.get("description") or "",
        created_at=str(record.get("created_at") or "")[:10],
        input_schema=schema.get("input"),
        output_schema=schema.get("output"),
        properties=props,
        prices=prices,
        planned_deprecation=(str(props["planned_deprecation_date"])[:10]
                             if props.get("planned_deprecation_date") else None),
    )


_DEPRECATED_RE = re.compile(
    r'name:\s*"(?P<name>[^"]+)",\s*deprecationDate:\s*"(?P<date>[^"]+)",\s*status:\s*"(?P<status>[^"]+)"'
)


def parse_deprecations(text: str) -> dict[str, str]:
    """``deprecated-models.ts`` -> {model name: retirement date}."""
    return {m["name"]: m["date"] for m in _DEPRECATED_RE.finditer(text)}


_REPLACEMENT_RE = re.compile(r"`(@[^`]+)`\s*-->\s*`(@[^`]+)`")


def parse_replacements(changelog_texts: list[str]) -> tuple[dict[str, str], list[str]]:
    """Changelog entries -> ({retired: named replacement}, recommended replacements)."""
    named: dict[str, str] = {}
    recommended: list[str] = []
    for text in changelog_texts:
        named.update(dict(_REPLACEMENT_RE.findall(text)))
        if "## Recommended replacements" in text:
            block = text.split("## Recommended replacements", 1)[1].split("\n## ", 1)[0]
            recommended += re.findall(r"\[`(@[^`]+)`\]", block)
    return named, recommended


_PRICE_ITEM_RE = re.compile(r"\$(?P<usd>[0-9.]+)\s+(?P<label>per [^<|$]+)")
_NEURON_ITEM_RE = re.compile(r"(?P<n>[0-9][0-9,.]*)\s+neurons\s+(?P<label>per [^<|]+)")


def parse_pricing(text: str) -> dict[str, tuple[Price, ...]]:
    """pricing.mdx model tables -> {model: prices (with neurons)}.  Rows naming a
    transport in parentheses (``(WebSocket)``) are a different product: skipped."""
    out: dict[str, tuple[Price, ...]] = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("@"):
            continue
        neurons = {}
        for m in _NEURON_ITEM_RE.finditer(cells[2]):
            unit = price_unit(m["label"])
            if unit:
                neurons[unit[0]] = Decimal(m["n"].replace(",", ""))
        prices = []
        for m in _PRICE_ITEM_RE.finditer(cells[1]):
            unit = price_unit(m["label"])
            if unit:
                prices.append(Price(unit[0], Decimal(m["usd"]), unit[1], neurons.get(unit[0])))
        if prices and " " not in cells[0]:
            out[cells[0]] = tuple(prices)
    return out


def _index_rows(text: str) -> list[dict[str, str]]:
    rows = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 8 and cells[1].startswith("`@"):
            rows.append({"file": cells[0], "name": cells[1].strip("`"), "task": cells[2],
                         "created_at": cells[3] if cells[3] != "—" else "", "saved": cells[7]})
    return rows


def _template_llm(records: dict[str, Entry]) -> Entry | None:
    """The OpenAI-style LLM record whose schemas stand in for records too large to ship."""
    for name in ("@cf/qwen/qwen3-30b-a3b-fp8", "@cf/openai/gpt-oss-120b"):
        if name in records:
            return records[name]
    return None


def build_snapshot(folder: Path) -> dict[str, Entry]:
    """Every record in ``folder`` (Cloudflare's record format, one JSON file per model,
    or one JSON file holding a list / a ``result`` list), plus, when present,
    ``deprecated-models.ts`` (retirements), ``pricing.mdx`` (prices with neurons; it
    wins over record prices), ``changelog/*.mdx`` (named replacements) and
    ``INDEX.md`` (models listed there whose record was too large to ship are rebuilt
    from an OpenAI-style record's schemas, marked ``built``)."""
    folder = Path(folder)
    files = sorted(folder.glob("*.json")) if folder.is_dir() else [folder]
    entries: dict[str, Entry] = {}
    for path in files:
        data = json.loads(path.read_text(encoding="utf-8"))
        items = data.get("result", data) if isinstance(data, dict) else data
        if isinstance(items, dict):
            items = [items]
        for record in items:
            if not isinstance(record, dict) or "name" not in record:
                continue
            entry = parse_record(record)
            # A stray duplicate file (qwen.json) must not override the named one.
            if entry.name in entries and path.stem != entry.name.rsplit("/", 1)[-1]:
                continue
            entries[entry.name] = entry
    if not folder.is_dir():
        return entries

    index = folder / "INDEX.md"
    template = _template_llm(entries)
    if index.exists() and template is not None:
        for row in _index_rows(index.read_text(encoding="utf-8")):
            if row["name"] in entries or not row["saved"].startswith("NO"):
                continue
            entries[row["name"]] = Entry(
                name=row["name"],
                task=TASK_SLUGS.get(row["task"], "text-generation"),
                created_at=row["created_at"],
                input_schema=template.input_schema,
                output_schema=template.output_schema,
                properties={"function_calling": "true"},
                built=True,
            )

    retired: dict[str, str] = {}
    if (folder / "deprecated-models.ts").exists():
        retired = parse_deprecations((folder / "deprecated-models.ts").read_text(encoding="utf-8"))
    named, recommended = parse_replacements(
        [p.read_text(encoding="utf-8") for p in sorted((folder / "changelog").glob("*.mdx"))]
        if (folder / "changelog").is_dir() else []
    )
    pricing = {}
    if (folder / "pricing.mdx").exists():
        pricing = parse_pricing((folder / "pricing.mdx").read_text(encoding="utf-8"))
    from dataclasses import replace

    for name, entry in list(entries.items()):
        changes: dict[str, Any] = {}
        if name in pricing:
            changes["prices"] = pricing[name]
        if name in retired:
            changes["retired_on"] = retired[name]
            alternatives = [m for m in recommended if m in entries and m not in retired
                            and entries[m].task == entry.task]
            changes["replacement"] = named.get(name) or (alternatives[0] if alternatives else None)
        if changes:
            entries[name] = replace(entry, **changes)
    return entries


def write_snapshot(entries: dict[str, Entry], path: Path = SNAPSHOT_PATH) -> None:
    """Deterministic gzip (no mtime) so a rebuild from the same records is byte-identical."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = json.dumps({"format": 1, "models": [entries[n].to_json() for n in sorted(entries)]},
                      sort_keys=True, separators=(",", ":")).encode()
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as fh:
        fh.write(body)
    snapshot.cache_clear()
