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
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import F, Func, PositiveIntegerField, Q, QuerySet, Value
from django.utils import timezone

from .. import catalog
from .. import redaction as scrub_logs
from ..catalog_db import resolve_model
from ..client import (
    BinaryResult,
    JSONResult,
    RunResult,
    StreamResult,
    WorkersAIClient,
)
from ..conf import inference_settings
from ..exceptions import (
    InferenceConfigurationError,
    InferenceError,
    MissingCredentialsError,
    QuotaExceededError,
    RunCanceled,
    UpstreamProtocolError,
    UpstreamTimeoutError,
)
from ..models import (
    APIKey,
    CloudflareAccount,
    Run,
    RunMedia,
    RunStatus,
    TeamMembership,
    WebhookSecret,
)
from ..tasks import InputValidationError
from ..tasks.media import (
    MediaInput,
    MediaTooLarge,
    encode_for_upstream,
    extract_media,
)
from ..tasks.outputs import BinaryOutputError, extract_binary_outputs, normalize_output
from . import (
    budgets,
    live,
    pricing,
    webhooks,
)
from . import (
    recovery as reliability,
)
from . import usage as usage_rollup

logger = logging.getLogger(__name__)

__all__ = [
    "InputValidationError",
    "MediaTooLarge",
    "SubmissionError",
    "cancel_run",
    "create_api_key",
    "authenticate_api_key",
    "execute_inline",
    "submit_inline",
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


def revoke_api_key(key: APIKey) -> None:
    """Revoke at once: the next request with the key is refused (no cache)."""
    APIKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())


def rotate_credentials(
    accounts: QuerySet[CloudflareAccount] | None = None,
    webhook_secrets: QuerySet[WebhookSecret] | None = None,
) -> int:
    """Re-encrypt stored secrets under the current (first) key: Cloudflare
    credentials and webhook signing secrets.  With no argument, all of both;
    with one queryset, only those rows.  Returns how many rows changed.
    Row-locked so a concurrent edit (or a secret rotation) is not lost."""
    if accounts is None and webhook_secrets is None:
        accounts, webhook_secrets = CloudflareAccount.objects.all(), WebhookSecret.objects.all()
    changed = 0
    for pk in list(accounts.values_list("pk", flat=True)) if accounts is not None else []:
        with transaction.atomic():
            account = CloudflareAccount.objects.select_for_update().get(pk=pk)
            if account.rotate_encryption():
                account.save(update_fields=["token_ciphertext", "api_key_ciphertext", "updated_at"])
                changed += 1
    for pk in list(webhook_secrets.values_list("pk", flat=True)) if webhook_secrets is not None else []:
        with transaction.atomic():
            secret = WebhookSecret.objects.select_for_update().get(pk=pk)
            if secret.rotate_encryption():
                secret.save(update_fields=["secret_ciphertext"])
                changed += 1
    return changed


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
    # Seed first, then models learned by inference_sync_models.
    spec = resolve_model(model)
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


def enqueue_run(run_id, attempt: int = 1, countdown: float | None = None) -> None:
    from ..jobs import execute_run_job  # jobs imports services: import at use

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


def account_for(run: Run | None = None, team=None) -> CloudflareAccount | None:
    """The team's active Cloudflare account, or None (use the environment default)."""
    team_id = team.pk if team is not None else (run.team_id if run is not None else None)
    if team_id is None:
        return None
    return CloudflareAccount.objects.filter(team_id=team_id, is_active=True).first()


def upstream_account_id(run: Run) -> str:
    """The Cloudflare account a run's calls go to (its team's, else the default):
    the key of that account's 3036 pause and of its rate-limit buckets."""
    account = account_for(run)
    return account.account_id if account is not None else str(inference_settings.ACCOUNT_ID or "")


def _secret_digest(value: str) -> str:
    # The client cache is keyed by credentials; a digest keeps the plaintext out
    # of one more long-lived structure.
    return hashlib.sha256(value.encode()).hexdigest() if value else ""


