"""GET /api/usage/: usage and cost from the daily rollup (contract §5)."""

from __future__ import annotations

from datetime import date

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ..services import usage
from .schema import ERROR_RESPONSES


def _parse_date(value: str | None, name: str, errors: dict[str, list[str]]) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        errors[name] = [f"Not an ISO date (YYYY-MM-DD): {value!r}."]
        return None


class UsageView(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("group_by", str, enum=list(usage.GROUPS), description="Default: model."),
            OpenApiParameter("since", str, description="First day included (ISO date)."),
            OpenApiParameter("until", str, description="Last day included (ISO date)."),
        ],
        responses={
            200: {"type": "object", "properties": {
                "group_by": {"type": "string"}, "results": {"type": "array", "items": {"type": "object"}},
                "totals": {"type": "object"}}},
            400: ERROR_RESPONSES[400],
            401: ERROR_RESPONSES[401],
        },
    )
    def get(self, request: Request) -> Response:
        errors: dict[str, list[str]] = {}
        group_by = request.query_params.get("group_by") or "model"
        if group_by not in usage.GROUPS:
            errors["group_by"] = [f"Must be one of: {', '.join(usage.GROUPS)}."]
        since = _parse_date(request.query_params.get("since"), "since", errors)
        until = _parse_date(request.query_params.get("until"), "until", errors)
        if since and until and since > until:
            errors["until"] = ["Must not be before since."]
        if errors:
            return Response(errors, status=400)
        return Response(usage.report(usage.visible_usage(request.user), group_by, since, until))
