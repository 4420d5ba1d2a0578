"""Submission: validate a request, store the run (and its input media) with its
budget reservation, and queue it.  Nothing is stored when anything is refused."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from .. import catalog
from ..catalog_db import resolve_model
from ..conf import inference_settings
from ..exceptions import SubmissionError
from ..models import APIKey, Run, RunStatus
from ..queue import enqueue_run
from ..tasks import InputValidationError
from ..tasks.media import MediaInput, MediaTooLarge, extract_media
from . import budgets, live, pricing, webhooks
from . import recovery as reliability
from .media import store_input_media


@dataclass
class Submission:
    model: str
    input: dict[str, Any]
    task: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    webhook: str = ""
    webhook_events: list[str] = field(default_factory=list)
    uploads: dict[str, tuple[bytes, str | None]] = field(default_factory=dict)
    idempotency_key: str = ""
    source: str = Run.Source.API
    client_ip: str | None = None


def resolve_task(model: str, task: str | None) -> str:
    # Seed first, then models learned by inference_sync_models.
    spec = resolve_model(model)
    if spec is not None:
        if spec.is_retired():
            instead = f" Cloudflare names {spec.replacement} instead." if spec.replacement else ""
            raise SubmissionError(
                {"model": [f"{model} was retired by Cloudflare on "
                           f"{spec.retired_on or spec.planned_deprecation} and is no longer served.{instead}"]}
            )
        if task and task != spec.task:
            raise SubmissionError(
                {"task": [f"Model {model} runs task {spec.task!r}, not {task!r}."]}
            )
        return spec.task
    if not task:
        raise SubmissionError(
            {"task": [f"Model {model!r} is not in the catalog: name its task."]}
        )
    if task not in catalog.TASKS:
        raise SubmissionError(
            {"task": [f"Unknown task {task!r}. Valid: {', '.join(catalog.TASKS)}."]}
        )
    return task


def unstorable_text(value: Any, path: str) -> str | None:
    """The path of the first string (key or value) the database cannot store: NUL
    characters (PostgreSQL text/jsonb refuse them) and lone UTF-16 surrogates
    (not encodable as UTF-8).  None when everything is storable."""
    if isinstance(value, str):
        if "\x00" in value:
            return path
        try:
            value.encode("utf-8")  # C speed; a lone surrogate cannot be encoded
        except UnicodeEncodeError:
            return path
    elif isinstance(value, dict):
        for key, item in value.items():
            found = unstorable_text(key, path) or unstorable_text(item, f"{path}.{key}")
            if found:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = unstorable_text(item, f"{path}[{index}]")
            if found:
                return found
    return None


def check_storable(**fields: Any) -> None:
    for name, value in fields.items():
        path = unstorable_text(value, name)
        if path:
            raise SubmissionError(
                {path: ["Contains a NUL character or an unpaired surrogate, which cannot be stored."]}
            )


def prepare_input(
    model: str, task: str, payload: Any, uploads: dict[str, tuple[bytes, str | None]]
) -> tuple[dict[str, Any], list[MediaInput]]:
    """Validate the input and pull media out of it.  Raises SubmissionError with
    field paths prefixed ``input.`` (uploads keep their own field names)."""
    if not isinstance(payload, dict):
        raise SubmissionError({"input": ["Must be a JSON object."]})
    spec = resolve_model(model)
    try:
        stripped, media = extract_media(
            task, spec, payload, uploads, max_bytes=inference_settings.MAX_UPLOAD_BYTES
        )
    except MediaTooLarge as exc:
        raise SubmissionError(_prefixed({exc.field: [str(exc)]}, uploads), status=413) from exc
    except InputValidationError as exc:
        raise SubmissionError(_prefixed(exc.errors, uploads)) from exc
    return stripped, media


def _prefixed(errors: dict[str, list[str]], uploads: dict) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for path, messages in errors.items():
        if path in uploads:
            key = path
        elif path in ("", "$"):
            key = "input"
        else:
            key = f"input.{path}" if not path.startswith("[") else f"input{path}"
        out.setdefault(key, []).extend(messages)
    return out


def request_fingerprint(sub: Submission) -> str:
    body = {
        "model": sub.model,
        "task": sub.task,
        "input": sub.input,
        "metadata": sub.metadata,
        "webhook": sub.webhook,
        "webhook_events": sub.webhook_events,
        "uploads": {k: hashlib.sha256(v[0]).hexdigest() for k, v in sorted(sub.uploads.items())},
    }
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


IDEMPOTENCY_WINDOW = timedelta(hours=24)  # default of INFERENCE['IDEMPOTENCY_TTL']


def submit_run(user, sub: Submission, *, api_key: APIKey | None = None, enqueue: bool = True) -> tuple[Run, bool]:
    """Validate, store and queue a run.  Returns (run, created): with a known
    Idempotency-Key and the same body, the original run and False."""
    task = resolve_task(sub.model, sub.task)
    check_storable(input=sub.input, metadata=sub.metadata, model=sub.model)
    stripped, media = prepare_input(sub.model, task, sub.input, sub.uploads)
    webhook_events = check_webhook(sub)

    fingerprint = request_fingerprint(sub) if sub.idempotency_key else ""
    if sub.idempotency_key:
        existing = find_idempotent(user, sub.idempotency_key, fingerprint)
        if existing is not None:
            return existing, False
        # An expired use of this key still holds the unique constraint: forget it.
        reliability.purge_expired_idempotency_keys(user=user, key=sub.idempotency_key)

    team = api_key.team if api_key is not None else None
    now = timezone.now()
    run = Run(
        user=user,
        team=team,
        api_key=api_key,
        source=sub.source,
        client_ip=sub.client_ip,
        model=sub.model,
        task=task,
        stream=bool(stripped.get("stream")),
        input=stripped,
        metadata=sub.metadata or {},
        webhook=sub.webhook,
        webhook_events=webhook_events,
        idempotency_key=sub.idempotency_key,
        request_hash=fingerprint,
        created_at=now,
        deadline_at=now + timedelta(seconds=inference_settings.RUN_DEADLINE),
    )
    estimate = pricing.estimate_submission(sub.model, task, stripped, media)
    try:
        with transaction.atomic():
            # Locks the applicable budgets until this run (and its reservation) commits.
            budgets.reserve(run, estimate)
            run.save(force_insert=True)
            if media:
                store_input_media(run, media)
            live.publish_status(run.pk, RunStatus.QUEUED)
            if enqueue:
                transaction.on_commit(lambda: enqueue_run(run.pk))
    except Exception as exc:
        # Two submissions raced on one Idempotency-Key: the loser returns the winner.
        if sub.idempotency_key and "idempotency" in str(exc).lower():
            existing = find_idempotent(user, sub.idempotency_key, fingerprint)
            if existing is not None:
                return existing, False
        raise
    return run, True


def check_webhook(sub: Submission) -> list[str]:
    """Refuse webhook targets we must not call (SSRF); return the events to send."""
    if not sub.webhook:
        if sub.webhook_events:
            raise SubmissionError({"webhook_events": ["Given without a webhook."]})
        return []
    unknown = [e for e in sub.webhook_events if e not in webhooks.EVENTS]
    if unknown:
        raise SubmissionError({"webhook_events": [f"Unknown events: {', '.join(map(str, unknown))}."]})
    try:
        webhooks.check_target(sub.webhook)
    except webhooks.WebhookTargetError as exc:
        raise SubmissionError({"webhook": [str(exc)]}) from exc
    events = sub.webhook_events or list(inference_settings.WEBHOOK_DEFAULT_EVENTS)
    return list(dict.fromkeys(events))


def find_idempotent(user, key: str, fingerprint: str) -> Run | None:
    run = (
        Run.objects.filter(user=user, idempotency_key=key, created_at__gte=reliability.idempotency_cutoff())
        .order_by("-created_at")
        .first()
    )
    if run is None:
        return None
    if run.request_hash != fingerprint:
        raise SubmissionError(
            {"Idempotency-Key": ["This key was used with a different request body."]}, status=422
        )
    return run
