"""``WorkersAIClient``: one pooled session, auth, URLs, and dispatch on the answer.

Plain Python + requests, after django-anymail's ``base_requests.py``: configuration
arrives through the constructor (never from Django settings), every transport error
leaves as an ``inference.exceptions`` error, and the retry decision is left to
``error_for_status`` and the caller.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import requests
from requests.adapters import HTTPAdapter

from inference import __version__
from inference.exceptions import (
    InferenceConfigurationError,
    MissingCredentialsError,
    UpstreamConnectionError,
    UpstreamProtocolError,
    UpstreamTimeoutError,
)

from .envelope import error_from_response, is_json, media_type, unwrap_envelope
from .results import BinaryResult, JSONResult
from .sse import STREAM_READ_ERRORS, StreamResult

logger = logging.getLogger("inference.client")

DEFAULT_BASE_URL = "https://api.cloudflare.com/client/v4"
Timeout = float | tuple[float, float]
RunResult = JSONResult | BinaryResult | StreamResult

# Error bodies are read for their message only; a proxy's 5xx page can be large.
ERROR_BODY_LIMIT = 64 * 1024
READ_CHUNK = 64 * 1024
# A catalog that ignores ``page`` would otherwise be paged forever.
MAX_PAGES = 200


class CloudflareAuth(requests.auth.AuthBase):
    """Adds the auth headers at send time, so they live nowhere else (not in the
    session's default headers, not in our reprs) and can never be logged by us."""

    def __init__(self, headers: Mapping[str, str], scheme: str) -> None:
        self._headers = dict(headers)
        self.scheme = scheme

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers.update(self._headers)
        return request

    def __repr__(self) -> str:
        return f"<CloudflareAuth {self.scheme}>"


def _auth_from(api_token: str | None, email: str | None, api_key: str | None) -> CloudflareAuth:
    # A token is preferred: it can be scoped to Workers AI; the global key cannot.
    if api_token:
        return CloudflareAuth({"Authorization": f"Bearer {api_token}"}, "api_token")
    if email and api_key:
        return CloudflareAuth({"X-Auth-Email": email, "X-Auth-Key": api_key}, "email+api_key")
    if email or api_key:
        missing = "CLOUDFLARE_API_KEY" if email else "CLOUDFLARE_EMAIL"
        raise MissingCredentialsError(
            f"Cloudflare credentials are incomplete: {missing} is missing "
            "(the legacy scheme needs both CLOUDFLARE_EMAIL and CLOUDFLARE_API_KEY; "
            "or set CLOUDFLARE_API_TOKEN instead)",
            setting=missing,
        )
    raise MissingCredentialsError(
        "No Cloudflare credentials: set CLOUDFLARE_API_TOKEN, "
        "or CLOUDFLARE_EMAIL + CLOUDFLARE_API_KEY",
        setting="CLOUDFLARE_API_TOKEN",
    )


def is_gateway_url(base_url: str) -> bool:
    parts = urlsplit(base_url)
    return parts.netloc.lower().endswith("gateway.ai.cloudflare.com") or parts.path.rstrip(
        "/"
    ).endswith("/workers-ai")


def model_path(model: str) -> str:
    """The model name as literal path segments: ``@cf/meta/llama-3.1-8b-instruct-fp8``.

    Cloudflare answers 7000 to an encoded ``/``, so ``/`` and ``@`` stay as they are;
    a name that arrives percent-encoded (``%40cf%2Fmeta%2F…``, e.g. from a URL we
    were given) is decoded first.  Characters that would change the URL's meaning
    (space, ``?``, ``#``) are still encoded.
    """
    name = model.strip()
    if "%" in name:
        name = unquote(name)
    segments = name.split("/")
    if not name or any(s in ("", ".", "..") for s in segments):
        raise ValueError(f"Invalid Workers AI model name: {model!r}")
    return quote(name, safe="/@:")


def _user_agent() -> str:
    return f"cfai-inference/{__version__} python-requests/{requests.__version__}"


class WorkersAIClient:
    """A client for ``POST /accounts/{id}/ai/run/{model}`` and the model catalog.

    Thread-safe for concurrent ``run`` calls: all state is read-only after
    construction and the session's pool is sized for the worker's threads.
    """

    def __init__(
        self,
        account_id: str | None,
        *,
        api_token: str | None = None,
        email: str | None = None,
        api_key: str | None = None,
        base_url: str = DEFAULT_BASE_URL,
        timeout: Timeout = (5.0, 120.0),
        session: requests.Session | None = None,
        user_agent: str | None = None,
        gateway: bool | None = None,
        catalog_base_url: str | None = None,
        pool_maxsize: int = 64,
    ) -> None:
        if not account_id or not str(account_id).strip():
            raise MissingCredentialsError(
                "No Cloudflare account id: set CLOUDFLARE_ACCOUNT_ID",
                setting="CLOUDFLARE_ACCOUNT_ID",
            )
        self.account_id = str(account_id).strip()
        self._auth = _auth_from(api_token, email, api_key)

        self.base_url = base_url.rstrip("/")
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise InferenceConfigurationError(
                f"Invalid Workers AI base URL {base_url!r}: it needs http(s)://host",
                setting="BASE_URL",
            )
        # gateway=None: decide from the URL (an AI Gateway ends in /workers-ai).
        self.gateway = is_gateway_url(self.base_url) if gateway is None else gateway
        # The catalog endpoints are not proxied by AI Gateway: they always go to the
        # Cloudflare API, unless told otherwise (the emulator serves both).
        self.catalog_base_url = (
            catalog_base_url or (DEFAULT_BASE_URL if self.gateway else self.base_url)
        ).rstrip("/")
        self.timeout = timeout
        self.user_agent = user_agent or _user_agent()

        self._owns_session = session is None
        if session is None:
            session = requests.Session()
            # No transport retries: a POST may have been billed, and the decision to
            # retry belongs to error_for_status + the caller's backoff.
            adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_maxsize, max_retries=0)
            session.mount("https://", adapter)
            session.mount("http://", adapter)
        self.session = session

    # -- URLs -----------------------------------------------------------------------

    def _account_url(self, base: str) -> str:
        return f"{base}/accounts/{quote(self.account_id, safe='')}"

    def run_url(self, model: str) -> str:
        path = model_path(model)
        if self.gateway:
            return f"{self.base_url}/{path}"
        return f"{self._account_url(self.base_url)}/ai/run/{path}"

    # -- public API -------------------------------------------------------------------

    def run(
        self,
        model: str,
        payload: Mapping[str, Any],
        *,
        timeout: Timeout | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> RunResult:
        """Run a model.  The kind of result follows the response's Content-Type
        (JSON envelope, SSE stream, or raw bytes), not what was asked for: a model
        may ignore ``stream`` and the binary models answer without an envelope.

        A ``StreamResult`` holds the connection open: iterate it to the end, or
        ``close()`` it (it is a context manager).
        """
        response = self._send(
            "POST",
            self.run_url(model),
            json=dict(payload),
            timeout=timeout,
            headers=extra_headers,
            label=model,
        )
        status = response.status_code
        media = media_type(response.headers)
        if not 200 <= status < 300:
            body = self._read_body(response, limit=ERROR_BODY_LIMIT)
            raise error_from_response(status, response.reason, response.headers, body)
        if media == "text/event-stream":
            return StreamResult(
                _iter_raw(response),
                headers=response.headers,
                status_code=status,
                on_close=response.close,
            )
        body = self._read_body(response)
        if is_json(media):
            return unwrap_envelope(status, response.reason, response.headers, body)
        return BinaryResult(
            content=body,
            content_type=media or "application/octet-stream",
            headers=response.headers,
            status_code=status,
        )

    def models_search(self, **params: Any) -> Iterator[dict[str, Any]]:
        """Every model of the catalog matching ``params`` (``task``, ``search``,
        ``author``, ``hide_experimental``, ``per_page``, ``page`` to start from),
        following pagination lazily."""
        url = f"{self._account_url(self.catalog_base_url)}/ai/models/search"
        query = {k: _query_value(v) for k, v in params.items() if v is not None}
        page = int(query.pop("page", 1))
        per_page = int(query["per_page"]) if "per_page" in query else None
        seen = 0
        previous_first: Any = None
        for _ in range(MAX_PAGES):
            result = self._get_json(url, {**query, "page": page})
            items = result.result
            if not isinstance(items, list):
                raise UpstreamProtocolError(
                    "Workers AI models/search result is not a list",
                    status_code=result.status_code,
                )
            if not items or items[0] == previous_first:
                # Empty page, or a server ignoring ``page`` and repeating itself.
                return
            yield from items
            seen += len(items)
            previous_first = items[0]
            if _last_page(result.result_info, page, per_page, seen, len(items)):
                return
            page += 1

    def model_schema(self, model: str) -> dict[str, Any]:
        """The ``{"input": …, "output": …}`` JSON Schemas of a model."""
        name = model.strip()
        if "%" in name:
            name = unquote(name)
        url = f"{self._account_url(self.catalog_base_url)}/ai/models/schema"
        result = self._get_json(url, {"model": name})
        if not isinstance(result.result, dict):
            raise UpstreamProtocolError(
                "Workers AI models/schema result is not an object",
                status_code=result.status_code,
            )
        return result.result

    def close(self) -> None:
        """Close the session (only one this client created)."""
        if self._owns_session:
            self.session.close()

    def __enter__(self) -> WorkersAIClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        # Never the credentials: only which scheme is in use.
        return (
            f"WorkersAIClient(account_id={self.account_id!r}, base_url={self.base_url!r}, "
            f"auth={self._auth.scheme!r}, gateway={self.gateway})"
        )

    # -- transport --------------------------------------------------------------------

    def _send(
        self,
        method: str,
        url: str,
        *,
        label: str,
        timeout: Timeout | None = None,
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        merged = {"User-Agent": self.user_agent, **(headers or {})}
        started = time.monotonic()
        try:
            response = self.session.request(
                method,
                url,
                headers=merged,
                auth=self._auth,
                timeout=self.timeout if timeout is None else timeout,
                # Always stream: the Content-Type decides how the body is read, and an
                # SSE body must not be slurped before we can hand it out.
                stream=True,
                # A redirect would re-send X-Auth-Key to wherever it points (requests
                # strips only Authorization on a host change); the API never redirects.
                allow_redirects=False,
                **kwargs,
            )
        except requests.Timeout as exc:  # before ConnectionError: ConnectTimeout is both
            raise UpstreamTimeoutError(f"Workers AI request timed out ({exc})") from exc
        except requests.ConnectionError as exc:
            raise UpstreamConnectionError(f"Could not reach Workers AI ({exc})") from exc
        except requests.RequestException as exc:
            # InvalidURL, InvalidHeader, a payload with NaN (InvalidJSONError): the
            # caller's bug, not a transport failure; never retried.
            if isinstance(exc, ValueError | requests.exceptions.InvalidJSONError):
                raise
            raise UpstreamConnectionError(f"Workers AI request failed ({exc})") from exc
        logger.debug(
            "%s %s -> %s %s in %.0f ms",
            method,
            label,
            response.status_code,
            response.headers.get("Content-Type", "-"),
            (time.monotonic() - started) * 1000,
        )
        return response

    def _read_body(self, response: requests.Response, *, limit: int | None = None) -> bytes:
        """Read the body once into one ``bytes`` (``b"".join`` copies the chunks a
        single time) and release the connection."""
        chunks: list[bytes] = []
        size = 0
        try:
            for chunk in response.iter_content(READ_CHUNK):
                chunks.append(chunk)
                size += len(chunk)
                if limit is not None and size >= limit:
                    break
        except STREAM_READ_ERRORS as exc:
            if limit is not None:  # an error answer: its partial text is good enough
                return b"".join(chunks)
            raise UpstreamProtocolError(
                f"Workers AI response body was cut short after {size} bytes ({exc})",
                status_code=response.status_code,
            ) from exc
        finally:
            response.close()
        return b"".join(chunks)

    def _get_json(self, url: str, params: Mapping[str, Any]) -> JSONResult:
        response = self._send("GET", url, params=params, label=urlsplit(url).path)
        status = response.status_code
        body = self._read_body(response, limit=None if 200 <= status < 300 else ERROR_BODY_LIMIT)
        if not 200 <= status < 300:
            raise error_from_response(status, response.reason, response.headers, body)
        if not is_json(media_type(response.headers)):
            raise UpstreamProtocolError(
                f"Workers AI answered {media_type(response.headers) or 'no content type'} "
                "where JSON was expected",
                status_code=status,
            )
        return unwrap_envelope(status, response.reason, response.headers, body)


def _iter_raw(response: requests.Response) -> Iterator[bytes]:
    """The body as it arrives.  ``iter_content(None)`` only streams chunked bodies —
    on a close-delimited one urllib3 reads to EOF first — so use ``read1``, which
    returns whatever has arrived, when urllib3 (2.x) has it."""
    raw = response.raw
    read1 = getattr(raw, "read1", None)
    if read1 is None:
        yield from response.iter_content(chunk_size=None)
        return
    while True:
        chunk = read1(READ_CHUNK, decode_content=True)
        if not chunk:
            return
        yield chunk


def _query_value(value: Any) -> Any:
    # Cloudflare's query parser wants JSON-style booleans, not Python's "True".
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _last_page(
    info: Mapping[str, Any] | None,
    page: int,
    per_page: int | None,
    seen: int,
    count: int,
) -> bool:
    info = info or {}
    size = info.get("per_page") or per_page
    total = info.get("total_count")
    if isinstance(info.get("total_pages"), int) and page >= info["total_pages"]:
        return True
    if isinstance(total, int):
        # Pages before the one we started from count too.
        return (page * size if size else seen) >= total
    # No total: a short page is the last one.
    return bool(size) and info.get("count", count) < size
