from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from ..services.access import authenticate_api_key


class APIKeyAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer <api key>``.  Sets ``request.auth`` to the APIKey."""

    keyword = "Bearer"

    def authenticate(self, request):
        try:
            header = authentication.get_authorization_header(request).split()
        except UnicodeError as exc:  # a header value outside latin-1 (ASGI/test callers)
            raise exceptions.AuthenticationFailed(_("Invalid Authorization header.")) from exc
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(_("Invalid Authorization header: expected 'Bearer <key>'."))
        try:
            raw = header[1].decode()
        except UnicodeError as exc:
            raise exceptions.AuthenticationFailed(_("Invalid API key.")) from exc
        key = authenticate_api_key(raw)
        if key is None:
            raise exceptions.AuthenticationFailed(_("Invalid or revoked API key."))
        return key.user, key

    def authenticate_header(self, request) -> str:
        # A WWW-Authenticate header makes DRF answer 401 instead of 403.
        return f'{self.keyword} realm="api"'


class APIKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    """Documents the scheme in the OpenAPI schema (and silences drf-spectacular's
    W001 in ``check --deploy``)."""

    target_class = APIKeyAuthentication
    name = "apiKey"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "An API key: `Bearer cfai_…`."}
