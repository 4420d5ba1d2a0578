"""Prices (data, versioned by date), budgets, and the daily usage rollup."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone

from ..catalog import Unit

USD = {"max_digits": 20, "decimal_places": 10}
NEURONS = {"max_digits": 24, "decimal_places": 6}


class Price(models.Model):
    """``usd_per_unit`` and ``neurons_per_unit`` for ``per`` units of ``unit``.

    Versioned by ``effective_from``: a run is charged at the newest price of each
    unit whose ``effective_from`` is not after the run's creation.  A price already
    in force is never edited in place (the admin saves a new version instead), so
    every run's recorded price ids keep meaning what they meant."""

    model = models.CharField(max_length=200, help_text="Workers AI model name.")
    unit = models.CharField(max_length=32, choices=[(u.value, u.value) for u in Unit])
    usd_per_unit = models.DecimalField(**USD, help_text="US dollars per `per` units.")
    neurons_per_unit = models.DecimalField(**NEURONS, help_text="Neurons per `per` units.")
    per = models.PositiveIntegerField(default=1, help_text="How many units the prices are for (e.g. 1,000,000 tokens).")
    effective_from = models.DateTimeField(default=timezone.now)
    note = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["model", "unit", "-effective_from"]
        constraints = [
            models.UniqueConstraint(
                fields=["model", "unit", "effective_from"], name="inference_price_version_unique"
            )
        ]
        indexes = [
            models.Index(fields=["model", "unit", "-effective_from"], name="inference_price_lookup")
        ]

    def __str__(self) -> str:
        return f"{self.model} {self.unit}: ${self.usd_per_unit}/{self.per} (from {self.effective_from:%Y-%m-%d})"

    def clean(self) -> None:
        if self.usd_per_unit is not None and self.usd_per_unit < 0:
            raise ValidationError({"usd_per_unit": "A price cannot be negative."})
        if self.neurons_per_unit is not None and self.neurons_per_unit < 0:
            raise ValidationError({"neurons_per_unit": "Neurons cannot be negative."})


class Budget(models.Model):
    class Period(models.TextChoices):
        DAY = "day", "Day"
        MONTH = "month", "Month"
        TOTAL = "total", "Total"

    name = models.CharField(max_length=100)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE,
        related_name="inference_budgets", help_text="Set exactly one of user or team.",
    )
    team = models.ForeignKey(
        "inference.Team", null=True, blank=True, on_delete=models.CASCADE, related_name="budgets"
    )
    period = models.CharField(max_length=8, choices=Period.choices, default=Period.MONTH)
    limit_usd = models.DecimalField(**USD, help_text="Submissions that would reach this are refused (402).")
    soft_threshold = models.DecimalField(
        max_digits=4, decimal_places=3, default=Decimal("0.8"),
        help_text="Fraction of the limit at which an alert is raised (signal + admin highlight).",
    )
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(user__isnull=False, team__isnull=True) | Q(user__isnull=True, team__isnull=False)),
                name="inference_budget_one_scope",
            )
        ]

    def __str__(self) -> str:
        scope = f"user {self.user}" if self.user_id else f"team {self.team}"
        return f"{self.name} ({scope}, {self.period}, ${self.limit_usd})"

    def clean(self) -> None:
        if bool(self.user_id) == bool(self.team_id):
            raise ValidationError("Set exactly one of user or team.")
        if self.limit_usd is not None and self.limit_usd < 0:
            raise ValidationError({"limit_usd": "The limit cannot be negative."})
        if self.soft_threshold is not None and not (0 < self.soft_threshold <= 1):
            raise ValidationError({"soft_threshold": "Between 0 (excluded) and 1."})


class UsageDaily(models.Model):
    """One row per (day, user, team, model, task), updated in the transaction that
    finishes each run: reads of usage never scan the run table."""

    day = models.DateField()
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    team = models.ForeignKey("inference.Team", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    model = models.CharField(max_length=200)
    task = models.CharField(max_length=64)
    runs = models.PositiveIntegerField(default=0)
    succeeded = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    input_tokens = models.PositiveBigIntegerField(default=0)
    output_tokens = models.PositiveBigIntegerField(default=0)
    cost_usd = models.DecimalField(**USD, default=Decimal(0))
    neurons = models.DecimalField(**NEURONS, default=Decimal(0))
    estimated_runs = models.PositiveIntegerField(default=0, help_text="Runs whose cost is an estimate.")
    unknown_cost_runs = models.PositiveIntegerField(default=0, help_text="Runs with no known price (not counted as $0).")

    class Meta:
        verbose_name = "daily usage"
        verbose_name_plural = "daily usage"
        ordering = ["-day", "model"]
        # Two partial constraints because NULL team is distinct in a plain unique
        # index (and nulls_distinct is PostgreSQL-15-only).
        constraints = [
            models.UniqueConstraint(
                fields=["day", "user", "team", "model", "task"], condition=Q(team__isnull=False),
                name="inference_usage_key_team",
            ),
            models.UniqueConstraint(
                fields=["day", "user", "model", "task"], condition=Q(team__isnull=True),
                name="inference_usage_key_noteam",
            ),
        ]
        indexes = [
            models.Index(fields=["day"], name="inference_usage_day"),
            models.Index(fields=["user", "day"], name="inference_usage_user_day"),
            models.Index(fields=["team", "day"], name="inference_usage_team_day"),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.user_id} {self.model}"
