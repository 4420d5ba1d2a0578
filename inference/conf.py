"""The app's settings: one ``INFERENCE = {...}`` dict, defaults here, read at use time.

Reading lazily (like django-filter's conf) keeps ``override_settings`` working.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings as django_settings
from django.core.signals import setting_changed

DEFAULTS: dict[str, Any] = {
    # Cloudflare account and credentials (a Bearer token, or the legacy email + key pair).
    "ACCOUNT_ID": "",
    "API_TOKEN": "",
    "EMAIL": "",
    "API_KEY": "",
    # API base: Cloudflare, an AI Gateway (…/workers-ai), or the local emulator.
    "BASE_URL": "https://api.cloudflare.com/client/v4",
    # (connect, read) seconds for upstream calls when a task has no timeout of its own.
    "CONNECT_TIMEOUT": 5.0,
    "READ_TIMEOUT": 120.0,
    # Attempts per run (1 = no retry) and exponential backoff with full jitter.
    "MAX_ATTEMPTS": 4,
    "RETRY_BACKOFF_BASE": 1.0,
    "RETRY_BACKOFF_MAX": 60.0,
    # Overall deadline of a run, in seconds from its submission (deadline_at).
    "RUN_DEADLINE": 600,
    # Redis used for live events (pub/sub), rate limiting and locks; None = no Redis.
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    # Largest accepted upload (multipart file or decoded base64), in bytes.
    "MAX_UPLOAD_BYTES": 10 * 1024 * 1024,
    # Storage alias (settings.STORAGES) for run media.
    "MEDIA_STORAGE": "default",
    # Prefix of generated API keys (visible part helps users tell keys apart).
    "API_KEY_PREFIX": "cfai",
    # Celery queue for run execution.
    "QUEUE": None,
    # Webhooks.  Targets resolving to loopback, private, link-local, metadata or
    # other non-public addresses are refused (at submission and again at delivery)
    # unless listed here: host names, IP addresses or CIDR networks.
    "WEBHOOK_ALLOWED_HOSTS": [],
    # Seconds per delivery attempt (connect + read); redirects are never followed.
    "WEBHOOK_TIMEOUT": 10.0,
    # Attempts per message (same webhook-id each time) and exponential backoff.
    "WEBHOOK_MAX_ATTEMPTS": 6,
    "WEBHOOK_BACKOFF_BASE": 5.0,
    "WEBHOOK_BACKOFF_MAX": 3600.0,
    # Events sent when a run names a webhook but no webhook_events.
    "WEBHOOK_DEFAULT_EVENTS": ["completed"],
    # A streamed run sends at most one "output" webhook per this many seconds.
    "WEBHOOK_OUTPUT_INTERVAL": 1.0,
    # --- Reliability (inference.reliability) ---
    # Upstream read timeout per task, in seconds; tasks not named use READ_TIMEOUT.
    # The read timeout of a call is also capped by what is left of RUN_DEADLINE.
    "TASK_TIMEOUTS": {
        "text-generation": 120.0,
        "text-to-image": 120.0,
        "image-to-text": 90.0,
        "automatic-speech-recognition": 180.0,
        "text-to-speech": 90.0,
        "translation": 60.0,
        "summarization": 60.0,
        "text-embeddings": 30.0,
        "text-classification": 30.0,
        "image-classification": 30.0,
        "object-detection": 30.0,
    },
    # The worker executing an attempt refreshes Run.heartbeat_at every
    # HEARTBEAT_INTERVAL seconds; an attempt whose heartbeat is older than
    # HEARTBEAT_TIMEOUT is presumed dead (worker SIGKILLed, host lost) and the
    # sweeper or a redelivered message may claim the next attempt.
    "HEARTBEAT_INTERVAL": 5.0,
    "HEARTBEAT_TIMEOUT": 60.0,
    # Sweeper (Celery beat job ``inference.sweep``, every SWEEP_INTERVAL seconds;
    # the host site feeds the same value to CELERY_BEAT_SCHEDULE):
    # re-enqueues runs ``queued`` for longer than SWEEP_QUEUED_AFTER seconds (a
    # flushed broker loses nothing), re-enqueues running runs whose heartbeat is
    # stale, fails running runs past deadline_at, and clears expired
    # Idempotency-Keys.  At most SWEEP_BATCH runs of each kind per pass.
    "SWEEP_INTERVAL": 30.0,
    "SWEEP_QUEUED_AFTER": 120.0,
    "SWEEP_BATCH": 1000,
    # How long an Idempotency-Key is honoured (contract §5: 24 h).
    "IDEMPOTENCY_TTL": 24 * 3600,
    # Upstream pacing: a Redis token bucket per Cloudflare account and rate class
    # (catalog.RATE_LIMITS, requests per minute).  RATE_LIMITS overrides classes;
    # RATE_LIMIT_SCALE multiplies every limit (a paid plan's higher limits);
    # RATE_LIMIT_BURST is the bucket size in seconds of the refill rate.
    "RATE_LIMIT_ENABLED": True,
    "RATE_LIMITS": {},
    "RATE_LIMIT_SCALE": 1.0,
    "RATE_LIMIT_BURST": 10.0,
    # Keys encrypting credentials stored in the database (team Cloudflare accounts).
    # A list: the first encrypts, all decrypt (rotation: prepend a new key, run
    # ``manage.py inference_rotate_credentials``, then drop the old one).  Fernet
    # keys (``inference.crypto.generate_key()``) or any strings (derived with
    # SHA-256).  Empty: derived from SECRET_KEY and SECRET_KEY_FALLBACKS.
    "ENCRYPTION_KEYS": [],
    # Largest request body accepted at all, in bytes (413 above it).  None: room
    # for one MAX_UPLOAD_BYTES file inlined as a JSON byte array (~4 characters a
    # byte) plus 1 MiB for the rest of the body.
    "MAX_REQUEST_BYTES": None,
    # Deepest JSON nesting accepted in a request body (400 above it).
    "MAX_JSON_DEPTH": 64,
    # Seconds a web process keeps a model's price versions for the worst-case
    # estimate of a budget reservation (one query saved per submission).  A Price
    # saved or deleted clears the cache of the process that saved it at once (and
    # again on commit); other processes pick the change up within this time.
    # Versions with a future effective_from are cached too, so a scheduled price
    # applies exactly on time.  0 turns the cache off.  Costs of finished runs are
    # always priced from the database.
    "PRICE_CACHE_SECONDS": 30,
    # A model whose price is unknown (Cloudflare publishes none) is never free to a
    # budget.  "refuse": refuse its runs when any budget applies to the caller
    # (402 naming the model); "estimate": reserve UNKNOWN_PRICE_ESTIMATE_USD per run.
    "UNKNOWN_PRICE_POLICY": "refuse",
    "UNKNOWN_PRICE_ESTIMATE_USD": "0.01",
}


class InferenceSettings:
    def __init__(self) -> None:
        self._cache: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(f"Invalid INFERENCE setting: {name!r}")
        if name not in self._cache:
            user = getattr(django_settings, "INFERENCE", {}) or {}
            self._cache[name] = user.get(name, DEFAULTS[name])
        return self._cache[name]

    def reload(self) -> None:
        self._cache.clear()


inference_settings = InferenceSettings()


def _reload(*, setting: str, **kwargs: Any) -> None:
    if setting == "INFERENCE":
        inference_settings.reload()


setting_changed.connect(_reload)
