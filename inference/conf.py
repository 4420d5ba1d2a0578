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
    # Overall deadline of a run, from its start, in seconds.
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