def get_client(run: Run | None = None, *, team=None) -> WorkersAIClient:
    """The client for a run (or team): the team's Cloudflare account when it has
    an active one, else the environment default.  One pooled client per
    configuration and process (connection reuse)."""
    s = inference_settings
    account = account_for(run, team)
    if account is not None:
        account_id, email = account.account_id, account.email
        api_token, api_key = account.get_api_token(), account.get_api_key()
        scrub_logs.register_secret(api_token)
        scrub_logs.register_secret(api_key)
        if not (api_token or (email and api_key)):
            raise MissingCredentialsError(
                f"Cloudflare account {account.pk} of team {account.team_id} has no credentials: "
                "set an API token (or e-mail and API key) in the admin.",
                setting="CloudflareAccount",
            )
    else:
        if not s.ACCOUNT_ID:
            raise MissingCredentialsError(
                "No Cloudflare account: set CLOUDFLARE_ACCOUNT_ID (INFERENCE['ACCOUNT_ID']).",
                setting="CLOUDFLARE_ACCOUNT_ID",
            )
        account_id, api_token, email, api_key = s.ACCOUNT_ID, s.API_TOKEN, s.EMAIL, s.API_KEY
    key = (
        account_id, _secret_digest(api_token), email, _secret_digest(api_key),
        s.BASE_URL, s.CONNECT_TIMEOUT, s.READ_TIMEOUT,
    )
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = WorkersAIClient(
                account_id,
                api_token=api_token or None,
                email=email or None,
                api_key=api_key or None,
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


def claim_attempt(run_id, attempt: int, *, created_at=None) -> bool:
    """Move the run into ``attempt`` with one conditional UPDATE.  A duplicate
    or stale message finds no matching row and does nothing.  ``queue_ms`` is
    written by the same UPDATE (computed in SQL unless the caller knows
    ``created_at``): the hot path used to pay a SELECT and a second UPDATE."""
    now = timezone.now()
    if attempt == 1:
        queue_ms = (
            max(0, int((now - created_at).total_seconds() * 1000))
            if created_at is not None
            else MillisecondsSince(Value(now), F("created_at"))
        )
        return bool(
            Run.objects.filter(pk=run_id, status=RunStatus.QUEUED).update(
                status=RunStatus.RUNNING, attempts=1, started_at=now, heartbeat_at=now, queue_ms=queue_ms
            )
        )
    return bool(
        Run.objects.filter(pk=run_id, status=RunStatus.RUNNING, attempts=attempt - 1).update(
            attempts=attempt, heartbeat_at=now
        )
    )


def execute_run(run_id, attempt: int = 1) -> None:
    """Execute one attempt of a run.  Called by the Celery job with ids only.

    Order matters: a message that cannot claim anything returns before taking a
    rate-limit slot; a paused account fails the run without calling upstream; a
    worker without a slot re-schedules the same attempt (nothing recorded)."""
    run = Run.objects.filter(pk=run_id).only("status", "attempts", "model", "task", "heartbeat_at", "team_id").first()
    if run is None or run.is_terminal:
        return
    if run.status == RunStatus.RUNNING and run.attempts >= attempt:
        # A redelivery (or the sweeper) for an attempt whose worker may be dead.
        taken = reliability.take_over(run_id)
        if taken is None:
            logger.info("run %s attempt %s: nothing to do (duplicate or attempt alive)", run_id, attempt)
            return
        attempt = taken
        if attempt > int(inference_settings.MAX_ATTEMPTS):
            _db_retry(
                finish_failed,
                run, attempt - 1, code=None, retryable=True,
                message=f"The worker executing attempt {attempt - 1} was lost and no attempts are left "
                f"(MAX_ATTEMPTS={inference_settings.MAX_ATTEMPTS}).",
            )
            return
    elif not ((attempt == 1 and run.status == RunStatus.QUEUED) or (run.status == RunStatus.RUNNING and run.attempts == attempt - 1)):
        logger.info("run %s attempt %s: nothing to do (duplicate or finished)", run_id, attempt)
        return

    # Paused and paced per Cloudflare account actually used: a team's own account
    # running out of its daily allocation stops that team only.
    account_id = upstream_account_id(run)
    paused = reliability.account_paused(account_id)
    if paused:
        _fail_unclaimed(run_id, attempt, code=3036, message=(
            "Not sent upstream: the Cloudflare account's daily allocation is used up "
            f"(3036); its work is paused until 00:00 UTC. Upstream said: {paused}"
        ))
        return
    wait = reliability.acquire_slot(run.model, run.task, account=account_id)
    if wait > 0:
        # No slot: the same attempt again later; the attempt is not burned.
        if attempt > 1:
            Run.objects.filter(pk=run_id, status=RunStatus.RUNNING, attempts=attempt - 1).update(
                heartbeat_at=timezone.now() + timedelta(seconds=wait)
            )
        enqueue_run(run_id, attempt, countdown=wait + random.uniform(0, 0.05))
        return

    if not claim_attempt(run_id, attempt):
        logger.info("run %s attempt %s: nothing to do (duplicate or finished)", run_id, attempt)
        return
    run = Run.objects.get(pk=run_id)
    if attempt == 1:
        announce_started(run)
    lease = reliability.heartbeats.start(run_id, attempt)
    try:
        _execute_claimed(run, attempt)
    finally:
        reliability.heartbeats.stop(lease)


def _fail_unclaimed(run_id, attempt: int, *, code: int | None, message: str) -> None:
    """Fail a run without recording a new attempt (nothing was sent upstream)."""
    now = timezone.now()
    # Nothing was sent upstream: nothing billed, and the budget reservation is released.
    cost = pricing.not_billed(message[:200])
    fields = dict(status=RunStatus.FAILED, error_code=code, error_message=message[:4000], error_retryable=False,
                  completed_at=now, reserved_usd=0, **cost.run_fields())
    with transaction.atomic():
        if attempt == 1:
            updated = Run.objects.filter(pk=run_id, status=RunStatus.QUEUED).update(**fields)
        else:
            updated = Run.objects.filter(pk=run_id, status=RunStatus.RUNNING, attempts=attempt - 1).update(**fields)
        if updated:
            run = Run.objects.get(pk=run_id)
            # Counted in the rollup like every finished run (a failed run, $0).
            _record_usage(run, RunStatus.FAILED, cost, now)
            announce_finished(run, RunStatus.FAILED)


def _db_retry(fn, *args, **kwargs):
    """Run a finishing write; if the database connection was dropped under us
    (server restart, pg_terminate_backend), reconnect and try once more."""
    try:
        return fn(*args, **kwargs)
    except (OperationalError, InterfaceError):
        logger.warning("database connection lost while finishing a run; reconnecting", exc_info=True)
        connection.close()
        return fn(*args, **kwargs)


def _execute_claimed(run: Run, attempt: int) -> None:
    run_id = run.pk
    started = time.monotonic()
    try:
        payload = upstream_payload(run)
        outcome = call_upstream(run, payload)
    except reliability.DeadlineExceeded as exc:
        _db_retry(finish_failed, run, attempt, code=None, message=str(exc), retryable=False)
        return
    except InferenceConfigurationError as exc:
        _db_retry(finish_failed, run, attempt, code=None, message=str(exc), retryable=False)
        return
    except RunCanceled as exc:
        # Canceled mid-stream: the result is discarded, the partial usage is kept
        # (it was billed upstream).
        partial = getattr(exc, "partial", None) or {}
        upstream_ms = _elapsed_ms(started)
        _db_retry(bill_canceled, run, attempt, usage=partial.get("usage"), upstream_ms=upstream_ms,
                  cost=pricing.safe_cost_of(run, usage=partial.get("usage"), result=partial))
        return
    except InferenceError as exc:
        upstream_ms = _elapsed_ms(started)
        if isinstance(exc, QuotaExceededError):
            reliability.pause_account(str(exc), upstream_account_id(run))
        if exc.retryable and attempt < int(inference_settings.MAX_ATTEMPTS):
            delay = backoff_delay(attempt, exc.retry_after)
            if run.deadline_at is not None and timezone.now() + timedelta(seconds=delay) >= run.deadline_at:
                _db_retry(finish_failed, run, attempt, code=exc.code, retryable=exc.retryable, upstream_ms=upstream_ms,
                          message=f"{exc}; no retry: the next attempt would start after the run deadline.")
                return
            # The lease is extended over the backoff, so the sweeper does not take
            # a scheduled retry for a dead worker.
            _db_retry(Run.objects.filter(pk=run_id, status=RunStatus.RUNNING, attempts=attempt).update,
                error_code=exc.code, error_message=f"Attempt {attempt} failed: {exc}; retrying in {delay:.1f}s",
                error_retryable=True, upstream_ms=upstream_ms,
                heartbeat_at=timezone.now() + timedelta(seconds=delay),
            )
            enqueue_run(run_id, attempt + 1, countdown=delay)
            return
        _db_retry(finish_failed, run, attempt, code=exc.code, message=str(exc), retryable=exc.retryable, upstream_ms=upstream_ms, partial=getattr(exc, "partial", None))
        return
    except Exception as exc:  # a bug must not leave the run running forever
        logger.exception("run %s: unexpected error", run_id)
        _db_retry(finish_failed, run, attempt, code=None, message=f"Internal error: {type(exc).__name__}: {exc}", retryable=False)
        return
    _db_retry(finish_succeeded, run, attempt, outcome, upstream_ms=_elapsed_ms(started))


def _elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


@dataclass
class Outcome:
    result: Any
    usage: dict[str, Any] | None
    media: list[tuple[str, bytes, str]]  # (key, data, content_type)


def call_upstream(run: Run, payload: dict[str, Any]) -> Outcome:
    return outcome_from_response(run, request_upstream(run, payload))


def request_upstream(run: Run, payload: dict[str, Any]) -> RunResult:
    """Send the run upstream and return Cloudflare's answer as it came (JSON,
    bytes or an open stream): the compatible endpoint relays it unchanged."""
    return get_client(run).run(run.model, payload, timeout=reliability.upstream_timeout(run))


def outcome_from_response(run: Run, response: RunResult) -> Outcome:
    """What is stored of an upstream answer: normalized result, usage, media."""
    if isinstance(response, StreamResult):
        return consume_stream(run, response)
    spec = resolve_model(run.model)
    output_kind = spec.output_kind if spec else catalog.OutputKind.JSON
    if isinstance(response, BinaryResult):
        # Raw bytes: the media key follows the body (aura answers audio/mpeg,
        # SDXL image/png) when the catalog does not say; never "audio/mpeg".
        if output_kind == catalog.OutputKind.JSON:
            output_kind = (
                catalog.OutputKind.AUDIO_BYTES
                if response.content_type.startswith("audio/")
                else catalog.OutputKind.PNG_BYTES
            )
        raw: Any = response.content
    else:
        assert isinstance(response, JSONResult)
        raw = response.result
    # Normalize first: it wraps a bare base64 string into {"image": …} /
    # {"audio": …}, which extract_binary_outputs then finds.
    result = normalize_output(run.task, raw)
    try:
        result, blobs = extract_binary_outputs(output_kind, result)
    except BinaryOutputError as exc:
        raise UpstreamProtocolError(f"Upstream result without the expected file: {exc}") from exc
    usage = result.get("usage") if isinstance(result, dict) else None
    return Outcome(result=result, usage=usage, media=[(b.key, b.data, b.content_type) for b in blobs])


def stream_delta(event: dict[str, Any]) -> tuple[str, list | None]:
    """The text and tool-call fragments one upstream SSE event adds (the same
    shapes StreamResult accumulates: ``response``, or OpenAI-style choices)."""
    text = ""
    response = event.get("response")
    if isinstance(response, str):
        text = response
    elif isinstance(response, int | float) and not isinstance(response, bool):
        text = str(response)
    fragments = event.get("tool_calls")
    choices = event.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        delta = choices[0].get("delta")
        if isinstance(delta, dict):
            if response is None and isinstance(delta.get("content"), str):
                text = delta["content"]
            fragments = fragments or delta.get("tool_calls")
    return text, fragments if isinstance(fragments, list) and fragments else None


def consume_stream(run: Run, stream: StreamResult) -> Outcome:
    """Read the upstream stream to its end, publishing each delta as it comes.
    Nobody listening changes nothing: the run reads on and keeps its usage.
    A lost lease (the run was canceled or taken over) or the run's deadline
    stops the read; what arrived is kept as partial text and usage."""
    throttle = webhooks.OutputThrottle(run)
    lease = reliability.current_lease()
    events = 0

    def partial() -> dict[str, Any]:
        return {"response": stream.text, "tool_calls": stream.tool_calls, "usage": stream.usage or _partial_usage(run, events)}

    with stream:
        try:
            for event in stream:
                events += 1
                if lease is not None and lease.lost.is_set():
                    # Canceled (or taken from us): stop reading; closing the
                    # stream closes the upstream connection.
                    exc = RunCanceled("Run canceled while streaming")
                    exc.partial = partial()  # type: ignore[attr-defined]
                    raise exc
                if run.deadline_at is not None and timezone.now() >= run.deadline_at:
                    exc = UpstreamTimeoutError(reliability.deadline_message(run), retryable=False)
                    exc.partial = partial()  # type: ignore[attr-defined]
                    raise exc
                text, fragments = stream_delta(event)
                if text or fragments:
                    data: dict[str, Any] = {"delta": text}
                    if fragments:
                        data["tool_calls"] = fragments
                    live.publish(run.pk, "output", data)
                    throttle.maybe_send(stream.text)
        except UpstreamProtocolError as exc:
            exc.partial = partial()  # type: ignore[attr-defined]
            raise
    result = {"response": stream.text, "tool_calls": stream.tool_calls, "usage": stream.usage}
    return Outcome(result=result, usage=stream.usage, media=[])


def _partial_usage(run: Run, events: int) -> dict[str, Any] | None:
    """Usage of a stream stopped before its final usage event: one token per event
    received is what was generated (and billed) so far."""
    if not events:
        return None
    return {"completion_tokens": events, "partial": True}


def finish_succeeded(run: Run, attempt: int, outcome: Outcome, *, upstream_ms: int) -> None:
    now = timezone.now()
    # Priced from what was measured; written with the status, the rollup and the
    # budget reconciliation in one transaction.
    cost = pricing.safe_cost_of(run, usage=outcome.usage, result=outcome.result, outputs=outcome.media)
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
            reserved_usd=0, **cost.run_fields(),
        )
        if updated:
            _record_usage(run, RunStatus.SUCCEEDED, cost, now)
            announce_finished(run, RunStatus.SUCCEEDED, output=True)
        else:
            # Canceled (or finished by the sweeper) while we were calling upstream:
            # the result is discarded; its files with it.
            transaction.set_rollback(True)
            for media in stored:
                media.file.delete(save=False)
            logger.info("run %s finished upstream after it was closed; result discarded", run.pk)
    if not updated:
        # The call was billed upstream even though its result is discarded.
        bill_canceled(run, attempt, usage=outcome.usage, cost=cost, upstream_ms=upstream_ms)


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
        # Partial output (a stream cut mid-way) was generated, so it is billed.
        cost = pricing.safe_cost_of(run, usage=partial.get("usage"), result=partial)
    else:
        cost = pricing.not_billed("Failed before the upstream produced output: nothing billed.")
    with transaction.atomic():
        if Run.objects.filter(pk=run.pk, status=RunStatus.RUNNING, attempts=attempt).update(
            **fields, reserved_usd=0, **cost.run_fields()
        ):
            _record_usage(run, RunStatus.FAILED, cost, fields["completed_at"])
            announce_finished(run, RunStatus.FAILED)
            return
    if partial is not None:
        # Canceled while the (cut) stream was read: what it generated was billed.
        bill_canceled(run, attempt, usage=partial.get("usage"), cost=cost, upstream_ms=upstream_ms)


