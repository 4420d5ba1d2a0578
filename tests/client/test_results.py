"""Dispatch on Content-Type (JSON / binary / stream) and the catalog endpoints."""

from __future__ import annotations

import pytest
from responses import matchers

from inference.client import BinaryResult, JSONResult, StreamResult
from inference.exceptions import UpstreamError, UpstreamProtocolError

from .conftest import ACCOUNT, API, LLAMA, RUN, envelope, sse_body

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40
SDXL = "@cf/stabilityai/stable-diffusion-xl-base-1.0"


@pytest.mark.parametrize(
    ("model", "content_type", "expected"),
    [
        (SDXL, "image/png", "image/png"),
        ("@cf/leonardo/phoenix-1.0", "image/jpeg", "image/jpeg"),
        ("@cf/deepgram/aura-1", "audio/mpeg", "audio/mpeg"),
        ("@cf/x/y", "application/octet-stream", "application/octet-stream"),
        ("@cf/x/y", "IMAGE/PNG; charset=binary", "image/png"),
    ],
)
def test_binary_answers(rsps, client, model, content_type, expected):
    rsps.post(f"{RUN}/{model}", body=PNG, content_type=content_type)
    result = client.run(model, {"prompt": "a cat"})
    assert isinstance(result, BinaryResult) and result.kind == "binary"
    assert result.content == PNG  # byte for byte, \r\n and all
    assert result.content_type == expected
    assert result.status_code == 200
    assert "bytes>" in repr(result) and "\\x89" not in repr(result)


def test_binary_without_content_type(rsps, client):
    rsps.post(f"{RUN}/{SDXL}", body=PNG, content_type=None)
    result = client.run(SDXL, {"prompt": "a cat"})
    assert isinstance(result, BinaryResult)
    assert result.content_type == "application/octet-stream"


def test_base64_in_json_stays_json(rsps, client):
    # flux-1-schnell answers its image as base64 inside the envelope.
    rsps.post(f"{RUN}/@cf/black-forest-labs/flux-1-schnell", json=envelope({"image": "iVBORw0K"}))
    result = client.run("@cf/black-forest-labs/flux-1-schnell", {"prompt": "a cat"})
    assert isinstance(result, JSONResult)
    assert result.result == {"image": "iVBORw0K"}


def test_dispatch_follows_response_not_request(rsps, client):
    # Asked to stream, the model answered a plain envelope: that is what we return.
    rsps.post(f"{RUN}/{LLAMA}", json=envelope({"response": "whole"}))
    result = client.run(LLAMA, {"prompt": "x", "stream": True})
    assert isinstance(result, JSONResult)
    # Not asked to stream, but an SSE body came back: a stream it is.
    rsps.post(f"{RUN}/@cf/x/y", body=sse_body({"response": "a"}), content_type="text/event-stream")
    result = client.run("@cf/x/y", {"prompt": "x"})
    assert isinstance(result, StreamResult)
    assert result.consume().text == "a"


def test_recorded_stream_through_responses(rsps, client):
    body = sse_body(
        {"response": "Hel", "p": "abcd"},
        {"response": "lo", "p": "ab"},
        {
            "response": "",
            "usage": {"prompt_tokens": 10, "completion_tokens": 50, "total_tokens": 60},
        },
    )
    rsps.post(f"{RUN}/{LLAMA}", body=body, content_type="text/event-stream")
    with client.run(LLAMA, {"prompt": "x", "stream": True}) as stream:
        events = list(stream)
    assert [e["response"] for e in events] == ["Hel", "lo", ""]
    assert events[0]["p"] == "abcd"  # passed through untouched; just never used
    assert stream.text == "Hello"
    assert stream.usage == {"prompt_tokens": 10, "completion_tokens": 50, "total_tokens": 60}
    assert stream.done is True


# -- catalog ----------------------------------------------------------------------------

SEARCH = f"{API}/accounts/{ACCOUNT}/ai/models/search"


def _page(names, page, per_page, total):
    return {
        "result": [{"id": n, "name": n} for n in names],
        "success": True,
        "errors": [],
        "messages": [],
        "result_info": {
            "page": page,
            "per_page": per_page,
            "count": len(names),
            "total_count": total,
        },
    }


