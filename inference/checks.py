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
    messages.extend(check_contradictions())
    return messages


def _number(name: str) -> float | None:
    try:
        return float(getattr(inference_settings, name))
    except (TypeError, ValueError):
        return None


def check_contradictions() -> list:
    """Settings that are each valid but cannot work together (inference.E005+)."""
    messages: list = []
    for name in ("CONNECT_TIMEOUT", "READ_TIMEOUT", "RUN_DEADLINE", "RETRY_BACKOFF_BASE",
                 "RETRY_BACKOFF_MAX", "MAX_UPLOAD_BYTES"):
        value = _number(name)
        if value is None or value <= 0:
            messages.append(Error(
                f"INFERENCE[{name!r}] must be a positive number (got {getattr(inference_settings, name)!r}).",
                hint=f"Set INFERENCE[{name!r}] to a number > 0, or remove it to use the default "
                     f"({DEFAULTS[name]!r}).",
                id="inference.E005",
            ))
    base, cap = _number("RETRY_BACKOFF_BASE"), _number("RETRY_BACKOFF_MAX")
    if base and cap and base > cap:
        messages.append(Error(
            f"INFERENCE['RETRY_BACKOFF_BASE'] ({base}) is larger than RETRY_BACKOFF_MAX ({cap}).",
            hint="The cap must be at least the base delay: raise RETRY_BACKOFF_MAX or lower "
                 "RETRY_BACKOFF_BASE (CFAI_RETRY_BACKOFF_BASE / CFAI_RETRY_BACKOFF_MAX).",
            id="inference.E006",
        ))
    read, deadline = _number("READ_TIMEOUT"), _number("RUN_DEADLINE")
    if read and deadline and read > deadline:
        messages.append(Error(
            f"INFERENCE['READ_TIMEOUT'] ({read:g} s) exceeds RUN_DEADLINE ({deadline:g} s): "
            "a single upstream call could outlive the run it belongs to.",
            hint="Lower READ_TIMEOUT or raise RUN_DEADLINE.",
            id="inference.E007",
        ))
    storages = getattr(settings, "STORAGES", {}) or {}
    if inference_settings.MEDIA_STORAGE not in storages:
        messages.append(Error(
            f"INFERENCE['MEDIA_STORAGE'] is {inference_settings.MEDIA_STORAGE!r}, which is not "
            "an alias in settings.STORAGES.",
            hint=f"Use one of: {', '.join(sorted(storages)) or '(none defined)'}, or add the alias "
                 "to STORAGES.",
            id="inference.E008",
        ))
    prefix = inference_settings.API_KEY_PREFIX
    if not isinstance(prefix, str) or not prefix.isalnum() or len(prefix) > 16:
        messages.append(Error(
            f"INFERENCE['API_KEY_PREFIX'] must be 1-16 letters or digits (got {prefix!r}).",
            hint="Keys look like <prefix>_<id>_<secret>; an underscore in the prefix would make "
                 "them ambiguous.",
            id="inference.E009",
        ))
    rest = getattr(settings, "REST_FRAMEWORK", {}) or {}
    schema_class = rest.get("DEFAULT_SCHEMA_CLASS", "")
    if "drf_spectacular" in settings.INSTALLED_APPS and "drf_spectacular" not in str(schema_class):
        messages.append(Error(
            "drf-spectacular is installed but REST_FRAMEWORK['DEFAULT_SCHEMA_CLASS'] is not its "
            "AutoSchema: /api/schema/ and /api/docs/ would fail.",
            hint="Set REST_FRAMEWORK['DEFAULT_SCHEMA_CLASS'] = 'drf_spectacular.openapi.AutoSchema'.",
            id="inference.E010",
        ))
    auth = [str(a) for a in rest.get("DEFAULT_AUTHENTICATION_CLASSES", [])]
    if not any("inference.api.authentication" in a for a in auth):
        messages.append(Warning(
            "REST_FRAMEWORK['DEFAULT_AUTHENTICATION_CLASSES'] does not include the inference "
            "API-key authentication: 'Authorization: Bearer <key>' will answer 401.",
            hint="Add 'inference.api.authentication.APIKeyAuthentication' (and "
                 "'rest_framework.authentication.SessionAuthentication' for the browser).",
            id="inference.W004",
        ))
    perms = [str(p) for p in rest.get("DEFAULT_PERMISSION_CLASSES", [])]
    if not perms or any(p.endswith("AllowAny") for p in perms):
        messages.append(Error(
            "REST_FRAMEWORK['DEFAULT_PERMISSION_CLASSES'] lets anonymous callers reach the "
            "inference API (DRF's default is AllowAny).",
            hint="Set REST_FRAMEWORK['DEFAULT_PERMISSION_CLASSES'] = "
                 "['rest_framework.permissions.IsAuthenticated'].",
            id="inference.E011",
        ))
    broker = str(getattr(settings, "CELERY_BROKER_URL", "") or "")
    transport = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {}) or {}
    visibility = transport.get("visibility_timeout", 3600) if broker.startswith(("redis", "rediss")) else None
    if visibility is not None and deadline and float(visibility) < deadline:
        messages.append(Warning(
            f"The Redis broker's visibility_timeout ({visibility} s) is shorter than "
            f"INFERENCE['RUN_DEADLINE'] ({deadline:g} s): a long run's message would be "
            "redelivered to another worker while it still runs.",
            hint="Raise CELERY_BROKER_TRANSPORT_OPTIONS['visibility_timeout'] above RUN_DEADLINE.",
            id="inference.W005",
        ))
    if getattr(settings, "CELERY_TASK_ALWAYS_EAGER", False) and not settings.DEBUG:
        messages.append(Warning(
            "CELERY_TASK_ALWAYS_EAGER is on with DEBUG off: every run executes inside the web "
            "request that submitted it.",
            hint="Turn CELERY_TASK_ALWAYS_EAGER off in production and run a Celery worker.",
            id="inference.W006",
        ))
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