def bill_canceled(run: Run, attempt: int, *, usage: dict | None, cost: pricing.Cost, upstream_ms: int | None = None) -> bool:
    """Record what a run canceled mid-call cost: upstream billed the call even
    though its result is discarded.  The usage, the price and the rollup row are
    written once, in one transaction (the rollup counts it under ``runs``, neither
    succeeded nor failed).  ``cost_reason`` still empty marks a canceled run not
    billed yet, so a second finisher records nothing.  True if recorded here."""
    reason = "Canceled mid-call: upstream billed it, the result was discarded."
    fields: dict[str, Any] = {
        **cost.run_fields(),
        "usage": usage,
        "cost_reason": f"{reason} {cost.reason}".strip()[:300],
    }
    if upstream_ms is not None:
        fields["upstream_ms"] = upstream_ms
    with transaction.atomic():
        updated = Run.objects.filter(
            pk=run.pk, status=RunStatus.CANCELED, attempts=attempt, cost_reason=""
        ).update(**fields)
        if updated:
            completed_at = Run.objects.filter(pk=run.pk).values_list("completed_at", flat=True).first()
            _record_usage(run, RunStatus.CANCELED, cost, completed_at)
    return bool(updated)


def _record_usage(run: Run, status: str, cost: pricing.Cost, at) -> None:
    usage_rollup.record(run, status, cost, at)
    crossed = budgets.alerts_after(run, cost.usd)
    if crossed:
        transaction.on_commit(lambda: budgets.send_alerts(crossed))


