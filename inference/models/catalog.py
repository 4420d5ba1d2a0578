"""The database copy of Cloudflare's model records, over the shipped snapshot.

The snapshot shipped in the package (``inference.records``) is what the code
knows at release time; ``manage.py inference_sync_models`` refreshes this table
from the live ``ai/models/search`` + ``ai/models/schema`` (or ``--from`` a folder
or file of records), storing each whole record: schemas, properties, prices,
dates.  A model Cloudflare stops listing is marked ``delisted``, never deleted.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class CatalogModel(models.Model):
    class Source(models.TextChoices):
        SEED = "seed", "Seed (also in the code catalog)"
        SYNC = "sync", "Synced from Cloudflare only"

    name = models.CharField(max_length=200, unique=True, help_text="Model id, e.g. @cf/meta/llama-3.1-8b-instruct-fp8.")
    task = models.CharField(max_length=64, db_index=True, help_text="Our task slug (text-generation, …).")
    description = models.TextField(blank=True, default="")
    output_kind = models.CharField(
        max_length=32, default="json",
        help_text="How results come back (json, png, jpeg, base64_image, base64_audio, audio_bytes).",
    )
    properties = models.JSONField(
        default=dict, blank=True,
        help_text="Cloudflare's properties as {property_id: value} (price, context_window, …).",
    )
    beta = models.BooleanField(default=False)
    input_schema = models.JSONField(null=True, blank=True, help_text="The record's draft-07 input schema.")
    output_schema = models.JSONField(null=True, blank=True, help_text="The record's output schema.")
    prices = models.JSONField(
        null=True, blank=True,
        help_text="Published prices as [{unit, usd, per}]; empty = unknown (never free).",
    )
    retired_on = models.DateField(null=True, blank=True, help_text="Refused from this day on.")
    replacement = models.CharField(max_length=200, blank=True, default="")
    delisted_at = models.DateTimeField(
        null=True, blank=True, help_text="When a sync first found Cloudflare no longer lists it.",
    )
    source = models.CharField(max_length=8, choices=Source.choices, default=Source.SYNC)
    synced_at = models.DateTimeField(default=timezone.now, help_text="Last time the search listed it.")

    class Meta:
        ordering = ["name"]
        verbose_name = "catalog model"

    def __str__(self) -> str:
        return f"{self.name} ({self.task})"
