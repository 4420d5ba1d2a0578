"""Credentials, auth headers, URLs, User-Agent and the session the client builds."""

from __future__ import annotations

import json
import logging

import pytest
import requests
import responses

from inference import __version__
from inference.client import WorkersAIClient, model_path
from inference.exceptions import InferenceError, MissingCredentialsError

from .conftest import ACCOUNT, API, LLAMA, RUN, TOKEN, envelope


def test_missing_account_id_names_the_variable():
    with pytest.raises(MissingCredentialsError, match="CLOUDFLARE_ACCOUNT_ID") as info:
        WorkersAIClient("", api_token=TOKEN)
    assert info.value.setting == "CLOUDFLARE_ACCOUNT_ID"


def test_missing_credentials_names_both_schemes():
    with pytest.raises(MissingCredentialsError) as info:
        WorkersAIClient(ACCOUNT)
    message = str(info.value)
    assert "CLOUDFLARE_API_TOKEN" in message
    assert "CLOUDFLARE_EMAIL" in message and "CLOUDFLARE_API_KEY" in message
    # Configuration errors live outside the runtime root: never swallowed as upstream.
    assert not isinstance(info.value, InferenceError)


@pytest.mark.parametrize(
    ("kwargs", "missing"),
    [
        ({"email": "me@example.com"}, "CLOUDFLARE_API_KEY"),
        ({"api_key": "gk-SECRET"}, "CLOUDFLARE_EMAIL"),
    ],
)
def test_half_a_legacy_pair_names_the_missing_half(kwargs, missing):
    with pytest.raises(MissingCredentialsError, match=missing) as info:
        WorkersAIClient(ACCOUNT, **kwargs)
    assert "gk-SECRET" not in str(info.value)
    assert info.value.setting == missing


def _sent_headers(rsps: responses.RequestsMock) -> requests.structures.CaseInsensitiveDict:
    return rsps.calls[0].request.headers


def test_bearer_token_only(rsps):
    rsps.post(f"{RUN}/{LLAMA}", json=envelope({"response": "hi"}))
    with WorkersAIClient(ACCOUNT, api_token=TOKEN) as client:
        client.run(LLAMA, {"prompt": "x"})
    headers = _sent_headers(rsps)
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert "X-Auth-Email" not in headers and "X-Auth-Key" not in headers


def test_legacy_email_and_key_only(rsps):
    rsps.post(f"{RUN}/{LLAMA}", json=envelope({"response": "hi"}))
    with WorkersAIClient(ACCOUNT, email="me@example.com", api_key="gk-SECRET") as client:
        client.run(LLAMA, {"prompt": "x"})
    headers = _sent_headers(rsps)
    assert headers["X-Auth-Email"] == "me@example.com"
    assert headers["X-Auth-Key"] == "gk-SECRET"
    assert "Authorization" not in headers


def test_token_preferred_over_legacy_pair(rsps):
    rsps.post(f"{RUN}/{LLAMA}", json=envelope({"response": "hi"}))
    client = WorkersAIClient(ACCOUNT, api_token=TOKEN, email="me@example.com", api_key="gk")
    client.run(LLAMA, {"prompt": "x"})
    headers = _sent_headers(rsps)
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert "X-Auth-Key" not in headers and "X-Auth-Email" not in headers


def test_credentials_never_in_repr():
    client = WorkersAIClient(ACCOUNT, email="me@example.com", api_key="gk-SECRET")
    text = repr(client) + repr(client._auth) + repr(vars(client))
    assert "gk-SECRET" not in text
    assert "gk-SECRET" not in repr(client.session.headers)
    assert "email+api_key" in repr(client)


def test_credentials_not_in_errors_or_logs(rsps, caplog):
    rsps.post(
        f"{RUN}/{LLAMA}",
        status=401,
        json=envelope(
            None, success=False, errors=[{"code": 10000, "message": "Authentication error"}]
        ),
    )
    caplog.set_level(logging.DEBUG)
    client = WorkersAIClient(ACCOUNT, api_token=TOKEN)
    with pytest.raises(InferenceError) as info:
        client.run(LLAMA, {"prompt": "x"})
    exc = info.value
    dumped = " ".join([str(exc), repr(exc), exc.body or "", repr(exc.as_dict()), caplog.text])
    assert TOKEN not in dumped
    assert "inference.client" in {r.name for r in caplog.records}


def test_literal_model_path(rsps):
    rsps.post(f"{RUN}/{LLAMA}", json=envelope({"response": "hi"}))
    client = WorkersAIClient(ACCOUNT, api_token=TOKEN)
    client.run(LLAMA, {"prompt": "x"})
    url = rsps.calls[0].request.url
    assert url == f"{API}/accounts/{ACCOUNT}/ai/run/@cf/meta/llama-3.1-8b-instruct-fp8"
    assert "%2F" not in url and "%40" not in url


def test_percent_encoded_model_is_unquoted(rsps):
    rsps.post(f"{RUN}/{LLAMA}", json=envelope({"response": "hi"}))
    client = WorkersAIClient(ACCOUNT, api_token=TOKEN)
    client.run("%40cf%2Fmeta%2Fllama-3.1-8b-instruct-fp8", {"prompt": "x"})
    assert rsps.calls[0].request.url.endswith("/ai/run/@cf/meta/llama-3.1-8b-instruct-fp8")


@pytest.mark.parametrize("bad", ["", "  ", "@cf//x", "@cf/../../tokens", "/@cf/x"])
def test_invalid_model_names_rejected(bad):
    with pytest.raises(ValueError):
        model_path(bad)