def announce_started(run: Run) -> None:
    """Tell live subscribers (and a ``start`` webhook) that attempt 1 began."""
    live.publish_status(run.pk, RunStatus.RUNNING)
    if run.webhook:
        webhooks.dispatch_on_commit(run.pk, "start")


def announce_finished(run: Run, status: str, *, output: bool = False) -> None:
    """Tell live subscribers and webhooks, once the final row is committed."""
    live.publish_done(run.pk, status)
    if not run.webhook:
        return
    if output:
        webhooks.dispatch_on_commit(run.pk, "output")
    webhooks.dispatch_on_commit(run.pk, "completed")


# --- Inline execution (the Cloudflare-compatible endpoint) -----------------------


@dataclass
class InlineExecution:
    """A run executed in the calling process.  ``response`` is Cloudflare's own
    answer (JSON envelope contents or raw bytes) for a proxy to relay; for a
    stream, ``chunks`` yields the upstream bytes as they arrive and records the
    run when it ends."""

    run: Run
    response: JSONResult | BinaryResult | None = None
    chunks: Iterator[bytes] | None = None


def submit_inline(user, sub: Submission, *, api_key: APIKey | None = None) -> Run:
    """``submit_run`` without the queue, and the first attempt claimed, in one
    transaction: the run is recorded (history, budgets) before anything is sent
    upstream, with one commit where separate steps would take three."""
    with transaction.atomic():
        run, _created = submit_run(user, sub, api_key=api_key, enqueue=False)
        if run.status == RunStatus.QUEUED and claim_attempt(run.pk, 1, created_at=run.created_at):
            run.status, run.attempts = RunStatus.RUNNING, 1
    return run


