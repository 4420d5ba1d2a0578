"""Property-based fuzzing of every endpoint with malformed bodies: random JSON,
wrong types, huge nesting, non-finite numbers, NUL characters, binary garbage,
bad multipart, bad charsets.  No answer may be a 500, and the server keeps
answering normal requests afterwards (in process and over real HTTP)."""

from __future__ import annotations

import json
import uuid

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from inference.models import RunMedia, RunStatus

from ..conftest import make_client
from .conftest import LLAMA, png_bytes

pytestmark = pytest.mark.django_db

FUZZ = settings(
    max_examples=120, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

MODELS = [LLAMA, "@cf/microsoft/resnet-50", "@cf/stabilityai/stable-diffusion-xl-base-1.0",
          "@cf/openai/whisper", "@cf/baai/bge-base-en-v1.5", "@cf/nope/unknown"]

scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=25,
)
run_bodies = st.fixed_dictionaries({}, optional={
    "model": st.sampled_from(MODELS) | json_values,
    "input": json_values | st.dictionaries(
        st.sampled_from(["prompt", "messages", "image", "audio", "text", "stream", "max_tokens", "width"]),
        json_values, max_size=4,
    ),
    "task": json_values,
    "metadata": json_values,
    "webhook": json_values | st.sampled_from(["http://169.254.169.254/", "file:///etc/passwd", "javascript:x"]),
    "webhook_events": json_values,
})


def deep(n: int, opener: str) -> str:
    closer = {"[": "]", "{": "}"}[opener]
    if opener == "{":
        return '{"a":' * n + "1" + closer * n
    return opener * n + closer * n


text_bodies = st.one_of(
    run_bodies.map(json.dumps),
    json_values.map(json.dumps),
    st.tuples(st.integers(1, 50_000), st.sampled_from("[{")).map(lambda t: deep(*t)),
    st.sampled_from(["NaN", "[Infinity]", '{"input": {"prompt": "\\u0000"}}', '{"model": 1e999}',
                     "", "{", '{"a":', "\ufeff{}", "null", '"just a string"', "[]", "1" * 5000]),
    st.text(max_size=300),
)
raw_bodies = st.one_of(text_bodies.map(lambda t: t.encode("utf-8", "surrogatepass")), st.binary(max_size=2000))
content_types = st.sampled_from([
    "application/json", "application/json; charset=utf-16", "application/json; charset=bogus",
    "multipart/form-data; boundary=xyz", "multipart/form-data", "multipart/form-data; boundary=",
    "application/x-www-form-urlencoded", "text/plain", "application/octet-stream", "",
    "image/png", "application/vnd.api+json", "garbage/\x7f",
])


def multipart(fields: dict[str, bytes], boundary: str = "BOUNDARY") -> bytes:
    parts = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{name}.bin"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n".encode() + value + b"\r\n"
        )
    return b"".join(parts) + f"--{boundary}--\r\n".encode()


multipart_bodies = st.builds(
    lambda model, text, image, junk, cut: (
        multipart({"model": model.encode(), "input": text.encode("utf-8", "surrogatepass"), "image": image, "audio": junk})[: cut or None]
    ),
    st.sampled_from(MODELS), text_bodies, st.sampled_from([b"", png_bytes(), b"\x89PNG\r\n\x1a\n" + b"\0" * 20]),
    st.binary(max_size=200), st.integers(0, 400),
)


@pytest.fixture
def fuzz_world(world):
    finished = world.make_run()
    media = __import__("inference.services.media", fromlist=["store_media"]).store_media(
        finished, RunMedia.Role.OUTPUT, "image", png_bytes(), "image/png"
    )
    queued = world.make_run(status=RunStatus.QUEUED)
    api = world.api["owner"]
    api.raise_request_exception = False  # a 500 must show as a status, not stop the example
    return {"api": api, "finished": finished, "queued": queued, "media": media}


def endpoints(fw) -> list[tuple[str, str]]:
    finished, queued, media = fw["finished"].pk, fw["queued"].pk, fw["media"].pk
    return [
        ("POST", "/api/runs/"), ("GET", "/api/runs/"), ("PUT", "/api/runs/"),
        ("GET", f"/api/runs/{finished}/"), ("PATCH", f"/api/runs/{finished}/"), ("DELETE", f"/api/runs/{finished}/"),
        ("POST", f"/api/runs/{queued}/cancel/"), ("POST", f"/api/runs/{finished}/cancel/"),
        ("GET", f"/api/runs/{finished}/events/"), ("POST", f"/api/runs/{finished}/events/"),
        ("GET", f"/api/media/{media}/"), ("POST", f"/api/media/{media}/"),
        ("GET", f"/api/media/{uuid.uuid4()}/"), ("GET", "/api/models/"), ("POST", "/api/models/"),
        ("GET", "/api/schema/"), ("POST", "/api/schema/"),
    ]