def test_url_breaking_characters_stay_encoded():
    assert model_path("@cf/x/y?z#w") == "@cf/x/y%3Fz%23w"


@pytest.mark.parametrize(
    "base",
    [
        "https://gateway.ai.cloudflare.com/v1/acc123/my-gw/workers-ai",
        "https://gateway.ai.cloudflare.com/v1/acc123/my-gw/workers-ai/",
        "http://127.0.0.1:8787/proxy/workers-ai",
    ],
)
def test_gateway_url_path(rsps, base):
    expected = base.rstrip("/") + "/" + LLAMA
    rsps.post(expected, json=envelope({"response": "hi"}))
    client = WorkersAIClient(ACCOUNT, api_token=TOKEN, base_url=base)
    assert client.gateway is True
    client.run(LLAMA, {"prompt": "x"}, extra_headers={"cf-aig-skip-cache": "true"})
    request = rsps.calls[0].request
    assert request.url == expected
    assert request.headers["cf-aig-skip-cache"] == "true"
    assert "/accounts/" not in request.url


def test_gateway_can_be_forced_off_and_on():
    assert WorkersAIClient(ACCOUNT, api_token=TOKEN, gateway=True).run_url(LLAMA) == (
        f"{API}/{LLAMA}"
    )
    gw = "https://gateway.ai.cloudflare.com/v1/a/g/workers-ai"
    assert (
        WorkersAIClient(ACCOUNT, api_token=TOKEN, base_url=gw, gateway=False).run_url("@cf/x/y")
        == f"{gw}/accounts/{ACCOUNT}/ai/run/@cf/x/y"
    )


def test_user_agent_and_json_body(rsps):
    rsps.post(f"{RUN}/{LLAMA}", json=envelope({"response": "hi"}))
    client = WorkersAIClient(ACCOUNT, api_token=TOKEN)
    client.run(LLAMA, {"prompt": "héllo", "stream": False})
    request = rsps.calls[0].request
    assert request.headers["User-Agent"] == (
        f"cfai-inference/{__version__} python-requests/{requests.__version__}"
    )
    assert request.headers["Content-Type"] == "application/json"
    assert request.method == "POST"
    assert json.loads(request.body) == {"prompt": "héllo", "stream": False}


def test_custom_user_agent(rsps):
    rsps.post(f"{RUN}/{LLAMA}", json=envelope({"response": "hi"}))
    WorkersAIClient(ACCOUNT, api_token=TOKEN, user_agent="mine/1").run(LLAMA, {"prompt": "x"})
    assert rsps.calls[0].request.headers["User-Agent"] == "mine/1"


def test_pooled_session_sized_for_fifty_threads():
    client = WorkersAIClient(ACCOUNT, api_token=TOKEN)
    adapter = client.session.get_adapter("https://api.cloudflare.com/")
    assert adapter._pool_maxsize >= 64
    assert adapter.max_retries.total == 0  # retries are decided by error_for_status
    assert client.session.get_adapter("http://127.0.0.1/") is adapter


def test_default_and_per_call_timeout(monkeypatch):
    client = WorkersAIClient(ACCOUNT, api_token=TOKEN, timeout=(1.0, 2.0))
    seen = []

    def fake_send(request, **kwargs):
        seen.append(kwargs["timeout"])
        raise requests.ConnectionError("stop here")

    adapter = client.session.get_adapter("https://")
    monkeypatch.setattr(adapter, "send", fake_send)
    for timeout in (None, 9.0):
        with pytest.raises(InferenceError):
            client.run(LLAMA, {"prompt": "x"}, timeout=timeout)
    assert seen == [(1.0, 2.0), 9.0]


def test_supplied_session_is_used_and_not_closed(rsps):
    rsps.post(f"{RUN}/{LLAMA}", json=envelope({"response": "hi"}))
    session = requests.Session()
    closed = []
    session.close = lambda: closed.append(True)  # type: ignore[method-assign]
    with WorkersAIClient(ACCOUNT, api_token=TOKEN, session=session) as client:
        assert client.session is session
        client.run(LLAMA, {"prompt": "x"})
    assert closed == []
    assert rsps.calls[0].request.headers["Authorization"] == f"Bearer {TOKEN}"


def test_client_closes_its_own_session():
    client = WorkersAIClient(ACCOUNT, api_token=TOKEN)
    closed = []
    client.session.close = lambda: closed.append(True)  # type: ignore[method-assign]
    with client:
        pass
    assert closed == [True]


def test_redirects_not_followed(rsps):
    # A redirect would carry X-Auth-Key to another host: it is an error instead.
    rsps.post(f"{RUN}/{LLAMA}", status=302, headers={"Location": "https://evil.example/"})
    client = WorkersAIClient(ACCOUNT, email="me@example.com", api_key="gk")
    with pytest.raises(InferenceError) as info:
        client.run(LLAMA, {"prompt": "x"})
    assert info.value.status_code == 302
    assert len(rsps.calls) == 1


def test_invalid_base_url_is_configuration_error():
    from inference.exceptions import InferenceConfigurationError

    with pytest.raises(InferenceConfigurationError, match="base URL"):
        WorkersAIClient(ACCOUNT, api_token=TOKEN, base_url="api.cloudflare.com/client/v4")


def test_unserialisable_payload_is_callers_error_not_upstream(rsps):
    client = WorkersAIClient(ACCOUNT, api_token=TOKEN)
    with pytest.raises(requests.exceptions.InvalidJSONError):
        client.run(LLAMA, {"temperature": float("nan")})
    assert len(rsps.calls) == 0