def execute_inline(run: Run) -> InlineExecution:
    """Execute a run now, in this process (from ``submit_inline``, or a queued
    run): one attempt, no queue hop, no retry.  The caller speaks Cloudflare's
    protocol and retries a 429/3040 itself, as it would against Cloudflare.
    Upstream errors are recorded on the run and re-raised for the caller to
    relay; the same finish rules as the worker apply."""
    if run.status != RunStatus.RUNNING or run.attempts != 1:
        if not claim_attempt(run.pk, 1, created_at=run.created_at):
            raise InferenceError(f"Run {run.pk} is no longer queued")
        run.status, run.attempts = RunStatus.RUNNING, 1
    # The same per-account pause as the worker path: after a 3036 the account's
    # calls are refused here, not sent upstream to be refused again.
    account_id = upstream_account_id(run)
    paused = reliability.account_paused(account_id)
    if paused:
        refusal = QuotaExceededError(
            "Not sent upstream: the Cloudflare account's daily allocation is used up (3036); "
            f"its work is paused until 00:00 UTC. Upstream said: {paused}",
            status_code=429, code=3036,
        )
        finish_failed(run, 1, code=3036, message=str(refusal), retryable=False)
        raise refusal
    started = time.monotonic()
    # The same lease as a worker's attempt: the sweeper must not take a live
    # inline call for a dead worker's and send it upstream a second time.
    lease = reliability.heartbeats.start(run.pk, 1)
    announce_started(run)
    streaming = False
    try:
        response = request_upstream(run, upstream_payload(run))
        if isinstance(response, StreamResult):
            streaming = True  # relay_stream releases the lease when it ends
            return InlineExecution(run, chunks=relay_stream(run, response, started, lease))
        outcome = outcome_from_response(run, response)
    except InferenceConfigurationError as exc:
        finish_failed(run, 1, code=None, message=str(exc), retryable=False)
        raise
    except InferenceError as exc:
        if isinstance(exc, QuotaExceededError):
            reliability.pause_account(str(exc), account_id)
        finish_failed(run, 1, code=exc.code, message=str(exc), retryable=exc.retryable,
                      upstream_ms=_elapsed_ms(started), partial=getattr(exc, "partial", None))
        raise
    except Exception as exc:  # never leave the run running
        finish_failed(run, 1, code=None, message=f"Internal error: {type(exc).__name__}: {exc}",
                      retryable=False, upstream_ms=_elapsed_ms(started))
        raise
    finally:
        if not streaming:
            reliability.heartbeats.stop(lease)
    finish_succeeded(run, 1, outcome, upstream_ms=_elapsed_ms(started))
    return InlineExecution(run, response=response)


