"""Model search and schema endpoints built from the catalog (Cloudflare's records)."""

from __future__ import annotations

import requests

from inference.catalog import MODELS, current_models, get_model

from .conftest import ACCOUNT, AUTH, FLUX, LLAMA


def _search(emulator, **params) -> dict:
    response = requests.get(f"{emulator.base_url}/accounts/{ACCOUNT}/ai/models/search",
                            params=params, headers=AUTH, timeout=10)
    assert response.status_code == 200
    return response.json()


def test_search_lists_catalog_and_extra_models(emulator):
    body = _search(emulator, per_page=1000)
    assert body["success"] is True
    names = {item["name"] for item in body["result"]}
    assert {m.name for m in current_models()} <= names
    # Retired models are no longer listed, as on Cloudflare.
    assert not {m.name for m in MODELS if m.is_retired()} & names
    assert "@cf/microsoft/resnet-50" in names  # registered at runtime by the fixture
    info = body["result_info"]
    assert info == {"page": 1, "per_page": 1000, "count": len(names), "total_count": len(names)}
    item = next(i for i in body["result"] if i["name"] == LLAMA)
    assert set(item) >= {"id", "name", "description", "task", "properties"}
    assert item["task"]["name"] == "Text Generation" and item["task"]["id"]
    price = next(p for p in item["properties"] if p["property_id"] == "price")
    assert {"unit": "per M input tokens", "price": 0.152, "currency": "USD"} in price["value"]


def test_search_filters_and_pagination(emulator):
    by_task = _search(emulator, task="text-to-image", per_page=100)["result"]
    assert by_task and all(i["task"]["name"] == "Text-to-Image" for i in by_task)
    assert [i["name"] for i in _search(emulator, author="deepgram")["result"]] == [
        "@cf/deepgram/aura-1", "@cf/deepgram/aura-2-en", "@cf/deepgram/aura-2-es",
        "@cf/deepgram/flux", "@cf/deepgram/nova-3"]
    assert FLUX in [i["name"] for i in _search(emulator, search="flux-1")["result"]]
    visible = {i["name"] for i in _search(emulator, hide_experimental="true", per_page=1000)["result"]}
    assert "@cf/bytedance/stable-diffusion-xl-lightning" not in visible  # beta in its record
    total = _search(emulator, per_page=1000)["result_info"]["total_count"]
    page2 = _search(emulator, page=2, per_page=3)
    assert page2["result_info"] == {"page": 2, "per_page": 3, "count": 3, "total_count": total}


def test_schema(emulator):
    response = requests.get(f"{emulator.base_url}/accounts/{ACCOUNT}/ai/models/schema",
                            params={"model": LLAMA}, headers=AUTH, timeout=10)
    schema = response.json()["result"]
    assert set(schema) == {"input", "output"}
    # The record's own schemas, unchanged.
    assert schema == {"input": get_model(LLAMA).input_schema, "output": get_model(LLAMA).output_schema}
    flux = requests.get(f"{emulator.base_url}/accounts/{ACCOUNT}/ai/models/schema",
                        params={"model": FLUX}, headers=AUTH, timeout=10).json()["result"]
    assert flux["input"]["required"] == ["prompt"] and "image" in flux["output"]["properties"]
    missing = requests.get(f"{emulator.base_url}/accounts/{ACCOUNT}/ai/models/schema",
                           params={"model": "@cf/x/none"}, headers=AUTH, timeout=10)
    assert missing.status_code == 400 and missing.json()["errors"][0]["code"] == 5007


def test_catalog_endpoints_need_auth(emulator):
    response = requests.get(f"{emulator.base_url}/accounts/{ACCOUNT}/ai/models/search", timeout=10)
    assert response.status_code == 401 and response.json()["errors"][0]["code"] == 10000
