"""The catalog in the database: ``inference_sync_models`` against the emulator's
``/ai/models/search``, the resolver, and ``GET /api/models/``."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from inference import catalog
from inference.catalog_db import resolve_model, task_slug
from inference.models import CatalogModel, Run
from inference.services.catalog_sync import sync_models

from .conftest import wait_for_status

NEW_LLM = "@cf/cfai-test/new-llm"
NEW_PAINTER = "@cf/cfai-test/new-painter"
NEW_ASR = "@cf/cfai-test/new-asr"
EXTRA = {NEW_LLM: "text-generation", NEW_PAINTER: "text-to-image", NEW_ASR: "automatic-speech-recognition"}


@pytest.fixture
def upstream_models(emulator):
    for name, task in EXTRA.items():
        emulator.register_model(name, task)
    return EXTRA


def sync(**options) -> str:
    out = StringIO()
    call_command("inference_sync_models", stdout=out, stderr=StringIO(), **options)
    return out.getvalue()


@pytest.mark.embedded
@pytest.mark.django_db
class TestSync:
    def test_every_page_is_read_and_tasks_mapped(self, upstream_models):
        # Cloudflare lists current models only (retired ones are the snapshot's).
        total = len(catalog.current_models()) + len(EXTRA)
        # 7 per page: the last page short.
        output = sync(per_page=7)
        assert f"{total} models listed: {total} new" in output
        assert CatalogModel.objects.count() == total
        for spec in catalog.current_models():
            row = CatalogModel.objects.get(name=spec.name)
            assert row.task == spec.task  # "Text To Image" → text-to-image, …
            assert row.source == CatalogModel.Source.SEED
            assert row.output_kind == spec.output_kind
            assert row.beta == spec.beta
        for name, task in EXTRA.items():
            row = CatalogModel.objects.get(name=name)
            assert (row.task, row.source) == (task, CatalogModel.Source.SYNC)
        assert CatalogModel.objects.get(name=NEW_PAINTER).output_kind == "png"
        priced = CatalogModel.objects.get(name="@cf/meta/llama-3.1-8b-instruct-fp8")
        assert [(p["unit"], p["usd"]) for p in priced.prices] == [("input_tokens", "0.152"), ("output_tokens", "0.287")]
        # The whole record is stored: the schemas from /ai/models/schema too.
        assert priced.input_schema == catalog.get_model(priced.name).input_schema

    @pytest.mark.parametrize("per_page", [1000, 5])
    def test_rerun_is_idempotent(self, upstream_models, per_page):
        sync(per_page=per_page)
        first = {r.name: (r.task, r.output_kind, r.properties, r.beta) for r in CatalogModel.objects.all()}
        stamps = dict(CatalogModel.objects.values_list("name", "synced_at"))
        total = len(first)
        output = sync(per_page=per_page)
        assert f"{total} models listed: 0 new, 0 updated, {total} unchanged" in output
        again = {r.name: (r.task, r.output_kind, r.properties, r.beta) for r in CatalogModel.objects.all()}
        assert again == first
        later = dict(CatalogModel.objects.values_list("name", "synced_at"))
        assert all(later[name] >= stamps[name] for name in stamps)

    def test_task_filter(self, upstream_models):
        sync(task="automatic-speech-recognition")
        names = set(CatalogModel.objects.values_list("name", flat=True))
        expected = {m.name for m in catalog.models_for_task("automatic-speech-recognition")} | {NEW_ASR}
        assert names == expected

    def test_upstream_refusal_is_a_command_error(self, settings):
        settings.INFERENCE = {**settings.INFERENCE, "API_TOKEN": "wrong-token"}
        with pytest.raises(CommandError, match="Model search failed"):
            sync()
        assert not CatalogModel.objects.exists()

    def test_unknown_tasks_are_skipped_and_changes_counted(self):
        items = [
            {"name": "@cf/x/pipe", "task": {"name": "Dumb Pipe"}, "properties": []},
            {"name": "@cf/x/tts", "task": {"name": "Text-to-Speech"},
             "properties": [{"property_id": "beta", "value": "true"}]},
        ]
        report = sync_models(items)
        assert (report.created, report.skipped) == (1, ["@cf/x/pipe (Dumb Pipe)"])
        row = CatalogModel.objects.get()
        assert (row.task, row.beta, row.output_kind) == ("text-to-speech", True, "base64_audio")
        items[1]["properties"] = []
        report = sync_models(items)
        assert (report.created, report.updated) == (0, 1)
        assert CatalogModel.objects.get().beta is False


@pytest.mark.parametrize(
    ("name", "slug"),
    [("Text Generation", "text-generation"), ("Text-to-Image", "text-to-image"),
     ("Automatic Speech Recognition", "automatic-speech-recognition"),
     ("Image-Text-to-Text", "image-text-to-text"), ("Dumb Pipe", None), ("", None)],
)
def test_task_slug(name, slug):
    assert task_slug(name) == slug


@pytest.mark.embedded
@pytest.mark.django_db
class TestResolver:
    def test_seed_wins_and_needs_no_database_row(self):
        spec = resolve_model("@cf/meta/llama-3.1-8b-instruct-fp8")
        assert spec is catalog.get_model("@cf/meta/llama-3.1-8b-instruct-fp8")

    def test_synced_model_resolves_after_sync(self, upstream_models):
        assert resolve_model(NEW_LLM) is None
        sync()
        spec = resolve_model(NEW_LLM)
        assert (spec.task, spec.streams, spec.cost_known) == ("text-generation", True, False)
        # The pure catalog never looks at the database.
        assert catalog.get_model(NEW_LLM) is None

    def test_unknown_model_without_task_is_400_until_synced(self, api, upstream_models, emulator):
        body = {"model": NEW_LLM, "input": {"prompt": "hi"}}
        response = api.post("/api/runs/", body, format="json")
        assert response.status_code == 400 and "task" in response.json()
        sync()
        # A synced model with a conflicting task is refused, naming the field.
        response = api.post("/api/runs/", {**body, "task": "translation"}, format="json")
        assert response.status_code == 400 and "task" in response.json()
        # Its task's schema applies.
        response = api.post("/api/runs/", {"model": NEW_LLM, "input": {"prompt": ""}}, format="json")
        assert response.status_code == 400 and "input.prompt" in response.json()
        assert not Run.objects.exists() and emulator.requests == []


@pytest.mark.worker
def test_synced_models_run_end_to_end_without_task(api, worker, emulator, upstream_models):
    sync()
    llm = api.post("/api/runs/", {"model": NEW_LLM, "input": {"prompt": "hello"}}, format="json")
    painter = api.post("/api/runs/", {"model": NEW_PAINTER, "input": {"prompt": "a boat"}}, format="json")
    assert llm.status_code == 202 and painter.status_code == 202, (llm.json(), painter.json())
    run = wait_for_status(llm.json()["id"])
    assert run.status == "succeeded" and run.task == "text-generation", run.error_message
    assert isinstance(run.result["response"], str) and run.result["response"]
    run = wait_for_status(painter.json()["id"])
    assert run.status == "succeeded" and run.task == "text-to-image", run.error_message
    (media,) = run.media.all()
    assert media.content_type == "image/png" and run.result == {"image": f"/api/media/{media.pk}/"}


@pytest.mark.embedded
@pytest.mark.django_db
class TestModelsEndpoint:
    def test_lists_the_current_snapshot_without_a_sync(self, api):
        body = api.get("/api/models/").json()
        assert body["count"] == len(catalog.current_models()) == len(body["results"]) >= 70
        llama = next(m for m in body["results"] if m["name"] == "@cf/meta/llama-3.1-8b-instruct-fp8")
        assert llama["task"] == "text-generation" and llama["output_kind"] == "json"
        assert llama["pricing_units"] == ["input_tokens", "output_tokens"]
        assert llama["source"] == "snapshot" and llama["price_known"] is True
        assert llama["input_schema"] == catalog.get_model(llama["name"]).input_schema
        assert llama["lifecycle"] == {"status": "current", "retires_on": None, "replacement": None}
        assert "@cf/meta/llama-3.1-8b-instruct" not in {m["name"] for m in body["results"]}
        retired = api.get("/api/models/", {"include_retired": "true"}).json()
        assert retired["count"] == len(catalog.MODELS)
        old = next(m for m in retired["results"] if m["name"] == "@cf/meta/llama-3.1-8b-instruct")
        assert old["lifecycle"] == {"status": "retired", "retires_on": "2026-05-30",
                                    "replacement": "@cf/zai-org/glm-4.7-flash"}
        unpriced = next(m for m in body["results"] if m["name"] == "@cf/meta/llama-3.1-8b-instruct-fast")
        assert unpriced["price_known"] is False and unpriced["prices"] == []
        flux = next(m for m in body["results"] if m["name"] == "@cf/black-forest-labs/flux-1-schnell")
        assert flux["output_kind"] == "base64_image" and flux["pricing_units"] == ["tile", "step"]

    def test_lists_seed_and_synced_with_a_task_filter(self, api, upstream_models):
        sync()
        body = api.get("/api/models/").json()
        assert body["count"] == len(catalog.current_models()) + len(EXTRA)
        names = [m["name"] for m in body["results"]]
        assert names == sorted(names) and len(set(names)) == len(names)
        body = api.get("/api/models/", {"task": "text-to-image"}).json()
        seed = {m.name for m in catalog.models_for_task("text-to-image")}
        assert {m["name"] for m in body["results"]} == seed | {NEW_PAINTER}
        painter = next(m for m in body["results"] if m["name"] == NEW_PAINTER)
        assert painter["source"] == "sync" and painter["task"] == "text-to-image"
        assert painter["output_kind"] == "png" and painter["prices"] == []

    def test_synced_price_units_are_mapped(self, api):
        sync_models([{
            "name": "@cf/x/priced", "task": {"name": "Text Generation"},
            "properties": [{"property_id": "price", "value": [
                {"unit": "per M input tokens", "price": 0.1, "currency": "USD"},
                {"unit": "per M output tokens", "price": 0.2, "currency": "USD"}]}],
        }])
        body = api.get("/api/models/", {"task": "text-generation"}).json()
        priced = next(m for m in body["results"] if m["name"] == "@cf/x/priced")
        assert priced["pricing_units"] == ["input_tokens", "output_tokens"]

    def test_unknown_task_filter_is_400(self, api):
        response = api.get("/api/models/", {"task": "painting"})
        assert response.status_code == 400 and "task" in response.json()