def relay_stream(run: Run, stream: StreamResult, started: float, lease=None) -> Iterator[bytes]:
    """Yield the upstream SSE bytes unchanged as they arrive, while the stream
    accumulates text, tool calls and usage; record the run when it ends
    (``failed`` with the partial text and usage if it was cut short).

    If our caller hangs up, the generation is still billed upstream: the rest of
    the stream is read (not relayed) so its usage is recorded."""
    stream.keep_raw()
    error: BaseException | None = None
    try:
        try:
            for event in stream:
                text, fragments = stream_delta(event)
                if text or fragments:
                    # /api/runs/{id}/events/ shows compat streams live too.
                    live.publish(run.pk, "output", {"delta": text, **({"tool_calls": fragments} if fragments else {})})
                chunk = stream.take_raw()
                if chunk:
                    yield chunk
        except UpstreamProtocolError as exc:
            error = exc
        tail = stream.take_raw()  # [DONE], or what came before the cut
        if tail:
            yield tail
    except GeneratorExit:
        error = _drain(stream)
        raise
    except Exception as exc:
        logger.exception("run %s: stream relay failed", run.pk)
        error = exc
        raise
    finally:
        stream.close()
        try:
            _finish_stream(run, stream, error, _elapsed_ms(started))
        finally:
            if lease is not None:
                reliability.heartbeats.stop(lease)


