from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from .. import catalog
from .. import parsing as parsers
from ..serializers import PrototypeFieldsMixin, RunMediaSerializer, RunSerializer  # noqa: F401 (re-used by the API)

WEBHOOK_EVENTS = ("start", "output", "completed")


class SafeJSONField(serializers.JSONField):
    """JSONField whose text form (multipart) gets the JSON body's limits: DRF's
    own ``json.loads`` would raise RecursionError (a 500) on deep nesting."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, str | bytes) and (self.binary or getattr(data, "is_json_string", False)):
            try:
                text = data.decode() if isinstance(data, bytes) else data
                return parsers.loads(text)
            except (ValueError, UnicodeError) as exc:
                raise serializers.ValidationError(f"Not valid JSON: {exc}") from exc
        return super().to_internal_value(data)


class RunCreateSerializer(serializers.Serializer):
    """What a caller submits.  ``input`` is validated against the task's schema
    by the submit service (one place for the rule), not here."""

    model = serializers.CharField(max_length=200)
    # Required, except in a multipart form whose files are the whole input
    # (the view checks that: only it sees the files).
    input = SafeJSONField(required=False)
    task = serializers.ChoiceField(choices=catalog.TASKS, required=False, allow_null=True)
    metadata = serializers.DictField(required=False, default=dict)
    webhook = serializers.URLField(required=False, allow_blank=True, default="", max_length=2000)
    webhook_events = serializers.ListField(
        child=serializers.ChoiceField(choices=WEBHOOK_EVENTS), required=False, default=list
    )

    def validate_model(self, value: str) -> str:
        value = value.strip()
        if not value:
            raise serializers.ValidationError("This field may not be blank.")
        return value

    def validate_input(self, value: Any) -> Any:
        if isinstance(value, str):
            # Multipart forms carry input as JSON text: the same limits as a JSON body.
            try:
                value = parsers.loads(value)
            except ValueError as exc:
                raise serializers.ValidationError(f"Not valid JSON: {exc}") from exc
        if not isinstance(value, dict):
            raise serializers.ValidationError("Must be a JSON object.")
        return value


class PriceSpecSerializer(serializers.Serializer):
    unit = serializers.CharField()
    usd = serializers.DecimalField(max_digits=20, decimal_places=10)
    neurons = serializers.DecimalField(max_digits=20, decimal_places=4)
    per = serializers.IntegerField()


class LifecycleSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["current", "deprecation_pending", "retired", "unknown"])
    retires_on = serializers.CharField(allow_null=True, help_text="YYYY-MM-DD: refused from this day.")
    replacement = serializers.CharField(allow_null=True, help_text="The model Cloudflare names instead.")


class ModelSpecSerializer(serializers.Serializer):
    """A catalog entry: name, task, Cloudflare's input/output schemas and
    properties, prices, output kind and lifecycle."""

    name = serializers.CharField()
    task = serializers.CharField()
    output_kind = serializers.CharField()
    streams = serializers.BooleanField()
    rate_limit_class = serializers.CharField()
    beta = serializers.BooleanField()
    description = serializers.CharField()
    prices = PriceSpecSerializer(many=True)
    price_known = serializers.BooleanField(
        source="cost_known", help_text="False: Cloudflare publishes no price (unknown, never $0).",
    )
    pricing_units = serializers.SerializerMethodField()
    source = serializers.SerializerMethodField()
    input_schema = serializers.JSONField(allow_null=True, help_text="Cloudflare's draft-07 input schema.")
    output_schema = serializers.JSONField(allow_null=True, help_text="Cloudflare's output schema.")
    properties = serializers.JSONField(help_text="Cloudflare's properties (context_window, async_queue, ...).")
    lifecycle = serializers.SerializerMethodField()

    @extend_schema_field(LifecycleSerializer)
    def get_lifecycle(self, spec: Any) -> dict[str, Any]:
        from ..catalog_db import lifecycle

        return lifecycle(getattr(spec, "spec", spec))

    @extend_schema_field({"type": "array", "items": {"type": "string"}})
    def get_pricing_units(self, spec: Any) -> list[str]:
        # A catalog_db.CatalogEntry (seed or synced) or a bare seed ModelSpec.
        units = getattr(spec, "pricing_units", None)
        if units is not None:
            return list(units)
        return [str(p.unit) for p in spec.prices]

    @extend_schema_field({"type": "string", "enum": ["snapshot", "sync"]})
    def get_source(self, spec: Any) -> str:
        return getattr(spec, "source", "snapshot")


class ModelListSerializer(serializers.Serializer):
    """``GET /api/models/``: the shipped snapshot overlaid by synced records."""

    count = serializers.IntegerField()
    results = ModelSpecSerializer(many=True)
