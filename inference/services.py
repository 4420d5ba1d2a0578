"""The use cases: submit, execute, cancel, scope.  API views, the admin, the
Cloudflare-compatible endpoint, management commands and Celery jobs all call
these, so each rule lives here once."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.db import transaction
from django.db.models import F, Func, PositiveIntegerField, Q, QuerySet, Value
from django.utils import timezone

from . import catalog
from .client import BinaryResult, JSONResult, StreamResult, WorkersAIClient
from .conf import inference_settings
from .exceptions import (
    InferenceConfigurationError,
    InferenceError,
    MissingCredentialsError,
    UpstreamProtocolError,
)
from .models import TERMINAL_STATUSES, APIKey, Run, RunMedia, RunStatus, TeamMembership
from .tasks import InputValidationError
from .tasks.media import MediaInput, MediaTooLarge, encode_for_upstream, extract_media
from .tasks.outputs import extract_binary_outputs, normalize_output

logger = logging.getLogger(__name__)

__all__ = [
    "InputValidationError",
    "MediaTooLarge",
    "SubmissionError",
    "cancel_run",
    "create_api_key",
    "authenticate_api_key",
    "execute_run",
    "submit_run",
    "visible_runs",
]


# --- API keys -------------------------------------------------------------------


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_api_key(user, *, name: str = "", team=None) -> tuple[APIKey, str]:
    """Create a key; the plaintext is returned once and never stored."""
    prefix = secrets.token_hex(4)
    raw = f"{inference_settings.API_KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    key = APIKey.objects.create(
        user=user, team=team, name=name, prefix=prefix, hashed_key=_digest(raw)
    )
    return key, raw


# Writing last_used_at on every request costs a write per call; once a minute is
# plenty for an audit column.
LAST_USED_RESOLUTION = timedelta(seconds=60)


def authenticate_api_key(raw: str) -> APIKey | None:
    parts = raw.split("_")
    if len(parts) < 3 or parts[0] != inference_settings.API_KEY_PREFIX:
        return None
    key = (
        APIKey.objects.select_related("user", "team")
        .filter(prefix=parts[1], revoked_at__isnull=True)
        .first()
    )
    if key is None or not hmac.compare_digest(key.hashed_key, _digest(raw)):
        return None
    if not key.user.is_active:
        return None
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
        APIKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now
    return key


# --- Scoping --------------------------------------------------------------------


def visible_runs(user) -> QuerySet[Run]:
    """Runs the user may see: their own, their teams' where they are a team
    admin, everything for staff.  The same rule for API, events, media and admin."""
    runs = Run.objects.all()
    if user.is_staff:
        return runs
    admin_teams = TeamMembership.objects.filter(
        user=user, role=TeamMembership.Role.ADMIN
    ).values("team_id")
    return runs.filter(Q(user=user) | Q(team_id__in=admin_teams))


def visible_media(user) -> QuerySet[RunMedia]:
    return RunMedia.objects.filter(run__in=visible_runs(user)).select_related("run")


# --- Submission -----------------------------------------------------------------


class SubmissionError(Exception):
    """A submission refused before anything was stored.  ``errors`` maps field
    paths to messages (DRF's shape); ``status`` is the HTTP status to answer."""

    def __init__(self, errors: dict[str, list[str]], status: int = 400) -> None:
        self.errors = errors
        self.status = status
        super().__init__(json.dumps(errors))


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
    spec = catalog.get_model(model)
    if spec is not None:
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


def prepare_input(
    model: str, task: str, payload: Any, uploads: dict[str, tuple[bytes, str | None]]
) -> tuple[dict[str, Any], list[MediaInput]]:
    """Validate the input and pull media out of it.  Raises SubmissionError with
    field paths prefixed ``input.`` (uploads keep their own field names)."""
    if not isinstance(payload, dict):
        raise SubmissionError({"input": ["Must be a JSON object."]})
    spec = catalog.get_model(model)
    try:
        stripped, media = extract_media(
            task, spec, payload, uploads, max_bytes=inference_settings.MAX_UPLOAD_BYTES
        )
    except MediaTooLarge as exc:
        raise SubmissionError({exc.field: [str(exc)]}, status=413) from exc
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


IDEMPOTENCY_WINDOW = timedelta(hours=24)


def submit_run(user, sub: Submission, *, api_key: APIKey | None = None, enqueue: bool = True) -> tuple[Run, bool]:
    """Validate, store and queue a run.  Returns (run, created): with a known
    Idempotency-Key and the same body, the original run and False."""
    task = resolve_task(sub.model, sub.task)
    stripped, media = prepare_input(sub.model, task, sub.input, sub.uploads)

    fingerprint = request_fingerprint(sub) if sub.idempotency_key else ""
    if sub.idempotency_key:
        existing = find_idempotent(user, sub.idempotency_key, fingerprint)
        if existing is not None:
            return existing, False

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
        webhook_events=sub.webhook_events,
        idempotency_key=sub.idempotency_key,
        request_hash=fingerprint,
        created_at=now,
        deadline_at=now + timedelta(seconds=inference_settings.RUN_DEADLINE),
    )
    try:
        with transaction.atomic():
            run.save(force_insert=True)
            if media:
                store_input_media(run, media)
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


