"""A logging filter that scrubs credentials from every record it sees.

Three nets, because one is never enough:

* header-shaped text: ``Authorization: Bearer …``, ``X-Auth-Key: …`` (dict reprs
  and raw header dumps alike);
* key-shaped text: our API keys (``<API_KEY_PREFIX>_<prefix>_<secret>``) and
  Standard Webhooks secrets (``whsec_…``);
* known values: the configured Cloudflare token and key, and every team
  credential this process has decrypted (``register_secret``), wherever they
  appear, in the message or in a formatted traceback.
"""

from __future__ import annotations

import logging
import re
import threading

REDACTED = "[REDACTED]"

_PATTERNS = [
    # Authorization / X-Auth-Key header values, in dict reprs or raw header dumps.
    re.compile(r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?(?:bearer|token)?\s*)([^\s'\",}]+)"),
    re.compile(r"(?i)(x-auth-key['\"]?\s*[:=]\s*['\"]?)([^\s'\",}]+)"),
    # Our own API keys (cfai_<prefix>_<secret>) anywhere in a message.
    re.compile(r"()(cfai_[A-Za-z0-9]{6,}_[A-Za-z0-9_\-]{16,})"),
    # Standard Webhooks secrets.
    re.compile(r"()(whsec_[A-Za-z0-9+/=]{16,})"),
]

# Shorter values would redact ordinary words; real credentials are far longer.
MIN_SECRET_LENGTH = 8
_known: set[str] = set()
_known_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Redact ``value`` from every later log record of this process."""
    if value and len(value) >= MIN_SECRET_LENGTH and value not in _known:
        with _known_lock:
            _known.add(value)


def _configured_secrets() -> list[str]:
    try:
        from .conf import inference_settings

        values = [inference_settings.API_TOKEN, inference_settings.API_KEY]
    except Exception:  # settings not configured yet (early import, a bare script)
        return []
    return [v for v in values if v and len(v) >= MIN_SECRET_LENGTH]


def _prefix_pattern() -> re.Pattern[str] | None:
    try:
        from .conf import inference_settings

        prefix = inference_settings.API_KEY_PREFIX
    except Exception:
        return None
    if not prefix or prefix == "cfai":
        return None
    return re.compile(rf"{re.escape(prefix)}_[A-Za-z0-9]{{6,}}_[A-Za-z0-9_\-]{{16,}}")


def scrub(text: str) -> str:
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
    custom = _prefix_pattern()
    if custom is not None:
        text = custom.sub(REDACTED, text)
    # Longest first, so a secret containing another is redacted whole.
    for secret in sorted({*_known, *_configured_secrets()}, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


_traceback_formatter = logging.Formatter()


class SecretScrubFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string is not ours to fix here
            return True
        cleaned = scrub(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = None
        # Handlers format tracebacks after filtering, from exc_text when set: set
        # it here, scrubbed, so an exception message cannot carry a secret out.
        if record.exc_info and not record.exc_text:
            record.exc_text = _traceback_formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        return True
