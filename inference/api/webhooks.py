"""The caller's webhook signing secret (Standard Webhooks ``whsec_…``)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ..services import webhooks
from .schema import ERROR_RESPONSES

SECRET = {"type": "object", "properties": {"secret": {"type": "string"}, "created_at": {"type": "string", "format": "date-time"}}}


class WebhookSecretView(APIView):
    """``GET``: your secret (created on first use).  ``POST``: rotate it."""

    @extend_schema(responses={200: SECRET, 401: ERROR_RESPONSES[401]})
    def get(self, request: Request) -> Response:
        secret = webhooks.secret_for(request.user)
        return Response({"secret": secret.secret, "created_at": secret.created_at})

    @extend_schema(request=None, responses={200: SECRET, 401: ERROR_RESPONSES[401]})
    def post(self, request: Request) -> Response:
        secret = webhooks.rotate_secret(request.user)
        return Response({"secret": secret.secret, "created_at": secret.created_at})
