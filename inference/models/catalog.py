"""Models learned from Cloudflare's model search, layered over the code seed.

The seed (``inference.catalog``) stays the source of truth for the models it
knows (it carries prices and per-model limits the search does not); this table
adds the models Cloudflare lists that the seed lacks, so they can run without
the caller naming a task.  Refreshed by ``manage.py inference_sync_models``.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class CatalogModel(models.Model):
    class Source(models.TextChoices):
        SEED = "seed", "Seed (also in the code catalog)"
        SYNC = "sync", "Synced from Cloudflare only"

    name = models.CharField(max_length=200, unique=True, help_text="Model id, e.g. @cf/meta/llama-3.1-8b-instruct.")
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
    source = models.CharField(max_length=8, choices=Source.choices, default=Source.SYNC)
    synced_at = models.DateTimeField(default=timezone.now, help_text="Last time the search listed it.")

    class Meta:
        ordering = ["name"]
        verbose_name = "catalog model"

    def __str__(self) -> str:
        return f"{self.name} ({self.task})"
