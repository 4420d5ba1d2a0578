"""Routes, authentication schemes and Cloudflare's error envelopes."""

from __future__ import annotations

import pytest
import requests

from inference.emulator import EmulatorServer

from .conftest import ACCOUNT, AUTH, LLAMA

AUTH_ERROR = {"success": False, "errors": [{"code": 10000, "message": "Authentication error"}],
              "messages": [], "result": None}


def test_missing_auth_is_401(run):
    response = run(LLAMA, {"prompt": "hi"}, headers={})
    assert response.status_code == 401
    assert response.json() == AUTH_ERROR


def test_open_mode_accepts_any_token_and_any_legacy_pair(run):
    assert run(LLAMA, {"prompt": "hi"}, headers={"Authorization": "Bearer whatever"}).status_code == 200
    legacy = {"X-Auth-Email": "a@example.com", "X-Auth-Key": "k"}
    assert run(LLAMA, {"prompt": "hi"}, headers=legacy).status_code == 200
    assert run(LLAMA, {"prompt": "hi"}, headers={"Authorization": "Bearer "}).status_code == 401
    assert run(LLAMA, {"prompt": "hi"}, headers={"X-Auth-Email": "a@example.com"}).status_code == 401


@pytest.fixture(scope="module")
def strict():
    with EmulatorServer(tokens=["good"], legacy_credentials=("me@example.com", "k3y"),
                        account_ids=["acct-1"]) as server:
        yield server


@pytest.mark.parametrize(("headers", "account", "status", "scheme"), [
    ({"Authorization": "Bearer good"}, "acct-1", 200, "bearer"),
    ({"Authorization": "Bearer bad"}, "acct-1", 401, None),
    ({"X-Auth-Email": "me@example.com", "X-Auth-Key": "k3y"}, "acct-1", 200, "legacy"),
    ({"X-Auth-Email": "me@example.com", "X-Auth-Key": "wrong"}, "acct-1", 401, None),
    ({"Authorization": "Bearer good"}, "acct-other", 401, "bearer"),
])
def test_configured_credentials(strict, headers, account, status, scheme):
    strict.reset()
    response = requests.post(strict.run_url(account, LLAMA), headers=headers, json={"prompt": "hi"}, timeout=10)
    assert response.status_code == status
    if status == 401:
        assert response.json() == AUTH_ERROR
    [record] = strict.requests
    assert record["auth"] == scheme and record["status"] == status and record["account_id"] == account


def test_encoded_slash_in_model_is_7000(emulator):
    url = f"{emulator.base_url}/accounts/{ACCOUNT}/ai/run/@cf%2Fmeta%2Fllama-3.1-8b-instruct-fp8"
    response = requests.post(url, headers=AUTH, json={"prompt": "hi"}, timeout=10)
    assert response.status_code == 400
    assert response.json() == {"success": False, "errors": [{"code": 7000, "message": "No route for that URI"}],
                               "messages": [], "result": None}


def test_encoded_at_sign_is_fine(emulator):
    url = f"{emulator.base_url}/accounts/{ACCOUNT}/ai/run/%40cf/meta/llama-3.1-8b-instruct-fp8"
    assert requests.post(url, headers=AUTH, json={"prompt": "hi"}, timeout=10).status_code == 200
    assert emulator.requests[-1]["model"] == LLAMA


def test_unknown_model_is_5007(run):
    response = run("@cf/nobody/nothing", {"prompt": "hi"})
    assert response.status_code == 400
    body = response.json()
    assert body["success"] is False and body["result"] is None
    assert body["errors"][0]["code"] == 5007 and "@cf/nobody/nothing" in body["errors"][0]["message"]


@pytest.mark.parametrize("body", [b"not json", b"", b"[1, 2]"])
def test_body_not_a_json_object_is_3003(emulator, body):
    response = requests.post(emulator.run_url(ACCOUNT, LLAMA), data=body,
                             headers={**AUTH, "Content-Type": "application/json"}, timeout=10)
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == 3003


def test_unknown_route_is_7000(emulator):
    response = requests.get(f"{emulator.base_url}/accounts/{ACCOUNT}/nothing", headers=AUTH, timeout=10)
    assert response.status_code == 400 and response.json()["errors"][0]["code"] == 7000


def test_ai_gateway_form(emulator):
    url = f"{emulator.gateway_url(ACCOUNT, 'my-gateway')}/{LLAMA}"
    response = requests.post(url, headers=AUTH, json={"prompt": "through the gateway"}, timeout=10)
    assert response.status_code == 200
    assert response.json()["result"]["response"]
    assert response.headers["cf-aig-cache-status"] == "MISS" and response.headers["cf-aig-log-id"]
    record = emulator.requests[-1]
    assert record["gateway_id"] == "my-gateway" and record["account_id"] == ACCOUNT and record["model"] == LLAMA


def test_chunked_request_body(emulator):
    def body():
        yield b'{"prompt": '
        yield b'"chunked upload"}'

    response = requests.post(emulator.run_url(ACCOUNT, LLAMA), data=body(), headers=AUTH, timeout=10)
    assert response.status_code == 200 and response.json()["result"]["usage"]["prompt_tokens"] == 2


def test_stop_closes_pooled_connections_and_restarts_on_same_port():
    server = EmulatorServer().start()
    port = server.port
    with requests.Session() as session:
        assert session.post(server.run_url("a", LLAMA), headers=AUTH, json={"prompt": "x"}, timeout=5).ok
        server.stop()
        with pytest.raises(requests.ConnectionError):
            session.post(server.run_url("a", LLAMA), headers=AUTH, json={"prompt": "x"}, timeout=5)
        server.start()
        try:
            assert server.port == port
            assert session.post(server.run_url("a", LLAMA), headers=AUTH, json={"prompt": "x"}, timeout=5).ok
        finally:
            server.stop()
