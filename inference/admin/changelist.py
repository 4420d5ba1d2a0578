"""Keeps the admin run changelist fast with millions of runs.

Django's stock changelist runs three full-table queries on every load: COUNT(*)
for the paginator, SELECT DISTINCT task for a plain field filter, and
SELECT DISTINCT date_trunc(…) for the date hierarchy.  Each is replaced here by
an index-friendly equivalent."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.contrib import admin
from django.core.paginator import Paginator
from django.db.models import Max, Min, QuerySet
from django.utils import timezone
from django.utils.functional import cached_property

from .. import catalog

COUNT_CAP = 10_000


class CappedCountPaginator(Paginator):
    """Counts at most COUNT_CAP + 1 rows (SELECT COUNT(*) FROM (… LIMIT n)):
    past that the admin shows "10,001" and the pages up to it; filters narrow it."""

    @cached_property
    def count(self) -> int:
        if isinstance(self.object_list, QuerySet):
            return self.object_list[: COUNT_CAP + 1].count()
        return super().count


class TaskListFilter(admin.SimpleListFilter):
    """Tasks from the catalog, not from SELECT DISTINCT over every run."""

    title = "task"
    parameter_name = "task"

    def lookups(self, request, model_admin):
        return [(t, t) for t in catalog.TASKS]

    def queryset(self, request, queryset):
        return queryset.filter(task=self.value()) if self.value() else queryset


class FastDatesQuerySet(QuerySet):
    """``datetimes()`` for the date hierarchy from MIN/MAX (two index probes)
    instead of a DISTINCT over the table: lists every period between the first
    and last matching run, so a period can show with no runs, never the reverse."""

    def datetimes(self, field_name, kind, order="ASC", tzinfo=None):  # type: ignore[override]
        if kind not in ("year", "month", "day"):
            return super().datetimes(field_name, kind, order, tzinfo)
        bounds = self.order_by().aggregate(first=Min(field_name), last=Max(field_name))
        if bounds["first"] is None:
            return []
        first, last = timezone.localtime(bounds["first"]), timezone.localtime(bounds["last"])
        out: list[datetime] = []
        cursor = first.date()
        while cursor <= last.date():
            if kind == "year":
                point = cursor.replace(month=1, day=1)
                nxt = point.replace(year=point.year + 1)
            elif kind == "month":
                point = cursor.replace(day=1)
                nxt = (point + timedelta(days=32)).replace(day=1)
            else:
                point, nxt = cursor, cursor + timedelta(days=1)
            out.append(timezone.make_aware(datetime(point.year, point.month, point.day)))
            cursor = nxt
        return out if order == "ASC" else out[::-1]


def fast_dates(queryset: QuerySet) -> QuerySet:
    clone = queryset._chain()
    clone.__class__ = type("FastDates" + queryset.__class__.__name__, (FastDatesQuerySet, queryset.__class__), {}) \
        if not isinstance(queryset, FastDatesQuerySet) else queryset.__class__
    return clone
