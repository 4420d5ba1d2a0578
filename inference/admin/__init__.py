"""The Django admin: runs, access, billing, webhooks (autodiscovered as ``inference.admin``)."""

from . import runs  # noqa: F401  (registers every ModelAdmin; runs imports the rest)
