"""The OpenAPI document: per-task request bodies, and schemathesis fuzzing the
live server with an API key (no 500s; responses match the document)."""

from __future__ import annotations

import json

import jsonschema
import pytest
import schemathesis
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from inference import catalog
from inference.models import Run
from inference.tasks import input_schema


def openapi_document() -> dict:
    doc = SchemaGenerator().get_schema(request=None, public=True)
    return json.loads(json.dumps(doc, default=str))  # Decimal, lazy strings → JSON


@pytest.fixture(scope="module")
def document() -> dict:
    return openapi_document()


def submit_body(document: dict) -> dict:
    return document["paths"]["/api/runs/"]["post"]["requestBody"]["content"]


class TestDocument:
    def test_served_at_api_schema_and_docs(self, api):
        response = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
        assert response.status_code == 200
        assert json.loads(response.content)["paths"]["/api/runs/"]["post"]
        docs = api.get("/api/docs/")
        assert docs.status_code == 200 and b"swagger-ui" in docs.content

    def test_submit_is_one_of_per_task_with_the_task_input_schema(self, document):
        one_of = submit_body(document)["application/json"]["schema"]["oneOf"]
        assert [branch["title"] for branch in one_of] == list(catalog.TASKS)
        for branch in one_of:
            assert branch["properties"]["input"] == input_schema(branch["title"])
            assert branch["properties"]["task"]["enum"] == [branch["title"]]
        assert "multipart/form-data" in submit_body(document)

    @pytest.mark.parametrize(
        "body, task",
        [
            ({"model": "@cf/meta/llama-3.1-8b-instruct-fp8", "input": {"prompt": "hi"}}, "text-generation"),
            ({"model": "@cf/stabilityai/stable-diffusion-xl-base-1.0", "input": {"prompt": "x"}}, "text-to-image"),
            ({"model": "@cf/acme/custom", "task": "translation",
              "input": {"text": "hi", "target_lang": "fr"}}, "translation"),
            ({"model": "@cf/meta/llama-3.1-8b-instruct-fp8", "task": "text-generation",
              "input": {"messages": [{"role": "user", "content": "hi"}]}}, "text-generation"),
        ],
    )
    def test_a_valid_submission_matches_exactly_one_branch(self, document, body, task):
        one_of = submit_body(document)["application/json"]["schema"]["oneOf"]
        matching = [b["title"] for b in one_of if jsonschema.Draft202012Validator(b).is_valid(body)]
        assert matching == [task]

    def test_invalid_submissions_match_no_branch(self, document):
        schema = submit_body(document)["application/json"]["schema"]
        validator = jsonschema.Draft202012Validator(schema)
        for body in (
            {"model": "@cf/meta/llama-3.1-8b-instruct-fp8", "input": {"prompt": ""}},  # minLength
            {"model": "@cf/acme/custom", "input": {"prompt": "hi"}},  # unknown model, no task
            {"model": "@cf/meta/llama-3.1-8b-instruct-fp8", "input": {"prompt": "x", "temperature": 9}},
        ):
            assert not validator.is_valid(body), body

    def test_errors_and_security_are_described(self, document):
        responses = document["paths"]["/api/runs/"]["post"]["responses"]
        assert {"201", "202", "400", "401", "402", "413", "422", "429"} <= set(responses)
        detail = document["paths"]["/api/runs/{id}/"]["get"]["responses"]
        assert {"200", "401", "404"} <= set(detail)
        assert document["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
        params = {p["name"] for p in document["paths"]["/api/runs/"]["post"]["parameters"]}
        assert {"Idempotency-Key", "Prefer"} <= params


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# Bounded: a few dozen cases per operation and mode keeps this under a minute or two.
EXAMPLES = {GenerationMode.POSITIVE: 25, GenerationMode.NEGATIVE: 15}


@pytest.mark.slow
def test_live_server_conforms_to_its_schema(live_server, transactional_db, api, eager):
    """Drives schemathesis through its Python API (its pytest plugin does not
    support this pytest yet): every operation, valid and invalid requests."""
    schema = schemathesis.openapi.from_dict(openapi_document())
    headers = {"Authorization": f"Bearer {api.raw_key}"}
    exercised = []
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode, examples in EXAMPLES.items():

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=examples,
                deadline=None,
                derandomize=True,  # the same cases every run: failures reproduce
                suppress_health_check=list(HealthCheck),
                database=None,
            )
            def check(case):
                response = case.call(base_url=live_server.url, headers=headers, timeout=30)
                case.validate_response(response, checks=CHECKS)

            check()
            exercised.append(f"{operation.method.upper()} {operation.path} {mode.value}")
    paths = {e.rsplit(" ", 1)[0] for e in exercised}
    assert {"POST /api/runs/", "GET /api/runs/{id}/", "GET /api/models/"} <= paths, exercised


@pytest.mark.django_db
class TestFoundByFuzzing:
    """Regressions for what schemathesis found: each was a 500."""

    def test_nul_in_input_or_metadata_is_a_400_naming_the_field(self, api, emulator):
        for body, field in (
            ({"input": {"prompt": "a\x00b"}}, "input.prompt"),
            ({"input": {"prompt": "ok"}, "metadata": {"k": ["x", "\x00"]}}, "metadata.k[1]"),
            ({"input": {"prompt": "ok", "x\x00": 1}}, "input"),
        ):
            response = api.post("/api/runs/", {"model": "@cf/meta/llama-3.1-8b-instruct-fp8", **body},
                                format="json")
            assert response.status_code == 400, response.content
            assert field in response.json(), response.json()
        assert not Run.objects.exists() and emulator.requests == []

    def test_timezone_offsets_postgres_refuses_are_normalised(self, api):
        response = api.get("/api/runs/", {"created_after": "2026-01-01T00:00:00+20:05"})
        assert response.status_code == 200
        response = api.get("/api/runs/", {"created_after": "0001-01-01T00:00:00+20:05"})
        assert response.status_code == 400 and "created_after" in response.json()

    def test_event_stream_errors_are_json_not_406(self, api):
        response = api.get("/api/runs/00000000-0000-0000-0000-000000000000/events/",
                           HTTP_ACCEPT="text/event-stream")
        assert response.status_code == 404 and response["Content-Type"] == "application/json"
        response = api.get("/api/media/not-a-uuid/")
        assert response.status_code == 404 and response["Content-Type"] == "application/json"
