"""A logging filter that scrubs credentials from every record it sees."""

from __future__ import annotations

import logging
import re

_PATTERNS = [
    # Authorization / X-Auth-Key header values, in dict reprs or raw header dumps.
    re.compile(r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?(?:bearer|token)?\s*)([^\s'\",}]+)"),
    re.compile(r"(?i)(x-auth-key['\"]?\s*[:=]\s*['\"]?)([^\s'\",}]+)"),
    # Our own API keys (cfai_<prefix>_<secret>) anywhere in a message.
    re.compile(r"()(cfai_[A-Za-z0-9]{6,}_[A-Za-z0-9_\-]{16,})"),
    # Standard Webhooks secrets.
    re.compile(r"()(whsec_[A-Za-z0-9+/=]{16,})"),
]


def scrub(text: str) -> str:
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + "[REDACTED]", text)
    return text


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
        return True
