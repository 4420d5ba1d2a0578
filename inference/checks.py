"""System checks with stable ids.  Each message says how to fix the problem."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

from .conf import DEFAULTS, inference_settings


@register(Tags.compatibility)
def check_settings(app_configs=None, **kwargs):
    messages = []
    user = getattr(settings, "INFERENCE", {}) or {}
    if not isinstance(user, dict):
        return [Error("settings.INFERENCE must be a dict.", id="inference.E001")]
    unknown = sorted(set(user) - set(DEFAULTS))
    if unknown:
        messages.append(
            Error(
                f"Unknown INFERENCE setting(s): {', '.join(unknown)}.",
                hint=f"Valid keys: {', '.join(sorted(DEFAULTS))}.",
                id="inference.E002",
            )
        )
    if not inference_settings.ACCOUNT_ID:
        messages.append(
            Warning(
                "No Cloudflare account configured: runs will fail until one is set.",
                hint="Set CLOUDFLARE_ACCOUNT_ID (INFERENCE['ACCOUNT_ID']), or start the emulator.",
                id="inference.W001",
            )
        )
    if not inference_settings.API_TOKEN and not (
        inference_settings.EMAIL and inference_settings.API_KEY
    ):
        messages.append(
            Warning(
                "No Cloudflare credentials configured: runs will fail until they are set.",
                hint="Set CLOUDFLARE_API_TOKEN (preferred), or CLOUDFLARE_EMAIL and CLOUDFLARE_API_KEY.",
                id="inference.W002",
            )
        )
    if inference_settings.API_TOKEN and (inference_settings.EMAIL or inference_settings.API_KEY):
        messages.append(
            Warning(
                "Both a Cloudflare API token and the legacy email/key pair are set; the token is used.",
                hint="Unset CLOUDFLARE_EMAIL / CLOUDFLARE_API_KEY to silence this.",
                id="inference.W003",
            )
        )
    try:
        if int(inference_settings.MAX_ATTEMPTS) < 1:
            raise ValueError
    except (TypeError, ValueError):
        messages.append(
            Error("INFERENCE['MAX_ATTEMPTS'] must be an integer ≥ 1.", id="inference.E003")
        )
    if "rest_framework" not in settings.INSTALLED_APPS:
        messages.append(
            Error(
                "inference needs Django REST framework.",
                hint="Add 'rest_framework' to INSTALLED_APPS.",
                id="inference.E004",
            )
        )
    return messages


@register(Tags.security)
def check_security_settings(app_configs=None, **kwargs):
    """Encryption keys for stored credentials and the request limits."""
    messages = []
    keys = inference_settings.ENCRYPTION_KEYS
    if not isinstance(keys, list | tuple) or not all(isinstance(k, str) and k for k in keys):
        messages.append(
            Error(
                "INFERENCE['ENCRYPTION_KEYS'] must be a list of non-empty strings.",
                hint="Newest first; generate one with inference.crypto.generate_key().",
                id="inference.E090",
            )
        )
    for name in ("MAX_JSON_DEPTH", "MAX_UPLOAD_BYTES"):
        value = getattr(inference_settings, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            messages.append(Error(f"INFERENCE['{name}'] must be an integer ≥ 1.", id="inference.E091"))
    limit = inference_settings.MAX_REQUEST_BYTES
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        messages.append(
            Error("INFERENCE['MAX_REQUEST_BYTES'] must be None or an integer ≥ 1.", id="inference.E092")
        )
    return messages
