"""Settings of the cfai host site, read from the environment (contract §3)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DJANGO_DEBUG", True)
# Dev-safe default: only usable while DEBUG is on; production must set its own.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or "dev-insecure-cfai-secret-key-change-me-in-production"
if not DEBUG and not os.environ.get("DJANGO_SECRET_KEY"):
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is false.")
# Old keys, comma-separated, still accepted for signatures (and, unless
# INFERENCE["ENCRYPTION_KEYS"] is set, for decrypting stored credentials).
SECRET_KEY_FALLBACKS = env_list("DJANGO_SECRET_KEY_FALLBACKS", "")
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", "")

# --- Production profile (DJANGO_DEBUG=false) --------------------------------------
# HTTPS only, HSTS, secure cookies; `manage.py check --deploy` is clean with it.
# Behind a TLS-terminating proxy set DJANGO_SECURE_PROXY_SSL_HEADER=true (the
# proxy must then set X-Forwarded-Proto itself, never pass the client's).
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
if not DEBUG:
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = int(os.environ.get("DJANGO_SECURE_HSTS_SECONDS", str(365 * 24 * 3600)))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", True)
    # Off only for a plain-HTTP local demo (docker-compose on localhost).
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", True)
    if env_bool("DJANGO_SECURE_PROXY_SSL_HEADER", False):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "inference",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # 413 before any body is read (INFERENCE["MAX_REQUEST_BYTES"]).
    "inference.middleware.RequestSizeLimitMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

if not DEBUG:
    # Serves collected static files (admin, playground): gunicorn alone does not, and
    # runserver does so itself only while DEBUG is on.
    MIDDLEWARE.insert(1, "whitenoise.middleware.WhiteNoiseMiddleware")

ROOT_URLCONF = "cfai_project.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "cfai_project.wsgi.application"
ASGI_APPLICATION = "cfai_project.asgi.application"

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
        conn_max_age=int(os.environ.get("DATABASE_CONN_MAX_AGE", "60")),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several processes (web, worker) share the file: wait for locks instead of failing.
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 30
    # Take the write lock when a transaction starts: a read lock upgraded to a
    # write lock mid-transaction fails at once ("database is locked") instead
    # of waiting for the timeout.
    DATABASES["default"]["OPTIONS"]["transaction_mode"] = "IMMEDIATE"
    DATABASES["default"]["CONN_MAX_AGE"] = 0
if os.environ.get("TEST_DATABASE_NAME"):
    DATABASES["default"]["TEST"] = {"NAME": os.environ["TEST_DATABASE_NAME"]}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", BASE_DIR / "staticfiles"))
MEDIA_URL = "media/"
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", BASE_DIR / "media"))
# A JSON run body may carry a 10 MB image as base64 (~14 MB of text); Django's
# 2.5 MB default would refuse it before INFERENCE['MAX_UPLOAD_BYTES'] can answer
# a clear 413.  Multipart files are not counted by this setting.
DATA_UPLOAD_MAX_MEMORY_SIZE = 16 * 1024 * 1024

LOGIN_URL = "admin:login"

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": os.environ.get("CACHE_KEY_PREFIX", "cfai"),
    }
}
if os.environ.get("CFAI_LOCAL_CACHE"):
    # The run command sets this when no Redis is reachable.
    CACHES["default"] = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}

# --- Celery -----------------------------------------------------------------
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", REDIS_URL)
CELERY_BROKER_TRANSPORT_OPTIONS: dict = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    _queue_dir = Path(os.environ.get("CELERY_FILESYSTEM_DIR", BASE_DIR / ".run" / "broker"))
    for _sub in ("out", "processed"):
        (_queue_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue_dir / "out"),
        "data_folder_out": str(_queue_dir / "out"),
        "data_folder_processed": str(_queue_dir / "processed"),
    }
else:
    # Redis visibility timeout must exceed the longest run deadline, or an
    # unacknowledged (late-ack) message is redelivered while still running.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("CELERY_TASK_DEFAULT_QUEUE", "inference")
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# The sweeper (inference.reliability.sweep): the database is the source of truth,
# so runs whose message was lost are re-enqueued and overdue runs failed.
# Run beat once per deployment (docker-compose "beat" service, scripts/run).
SWEEP_INTERVAL = float(os.environ.get("CFAI_SWEEP_INTERVAL", "30"))
CELERY_BEAT_SCHEDULE = {
    "inference-sweep": {
        "task": "inference.sweep",
        "schedule": SWEEP_INTERVAL,
        "options": {"queue": os.environ.get("CFAI_QUEUE") or CELERY_TASK_DEFAULT_QUEUE, "expires": 60},
    }
}

# Without this, Celery's Django fixup closes the task thread's database connection
# before and after every task: a new PostgreSQL connection (and backend process)
# per run was a quarter of the worker's CPU (bench/, README "Operations").  The job
# drops a broken or expired connection itself (close_old_connections).
CELERY_DB_REUSE_MAX = int(os.environ.get("CELERY_DB_REUSE_MAX", "1000"))

# --- REST framework -----------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "inference.api.authentication.APIKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PARSER_CLASSES": [
        "inference.parsing.SafeJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
    # Caller throttling per API key (or user for session auth), counted in the
    # Redis cache; a throttled request gets 429 with Retry-After.
    "DEFAULT_THROTTLE_CLASSES": ["inference.throttling.APIKeyRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        # Every API request.
        "inference_key": os.environ.get("CFAI_THROTTLE_RATE", "1200/min"),
        # POST /api/runs/ (submissions) on top of the above.
        "inference_submit": os.environ.get("CFAI_THROTTLE_SUBMIT_RATE", "600/min"),
    },
}

SPECTACULAR_SETTINGS = {
    "TITLE": "cfai API",
    "DESCRIPTION": "Run Cloudflare Workers AI models through Django: stored, queued, costed.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
}

# --- The inference app ----------------------------------------------------------
INFERENCE = {
    "ACCOUNT_ID": os.environ.get("CLOUDFLARE_ACCOUNT_ID", ""),
    "API_TOKEN": os.environ.get("CLOUDFLARE_API_TOKEN", ""),
    "EMAIL": os.environ.get("CLOUDFLARE_EMAIL", ""),
    "API_KEY": os.environ.get("CLOUDFLARE_API_KEY", ""),
    "BASE_URL": os.environ.get("CLOUDFLARE_BASE_URL", "https://api.cloudflare.com/client/v4"),
    "REDIS_URL": None if os.environ.get("CFAI_LOCAL_CACHE") else REDIS_URL,
    # Operational knobs, also settable from the environment for workers and tests.
    "MAX_ATTEMPTS": int(os.environ.get("CFAI_MAX_ATTEMPTS", "4")),
    "RETRY_BACKOFF_BASE": float(os.environ.get("CFAI_RETRY_BACKOFF_BASE", "1.0")),
    "RETRY_BACKOFF_MAX": float(os.environ.get("CFAI_RETRY_BACKOFF_MAX", "60.0")),
    "QUEUE": os.environ.get("CFAI_QUEUE") or None,
    # Comma-separated hosts/IPs/CIDRs exempt from the webhook private-address refusal.
    "WEBHOOK_ALLOWED_HOSTS": [h.strip() for h in os.environ.get("CFAI_WEBHOOK_ALLOWED_HOSTS", "").split(",") if h.strip()],
    "WEBHOOK_BACKOFF_BASE": float(os.environ.get("CFAI_WEBHOOK_BACKOFF_BASE", "5.0")),
    # Reliability knobs (documented in inference/conf.py).
    "RUN_DEADLINE": int(os.environ.get("CFAI_RUN_DEADLINE", "600")),
    "HEARTBEAT_INTERVAL": float(os.environ.get("CFAI_HEARTBEAT_INTERVAL", "5")),
    "HEARTBEAT_TIMEOUT": float(os.environ.get("CFAI_HEARTBEAT_TIMEOUT", "60")),
    "SWEEP_INTERVAL": SWEEP_INTERVAL,
    "SWEEP_QUEUED_AFTER": float(os.environ.get("CFAI_SWEEP_QUEUED_AFTER", "120")),
    "RATE_LIMIT_SCALE": float(os.environ.get("CFAI_RATE_LIMIT_SCALE", "1.0")),
    "RATE_LIMITS": json.loads(os.environ.get("CFAI_RATE_LIMITS", "{}")),
    "RATE_LIMIT_BURST": float(os.environ.get("CFAI_RATE_LIMIT_BURST", "10")),
    # Keys for credentials stored in the database, comma-separated, newest first
    # (empty: derived from DJANGO_SECRET_KEY and its fallbacks).
    "ENCRYPTION_KEYS": env_list("CFAI_ENCRYPTION_KEYS", ""),
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"scrub_secrets": {"()": "inference.redaction.SecretScrubFilter"}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["scrub_secrets"],
        }
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