def test_models_search_follows_pages_until_total(rsps, client):
    for page, names in [(1, ["a", "b"]), (2, ["c", "d"]), (3, ["e"])]:
        rsps.get(
            SEARCH,
            json=_page(names, page, 2, 5),
            match=[
                matchers.query_param_matcher(
                    {"task": "Text Generation", "per_page": "2", "page": str(page)}
                )
            ],
        )
    names = [m["name"] for m in client.models_search(task="Text Generation", per_page=2)]
    assert names == ["a", "b", "c", "d", "e"]
    assert len(rsps.calls) == 3


def test_models_search_stops_on_exact_total_without_extra_request(rsps, client):
    rsps.get(
        SEARCH,
        json=_page(["a", "b"], 1, 2, 4),
        match=[matchers.query_param_matcher({"page": "1", "per_page": "2"})],
    )
    rsps.get(
        SEARCH,
        json=_page(["c", "d"], 2, 2, 4),
        match=[matchers.query_param_matcher({"page": "2", "per_page": "2"})],
    )
    assert [m["id"] for m in client.models_search(per_page=2)] == ["a", "b", "c", "d"]
    assert len(rsps.calls) == 2


def test_models_search_stops_on_empty_page_without_result_info(rsps, client):
    def page(n, names):
        rsps.get(
            SEARCH,
            json=envelope([{"id": x} for x in names]),
            match=[matchers.query_param_matcher({"page": str(n)})],
        )

    page(1, ["a", "b"])
    page(2, ["c"])
    page(3, [])
    assert [m["id"] for m in client.models_search()] == ["a", "b", "c"]
    assert len(rsps.calls) == 3


def test_models_search_short_page_without_total_is_last(rsps, client):
    body = envelope([{"id": "a"}])
    body["result_info"] = {"page": 1, "per_page": 50, "count": 1}
    rsps.get(SEARCH, json=body)
    assert [m["id"] for m in client.models_search()] == ["a"]
    assert len(rsps.calls) == 1


def test_models_search_server_ignoring_page_does_not_loop(rsps, client):
    rsps.get(SEARCH, json=envelope([{"id": "a"}, {"id": "b"}]))
    assert [m["id"] for m in client.models_search()] == ["a", "b"]
    assert len(rsps.calls) == 2


def test_models_search_booleans_and_lazy(rsps, client):
    rsps.get(
        SEARCH,
        json=_page(["a"], 1, 50, 1),
        match=[
            matchers.query_param_matcher(
                {"hide_experimental": "true", "page": "1", "search": "llama"}
            )
        ],
    )
    iterator = client.models_search(hide_experimental=True, search="llama", author=None)
    assert len(rsps.calls) == 0  # nothing fetched until iterated
    assert [m["id"] for m in iterator] == ["a"]


def test_models_search_error(rsps, client):
    rsps.get(
        SEARCH,
        status=403,
        json=envelope(None, success=False, errors=[{"code": 10000, "message": "no"}]),
    )
    with pytest.raises(UpstreamError) as info:
        list(client.models_search())
    assert info.value.status_code == 403 and info.value.code == 10000


def test_model_schema(rsps, client):
    schema = {"input": {"type": "object"}, "output": {"type": "object"}}
    rsps.get(
        f"{API}/accounts/{ACCOUNT}/ai/models/schema",
        json=envelope(schema),
        match=[matchers.query_param_matcher({"model": LLAMA})],
    )
    assert client.model_schema("%40cf%2Fmeta%2Fllama-3.1-8b-instruct-fp8") == schema


def test_model_schema_non_json_is_protocol_error(rsps, client):
    rsps.get(f"{API}/accounts/{ACCOUNT}/ai/models/schema", body="<html>", content_type="text/html")
    with pytest.raises(UpstreamProtocolError, match="where JSON was expected"):
        client.model_schema(LLAMA)


def test_catalog_through_gateway_goes_to_cloudflare_api(rsps):
    from inference.client import WorkersAIClient

    gw = "https://gateway.ai.cloudflare.com/v1/acc123/g/workers-ai"
    client = WorkersAIClient(ACCOUNT, api_token="t", base_url=gw)
    rsps.get(SEARCH, json=_page(["a"], 1, 50, 1))
    assert [m["id"] for m in client.models_search()] == ["a"]