def _drain(stream: StreamResult) -> UpstreamProtocolError | None:
    try:
        stream.consume()
    except UpstreamProtocolError as exc:
        return exc
    return None


def _finish_stream(run: Run, stream: StreamResult, error: BaseException | None, upstream_ms: int) -> None:
    result = {"response": stream.text, "tool_calls": stream.tool_calls, "usage": stream.usage}
    if error is None and stream.done:
        finish_succeeded(run, 1, Outcome(result=result, usage=stream.usage, media=[]), upstream_ms=upstream_ms)
        return
    if isinstance(error, InferenceError):
        code, message = error.code, str(error)
    elif error is not None:
        code, message = None, f"Internal error: {type(error).__name__}: {error}"
    else:
        code, message = None, "Workers AI stream ended before [DONE]"
    finish_failed(run, 1, code=code, message=message, retryable=False, upstream_ms=upstream_ms, partial=result)


# --- Cancel ---------------------------------------------------------------------


class AlreadyFinished(Exception):
    pass


def cancel_run(run: Run) -> Run:
    """Cancel a queued or running run.  A worker mid-call sees the status change
    when it tries to finish, and discards its result."""
    now = timezone.now()
    updated = Run.objects.filter(pk=run.pk, status__in=[RunStatus.QUEUED, RunStatus.RUNNING]).update(
        status=RunStatus.CANCELED, completed_at=now, error_message="Canceled by the user.", reserved_usd=0
    )
    if updated:
        announce_finished(run, RunStatus.CANCELED)
    run.refresh_from_db()
    if not updated:  # status only moves forward: it was already terminal
        raise AlreadyFinished(run.status)
    return run



def wait_for_run(run_id, timeout: float) -> Run:
    """Block up to ``timeout`` seconds for the run to finish; return it as it
    stands.  Listens on the run's live channel when Redis is configured (no
    database polling while it waits), polls the database otherwise."""
    deadline = time.monotonic() + timeout
    subscription = None
    if live.enabled():
        try:
            subscription = live.Subscription(run_id, replay=False)  # the row is the truth, not the backlog
        except Exception as exc:  # Redis away: fall back to polling
            logger.warning("run %s: waiting by polling (%s)", run_id, exc)
    if subscription is None:
        return _poll_for_run(run_id, deadline)
    with subscription:
        while True:
            # Read after subscribing: a finish committed since is either seen here
            # or announced on the channel.
            run = Run.objects.get(pk=run_id)
            remaining = deadline - time.monotonic()
            if run.is_terminal or remaining <= 0:
                return run
            # Re-read at least every 2 s: a publish lost while Redis blinked must
            # not hold the caller for the whole wait.
            try:
                event = subscription.next_live(min(remaining, 2.0))
                while event is not None and event.event != "done":
                    event = subscription.next_live(max(0.0, min(deadline - time.monotonic(), 2.0)))
            except Exception as exc:  # Redis went away mid-wait: poll out the rest
                logger.warning("run %s: waiting by polling (%s)", run_id, exc)
                return _poll_for_run(run_id, deadline)


def _poll_for_run(run_id, deadline: float) -> Run:
    interval = 0.01
    while True:
        run = Run.objects.get(pk=run_id)
        if run.is_terminal or time.monotonic() >= deadline:
            return run
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
        interval = min(interval * 1.5, 0.2)