def find_idempotent(user, key: str, fingerprint: str) -> Run | None:
    run = (
        Run.objects.filter(user=user, idempotency_key=key, created_at__gte=timezone.now() - IDEMPOTENCY_WINDOW)
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


def enqueue_run(run_id, attempt: int = 1, countdown: float | None = None) -> None:
    from .jobs import execute_run_job  # jobs imports services: import at use

    options: dict[str, Any] = {}
    if inference_settings.QUEUE:
        options["queue"] = inference_settings.QUEUE
    if countdown:
        options["countdown"] = countdown
    execute_run_job.apply_async((str(run_id), attempt), **options)


# --- Media ----------------------------------------------------------------------


def media_storage():
    return storages[inference_settings.MEDIA_STORAGE]


_EXTENSIONS = {
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/gif": "gif",
    "image/webp": "webp",
    "image/bmp": "bmp",
    "audio/mpeg": "mp3",
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/ogg": "ogg",
    "audio/flac": "flac",
    "audio/mp4": "m4a",
    "audio/webm": "webm",
}


def store_media(run: Run, role: str, field_name: str, data: bytes, content_type: str, encoding: str = "") -> RunMedia:
    media = RunMedia(
        run=run,
        role=role,
        field=field_name,
        encoding=encoding,
        content_type=content_type,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )
    extension = _EXTENSIONS.get(content_type, "bin")
    media.file.storage = media_storage()
    media.file.save(f"{field_name}.{extension}", ContentFile(data), save=False)
    media.save(force_insert=True)
    return media


def media_url(media: RunMedia) -> str:
    return f"/api/media/{media.pk}/"


def store_input_media(run: Run, media: list[MediaInput]) -> None:
    for item in media:
        stored = store_media(run, RunMedia.Role.INPUT, item.field, item.data, item.content_type, item.encoding)
        run.input[item.field] = {"media": str(stored.pk), "url": media_url(stored), "content_type": item.content_type, "size": len(item.data)}
    Run.objects.filter(pk=run.pk).update(input=run.input)


def upstream_payload(run: Run) -> dict[str, Any]:
    """Rebuild what Cloudflare must receive: the stored input with each media
    reference replaced by the bytes in the encoding the model expects."""
    payload = dict(run.input)
    # Most runs carry no media: skip the query unless the input references some.
    if not any(isinstance(v, dict) and "media" in v for v in payload.values()):
        return payload
    for media in run.media.filter(role=RunMedia.Role.INPUT):
        with media.file.open("rb") as fh:
            payload[media.field] = encode_for_upstream(fh.read(), media.encoding)
    return payload


# --- Execution ------------------------------------------------------------------

_clients: dict[tuple, WorkersAIClient] = {}
_clients_lock = threading.Lock()


def get_client() -> WorkersAIClient:
    """One pooled client per configuration and process (connection reuse)."""
    s = inference_settings
    if not s.ACCOUNT_ID:
        raise MissingCredentialsError(
            "No Cloudflare account: set CLOUDFLARE_ACCOUNT_ID (INFERENCE['ACCOUNT_ID']).",
            setting="CLOUDFLARE_ACCOUNT_ID",
        )
    key = (s.ACCOUNT_ID, s.API_TOKEN, s.EMAIL, s.API_KEY, s.BASE_URL, s.CONNECT_TIMEOUT, s.READ_TIMEOUT)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = WorkersAIClient(
                s.ACCOUNT_ID,
                api_token=s.API_TOKEN or None,
                email=s.EMAIL or None,
                api_key=s.API_KEY or None,
                base_url=s.BASE_URL,
                timeout=(float(s.CONNECT_TIMEOUT), float(s.READ_TIMEOUT)),
            )
            _clients[key] = client
    return client


def backoff_delay(attempt: int, retry_after: float | None) -> float:
    """Exponential backoff with full jitter; an upstream Retry-After wins."""
    if retry_after is not None and retry_after >= 0:
        return min(float(retry_after), float(inference_settings.RETRY_BACKOFF_MAX))
    cap = min(
        float(inference_settings.RETRY_BACKOFF_MAX),
        float(inference_settings.RETRY_BACKOFF_BASE) * (2 ** (attempt - 1)),
    )
    return random.uniform(cap / 2, cap)


class MillisecondsSince(Func):
    """Whole milliseconds from the second expression (a datetime column) to the
    first, never negative: ``queue_ms`` inside the claiming UPDATE."""

    output_field = PositiveIntegerField()

    def as_postgresql(self, compiler, connection, **extra):
        return self.as_sql(
            compiler, connection,
            template="GREATEST(0, FLOOR(EXTRACT(EPOCH FROM (%(expressions)s)) * 1000))::integer",
            arg_joiner=" - ", **extra,
        )

    def as_sqlite(self, compiler, connection, **extra):
        # Django stores SQLite datetimes as ISO text, which julianday() reads.
        return self.as_sql(
            compiler, connection,
            template="MAX(0, CAST((julianday(%(expressions)s)) * 86400000 AS INTEGER))",
            arg_joiner=") - julianday(", **extra,
        )

    def as_sql(self, compiler, connection, **extra):
        if "template" not in extra:
            raise NotImplementedError(f"MillisecondsSince has no SQL for {connection.vendor}")
        return super().as_sql(compiler, connection, **extra)


def claim_attempt(run_id, attempt: int) -> bool:
    """Move the run into ``attempt`` with one conditional UPDATE.  A duplicate
    or stale message finds no matching row and does nothing."""
    now = timezone.now()
    if attempt == 1:
        # queue_ms is computed by the database in the same UPDATE: the hot path used
        # to pay a SELECT and a second UPDATE (another commit) for it.
        return bool(
            Run.objects.filter(pk=run_id, status=RunStatus.QUEUED).update(
                status=RunStatus.RUNNING, attempts=1, started_at=now, heartbeat_at=now,
                queue_ms=MillisecondsSince(Value(now), F("created_at")),
            )
        )
    return bool(
        Run.objects.filter(pk=run_id, status=RunStatus.RUNNING, attempts=attempt - 1).update(
            attempts=attempt, heartbeat_at=now
        )
    )


def execute_run(run_id, attempt: int = 1) -> None:
    """Execute one attempt of a run.  Called by the Celery job with ids only."""
    if not claim_attempt(run_id, attempt):
        logger.info("run %s attempt %s: nothing to do (duplicate or finished)", run_id, attempt)
        return
    run = Run.objects.get(pk=run_id)
    started = time.monotonic()
    try:
        payload = upstream_payload(run)
        outcome = call_upstream(run, payload)
    except InferenceConfigurationError as exc:
        finish_failed(run, attempt, code=None, message=str(exc), retryable=False)
        return
    except InferenceError as exc:
        upstream_ms = _elapsed_ms(started)
        if exc.retryable and attempt < int(inference_settings.MAX_ATTEMPTS):
            delay = backoff_delay(attempt, exc.retry_after)
            Run.objects.filter(pk=run_id, status=RunStatus.RUNNING, attempts=attempt).update(
                error_code=exc.code, error_message=f"Attempt {attempt} failed: {exc}; retrying in {delay:.1f}s",
                error_retryable=True, upstream_ms=upstream_ms,
            )
            enqueue_run(run_id, attempt + 1, countdown=delay)
            return
        finish_failed(run, attempt, code=exc.code, message=str(exc), retryable=exc.retryable, upstream_ms=upstream_ms, partial=getattr(exc, "partial", None))
        return
    except Exception as exc:  # a bug must not leave the run running forever
        logger.exception("run %s: unexpected error", run_id)
        finish_failed(run, attempt, code=None, message=f"Internal error: {type(exc).__name__}: {exc}", retryable=False)
        return
    finish_succeeded(run, attempt, outcome, upstream_ms=_elapsed_ms(started))


def _elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


@dataclass
class Outcome:
    result: Any
    usage: dict[str, Any] | None
    media: list[tuple[str, bytes, str]]  # (key, data, content_type)


def call_upstream(run: Run, payload: dict[str, Any]) -> Outcome:
    client = get_client()
    response = client.run(run.model, payload)
    if isinstance(response, BinaryResult):
        key = "audio" if response.content_type.startswith("audio/") else "image"
        return Outcome(result={}, usage=None, media=[(key, response.content, response.content_type)])
    if isinstance(response, StreamResult):
        return consume_stream(run, response)
    assert isinstance(response, JSONResult)
    spec = catalog.get_model(run.model)
    output_kind = spec.output_kind if spec else catalog.OutputKind.JSON
    result, blobs = extract_binary_outputs(output_kind, response.result)
    result = normalize_output(run.task, result)
    usage = result.get("usage") if isinstance(result, dict) else None
    return Outcome(result=result, usage=usage, media=[(b.key, b.data, b.content_type) for b in blobs])


def consume_stream(run: Run, stream: StreamResult) -> Outcome:
    with stream:
        try:
            for _event in stream:
                pass
        except UpstreamProtocolError as exc:
            exc.partial = {"response": stream.text, "tool_calls": stream.tool_calls, "usage": stream.usage}  # type: ignore[attr-defined]
            raise
    result = {"response": stream.text, "tool_calls": stream.tool_calls, "usage": stream.usage}
    return Outcome(result=result, usage=stream.usage, media=[])


def finish_succeeded(run: Run, attempt: int, outcome: Outcome, *, upstream_ms: int) -> None:
    now = timezone.now()
    with transaction.atomic():
        stored = [store_media(run, RunMedia.Role.OUTPUT, key, data, ctype) for key, data, ctype in outcome.media]
        result = outcome.result if outcome.result is not None else {}
        if isinstance(result, dict):
            result = dict(result)
            for media in stored:
                result[media.field] = media_url(media)
        updated = Run.objects.filter(pk=run.pk, status=RunStatus.RUNNING, attempts=attempt).update(
            status=RunStatus.SUCCEEDED, result=result, usage=outcome.usage, completed_at=now,
            upstream_ms=upstream_ms, error_code=None, error_message="", error_retryable=None,
        )
        if not updated:
            # Canceled (or finished by the sweeper) while we were calling upstream:
            # the result is discarded; its files with it.
            transaction.set_rollback(True)
            for media in stored:
                media.file.delete(save=False)
            logger.info("run %s finished upstream after it was closed; result discarded", run.pk)


def finish_failed(run: Run, attempt: int, *, code: int | None, message: str, retryable: bool, upstream_ms: int | None = None, partial: dict | None = None) -> None:
    fields: dict[str, Any] = {
        "status": RunStatus.FAILED,
        "error_code": code,
        "error_message": message[:4000],
        "error_retryable": retryable,
        "completed_at": timezone.now(),
    }
    if upstream_ms is not None:
        fields["upstream_ms"] = upstream_ms
    if partial is not None:
        fields["result"] = partial
        fields["usage"] = partial.get("usage")
    Run.objects.filter(pk=run.pk, status=RunStatus.RUNNING, attempts=attempt).update(**fields)


# --- Cancel ---------------------------------------------------------------------


class AlreadyFinished(Exception):
    pass


def cancel_run(run: Run) -> Run:
    """Cancel a queued or running run.  A worker mid-call sees the status change
    when it tries to finish, and discards its result."""
    now = timezone.now()
    updated = Run.objects.filter(pk=run.pk, status__in=[RunStatus.QUEUED, RunStatus.RUNNING]).update(
        status=RunStatus.CANCELED, completed_at=now, error_message="Canceled by the user."
    )
    run.refresh_from_db()
    if not updated and run.status in TERMINAL_STATUSES and run.status != RunStatus.CANCELED:
        raise AlreadyFinished(run.status)
    if not updated and run.status == RunStatus.CANCELED:
        raise AlreadyFinished(run.status)
    return run



def wait_for_run(run_id, timeout: float) -> Run:
    """Block up to ``timeout`` seconds for the run to finish; return it as it stands."""
    deadline = time.monotonic() + timeout
    interval = 0.01
    while True:
        run = Run.objects.get(pk=run_id)
        if run.is_terminal or time.monotonic() >= deadline:
            return run
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
        interval = min(interval * 1.5, 0.2)
