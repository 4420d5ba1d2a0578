"""The run's public shape: one serializer for the REST API, webhooks, the
playground and the CLI, so every surface shows a run the same way."""

from __future__ import annotations

import copy

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from .models import Run, RunMedia, RunStatus
from .money import format_usd


class PrototypeFieldsMixin:
    """Build a ModelSerializer's fields from the model once per class, then hand
    each instance a deep copy (what DRF does for declared fields anyway).  DRF
    rebuilds them from model introspection on every instance: a third of the
    time of serializing the run a submission answers with.  For read-only
    serializers whose fields do not depend on the instance or the context."""

    _prototype_fields: dict[type, dict[str, serializers.Field]] = {}

    def get_fields(self) -> dict[str, serializers.Field]:
        cls = type(self)
        prototype = PrototypeFieldsMixin._prototype_fields.get(cls)
        if prototype is None:
            prototype = super().get_fields()  # type: ignore[misc]
            PrototypeFieldsMixin._prototype_fields[cls] = prototype
        return copy.deepcopy(prototype)


class RunMediaSerializer(PrototypeFieldsMixin, serializers.ModelSerializer):
    url = serializers.SerializerMethodField()

    class Meta:
        model = RunMedia
        fields = ["id", "role", "field", "content_type", "size", "sha256", "url"]

    def get_url(self, obj: RunMedia) -> str:
        return reverse("inference-api:media-detail", args=[obj.pk])


class RunSerializer(PrototypeFieldsMixin, serializers.ModelSerializer):
    error = serializers.SerializerMethodField()
    media = RunMediaSerializer(many=True, read_only=True)
    cost = serializers.SerializerMethodField()
    user = serializers.CharField(source="user.get_username", read_only=True)
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)
    urls = serializers.SerializerMethodField()

    class Meta:
        model = Run
        fields = [
            "id", "model", "task", "status", "input", "result", "error", "media", "usage",
            "cost", "attempts", "metadata", "user", "team", "created_at", "started_at",
            "completed_at", "queue_ms", "upstream_ms", "urls",
        ]
        read_only_fields = fields

    @extend_schema_field({"type": "object", "nullable": True, "properties": {
        "code": {"type": "integer", "nullable": True}, "message": {"type": "string"},
        "retryable": {"type": "boolean"}}})
    def get_error(self, obj: Run) -> dict | None:
        return obj.error if obj.status == RunStatus.FAILED else None

    @extend_schema_field({"type": "object", "nullable": True, "properties": {
        "usd": {"type": "string"}, "neurons": {"type": "number"}, "estimated": {"type": "boolean"}}})
    def get_cost(self, obj: Run) -> dict | None:
        # None means unknown (no price, or nothing billed yet), never $0.
        if obj.cost_usd is None:
            return None
        return {
            "usd": format_usd(obj.cost_usd),
            "neurons": float(obj.cost_neurons) if obj.cost_neurons is not None else None,
            "estimated": obj.cost_estimated,
        }

    @extend_schema_field({"type": "object", "properties": {
        "self": {"type": "string"}, "cancel": {"type": "string"}, "events": {"type": "string"}}})
    def get_urls(self, obj: Run) -> dict[str, str]:
        return {
            "self": reverse("inference-api:run-detail", args=[obj.pk]),
            "cancel": reverse("inference-api:run-cancel", args=[obj.pk]),
            "events": reverse("inference-api:run-events", args=[obj.pk]),
        }