def assert_no_500(response, method, path, body=b""):
    assert response.status_code < 500, (method, path, body[:200], response.content[:500])


def assert_still_up(api):
    assert api.get("/api/models/").status_code == 200
    response = api.post("/api/runs/", {"model": LLAMA, "input": {"prompt": "still up?"}}, format="json")
    assert response.status_code == 202, response.content


@FUZZ
@given(data=st.data())
def test_every_endpoint_with_garbage_bodies(fuzz_world, data):
    api = fuzz_world["api"]
    method, path = data.draw(st.sampled_from(endpoints(fuzz_world)), label="endpoint")
    body = data.draw(raw_bodies | multipart_bodies, label="body")
    content_type = data.draw(content_types, label="content type")
    response = api.generic(method, path, body, content_type=content_type)
    assert_no_500(response, method, path, body)


@FUZZ
@given(body=run_bodies)
def test_create_with_wrong_types_answers_400_naming_a_field(fuzz_world, body):
    api = fuzz_world["api"]
    response = api.post("/api/runs/", body, format="json")
    assert_no_500(response, "POST", "/api/runs/", json.dumps(body).encode())
    if response.status_code == 400:
        payload = response.json()
        assert isinstance(payload, dict) and payload  # names at least one field (or detail)


@FUZZ
@given(
    params=st.dictionaries(
        st.sampled_from(["status", "model", "task", "created_after", "created_before", "cursor", "page_size", "x"]),
        st.text(max_size=40), max_size=4,
    )
)
def test_list_with_garbage_query_strings(fuzz_world, params):
    response = fuzz_world["api"].get("/api/runs/", params)
    assert_no_500(response, "GET", f"/api/runs/?{params}")
    assert fuzz_world["api"].get("/api/models/", {"task": params.get("x", "")}).status_code < 500


@FUZZ
@given(suffix=st.text(max_size=60))
def test_garbage_paths_and_headers(fuzz_world, suffix):
    api = fuzz_world["api"]
    for path in (f"/api/runs/{suffix}/", f"/api/media/{suffix}/", f"/api/runs/{suffix}/cancel/"):
        response = api.get(path, HTTP_PREFER=f"wait={suffix}", HTTP_IDEMPOTENCY_KEY=suffix)
        assert_no_500(response, "GET", path)
    response = api.post(
        "/api/runs/", {"model": LLAMA, "input": {"prompt": "x"}}, format="json",
        HTTP_PREFER=f"wait={suffix}"[:30] if suffix.isascii() else "wait=0", HTTP_IDEMPOTENCY_KEY=suffix.encode("utf-8", "replace").decode("latin-1")[:100],
    )
    assert_no_500(response, "POST", "/api/runs/ headers")
    anonymous = APIClient(raise_request_exception=False)
    anonymous.credentials(HTTP_AUTHORIZATION=f"Bearer {suffix}")
    assert anonymous.get("/api/runs/").status_code in (401, 403)


def test_server_still_up_after_fuzzing(fuzz_world):
    # Each fuzz test above runs in its own test; this checks one more time, and
    # with a fresh caller, that nothing got wedged (connections, caches).
    assert_still_up(fuzz_world["api"])


@pytest.mark.django_db(transaction=True)
@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(body=st.binary(max_size=3000) | text_bodies.map(lambda t: t.encode("utf-8", "surrogatepass")),
       content_type=content_types)
def test_real_http_server_survives_garbage(live_server, django_user_model, body, content_type):
    """Over a real socket: the live server answers every garbage body below 500
    and still serves normal requests afterwards."""
    user = django_user_model.objects.get_or_create(username="fuzzer")[0]
    headers = {"Authorization": f"Bearer {make_client(user).raw_key}"}
    url = f"{live_server.url}/api/runs/"
    response = requests.post(url, data=body, headers={**headers, "Content-Type": content_type}, timeout=30)
    assert response.status_code < 500, (body[:200], response.text[:300])
    assert requests.get(f"{live_server.url}/api/models/", headers=headers, timeout=30).status_code == 200
