"""Error answers → the exception class and retry decision of cloudflare-facts.md."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from inference.client import JSONResult, parse_retry_after
from inference.exceptions import (
    QuotaExceededError,
    RateLimitedError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamServerError,
    UpstreamTimeoutError,
)

from .conftest import LLAMA, RUN, envelope

# Every row of the table in cloudflare-facts.md ("Error codes").
ERROR_TABLE = [
    (400, 5007, UpstreamError, False),
    (400, 5004, UpstreamError, False),
    (400, 3003, UpstreamError, False),
    (400, 3030, UpstreamError, False),
    (400, 8007, UpstreamError, False),
    (401, 10000, UpstreamError, False),
    (403, 3023, UpstreamError, False),
    (403, 5016, UpstreamError, False),
    (403, 5018, UpstreamError, False),
    (403, 3041, UpstreamError, False),
    (403, 5035, UpstreamError, False),
    (404, 3042, UpstreamError, False),
    (405, 5019, UpstreamError, False),
    (405, 5005, UpstreamError, False),
    (408, 3007, UpstreamTimeoutError, True),
    (408, 3008, UpstreamTimeoutError, True),
    (413, 3006, UpstreamError, False),
    (429, 3036, QuotaExceededError, False),
    (429, 4006, QuotaExceededError, False),
    (429, 3040, RateLimitedError, True),
    (500, 1000, UpstreamServerError, True),
    (502, None, UpstreamServerError, True),
    (503, 3040, UpstreamServerError, True),
]


@pytest.mark.parametrize(("status", "code", "cls", "retryable"), ERROR_TABLE)
@pytest.mark.parametrize("result", [None, {}])
def test_error_table(rsps, client, status, code, cls, retryable, result):
    errors = [{"code": code, "message": f"boom {code}"}] if code else []
    rsps.post(f"{RUN}/{LLAMA}", status=status, json=envelope(result, success=False, errors=errors))
    with pytest.raises(UpstreamError) as info:
        client.run(LLAMA, {"prompt": "x"})
    exc = info.value
    assert type(exc) is cls
    assert exc.retryable is retryable
    assert exc.status_code == status
    assert exc.code == code
    if code:
        assert exc.message == f"boom {code}"
        assert exc.errors == errors
    assert '"success": false' in exc.body


def test_first_error_wins_and_all_are_kept(rsps, client):
    errors = [
        {"code": 3040, "message": "Capacity temporarily exceeded"},
        {"code": 1, "message": "x"},
    ]
    rsps.post(f"{RUN}/{LLAMA}", status=429, json=envelope(None, success=False, errors=errors))
    with pytest.raises(RateLimitedError) as info:
        client.run(LLAMA, {"prompt": "x"})
    assert info.value.message == "Capacity temporarily exceeded"
    assert str(info.value) == "Capacity temporarily exceeded (code 3040) [HTTP 429]"
    assert info.value.errors == errors


def test_string_code_is_read_as_int(rsps, client):
    errors = [{"code": "3036", "message": "daily limit"}]
    rsps.post(f"{RUN}/{LLAMA}", status=429, json=envelope({}, success=False, errors=errors))
    with pytest.raises(QuotaExceededError) as info:
        client.run(LLAMA, {"prompt": "x"})
    assert info.value.code == 3036 and info.value.retryable is False


def test_success_false_with_http_200(rsps, client):
    errors = [{"code": 5007, "message": "No such model"}]
    rsps.post(f"{RUN}/{LLAMA}", status=200, json=envelope({}, success=False, errors=errors))
    with pytest.raises(UpstreamError) as info:
        client.run(LLAMA, {"prompt": "x"})
    assert type(info.value) is UpstreamError
    assert info.value.code == 5007 and info.value.retryable is False


def test_retry_after_seconds(rsps, client):
    rsps.post(
        f"{RUN}/{LLAMA}",
        status=429,
        headers={"Retry-After": "17"},
        json=envelope(None, success=False, errors=[{"code": 3040, "message": "busy"}]),
    )
    with pytest.raises(RateLimitedError) as info:
        client.run(LLAMA, {"prompt": "x"})
    assert info.value.retry_after == 17.0


def test_retry_after_http_date(rsps, client):
    when = datetime.now(UTC) + timedelta(seconds=120)
    rsps.post(
        f"{RUN}/{LLAMA}",
        status=503,
        headers={"Retry-After": format_datetime(when, usegmt=True)},
        body="<html>Service Unavailable</html>",
        content_type="text/html",
    )
    with pytest.raises(UpstreamServerError) as info:
        client.run(LLAMA, {"prompt": "x"})
    assert 110 <= info.value.retry_after <= 120


def test_no_retry_after(rsps, client):
    rsps.post(f"{RUN}/{LLAMA}", status=429, json=envelope(None, success=False, errors=[]))
    with pytest.raises(RateLimitedError) as info:
        client.run(LLAMA, {"prompt": "x"})
    assert info.value.retry_after is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", 0.0),
        ("2.5", 2.5),
        (" 30 ", 30.0),
        ("-5", 0.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 60.0),
        ("Wednesday, 21-Oct-15 07:28:00 GMT", 60.0),  # RFC 850 form
        ("Wed, 21 Oct 2015 07:26:00 GMT", 0.0),  # in the past
        ("soon", None),
        ("", None),
        (None, None),
        ("nan", None),
        ("inf", None),
    ],
)
def test_parse_retry_after(value, expected):
    now = datetime(2015, 10, 21, 7, 27, tzinfo=UTC)
    assert parse_retry_after(value, now=now) == expected


def test_non_json_error_body(rsps, client):
    rsps.post(
        f"{RUN}/{LLAMA}",
        status=502,
        body="<html>\n  <body>Bad   gateway from origin</body>\n</html>",
        content_type="text/html",
    )
    with pytest.raises(UpstreamServerError) as info:
        client.run(LLAMA, {"prompt": "x"})
    exc = info.value
    assert exc.code is None and exc.retryable is True
    assert exc.message == "Bad Gateway: <html> <body>Bad gateway from origin</body> </html>"
    assert "Bad   gateway" in exc.body  # the excerpt keeps the raw text


def test_4xx_non_json_not_retryable(rsps, client):
    rsps.post(f"{RUN}/{LLAMA}", status=400, body="bad request", content_type="text/plain")
    with pytest.raises(UpstreamError) as info:
        client.run(LLAMA, {"prompt": "x"})
    assert type(info.value) is UpstreamError
    assert info.value.retryable is False
    assert info.value.message == "Bad Request: bad request"


def test_error_with_json_content_type_but_broken_body(rsps, client):
    rsps.post(f"{RUN}/{LLAMA}", status=500, body="{not json", content_type="application/json")
    with pytest.raises(UpstreamServerError) as info:
        client.run(LLAMA, {"prompt": "x"})
    assert info.value.message == "Internal Server Error: {not json"


def test_error_body_from_event_stream_content_type(rsps, client):
    # A non-2xx is an error whatever its content type: never handed out as a stream.
    rsps.post(f"{RUN}/{LLAMA}", status=503, body="overloaded", content_type="text/event-stream")
    with pytest.raises(UpstreamServerError, match="overloaded"):
        client.run(LLAMA, {"prompt": "x", "stream": True})


def test_2xx_invalid_json_is_protocol_error(rsps, client):
    rsps.post(
        f"{RUN}/{LLAMA}", status=200, body='{"result": {"resp', content_type="application/json"
    )
    with pytest.raises(UpstreamProtocolError) as info:
        client.run(LLAMA, {"prompt": "x"})
    exc = info.value
    assert exc.retryable is False
    assert exc.status_code == 200
    assert "not valid JSON" in exc.message and '{"result": {"resp' in exc.message
    assert exc.body == '{"result": {"resp'


def test_2xx_json_that_is_not_an_envelope(rsps, client):
    rsps.post(f"{RUN}/{LLAMA}", json=[1, 2, 3])
    with pytest.raises(UpstreamProtocolError, match="not a Cloudflare envelope"):
        client.run(LLAMA, {"prompt": "x"})


def test_2xx_envelope_without_result(rsps, client):
    rsps.post(f"{RUN}/{LLAMA}", json={"success": True, "errors": [], "messages": []})
    with pytest.raises(UpstreamProtocolError, match="no 'result'"):
        client.run(LLAMA, {"prompt": "x"})


def test_success_envelope(rsps, client):
    rsps.post(
        f"{RUN}/{LLAMA}",
        json={
            "result": {"response": "hi", "usage": {"prompt_tokens": 3}},
            "success": True,
            "errors": [],
            "messages": ["note"],
        },
        headers={"cf-aig-log-id": "log-1"},
    )
    result = client.run(LLAMA, {"prompt": "x"})
    assert isinstance(result, JSONResult) and result.kind == "json"
    assert result.result == {"response": "hi", "usage": {"prompt_tokens": 3}}
    assert result.messages == ["note"]
    assert result.status_code == 200
    assert result.headers["CF-AIG-Log-Id"] == "log-1"  # case-insensitive headers


def test_json_with_charset_and_suffix_content_types(rsps, client):
    rsps.post(
        f"{RUN}/{LLAMA}",
        body=b'{"result": [1], "success": true}',
        content_type="Application/JSON; charset=utf-8",
    )
    assert client.run(LLAMA, {}).result == [1]
