"""Every task answers the shape of the reference page's return types, deterministically."""

from __future__ import annotations

import base64
import io
import math

import pytest
from PIL import Image

from inference.emulator.outputs import mp3_bytes

from .conftest import BGE_BASE, DISTILBERT, LLAMA, WHISPER, WHISPER_TURBO


def _png(width: int = 32, height: int = 24) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (10, 20, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def _ok(response) -> object:
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"result", "success", "errors", "messages"}
    assert body["success"] is True and body["errors"] == [] and body["messages"] == []
    return body["result"]


class TestTextGeneration:
    def test_messages_shape_and_usage(self, run):
        result = _ok(run(LLAMA, {"messages": [
            {"role": "system", "content": "You are terse"},
            {"role": "user", "content": [{"type": "text", "text": "Say hello to the world"}]},
        ]}))
        assert set(result) == {"response", "tool_calls", "usage"}
        assert isinstance(result["response"], str) and result["response"]
        assert result["tool_calls"] == []
        usage = result["usage"]
        assert usage["prompt_tokens"] == 8  # "You are terse" + "Say hello to the world"
        assert usage["completion_tokens"] == len(result["response"].split())
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]

    def test_prompt_form(self, run):
        result = _ok(run(LLAMA, {"prompt": "one two three"}))
        assert result["usage"]["prompt_tokens"] == 3

    @pytest.mark.parametrize("max_tokens", [1, 3, 5])
    def test_respects_max_tokens(self, run, max_tokens):
        result = _ok(run(LLAMA, {"prompt": "tell me a long story", "max_tokens": max_tokens}))
        assert 1 <= len(result["response"].split()) <= max_tokens
        assert result["usage"]["completion_tokens"] <= max_tokens

    def test_deterministic_per_input(self, run):
        first = _ok(run(LLAMA, {"prompt": "same"}))
        again = _ok(run(LLAMA, {"prompt": "same"}))
        other = _ok(run(LLAMA, {"prompt": "different"}))
        assert first == again
        assert first["response"] != other["response"]

    def test_missing_prompt_and_messages_is_schema_error(self, run):
        response = run(LLAMA, {"max_tokens": 5})
        assert response.status_code == 400
        assert response.json()["errors"][0]["code"] == 5006


class TestEmbeddings:
    @pytest.mark.parametrize(("model", "dim"), [
        ("@cf/baai/bge-small-en-v1.5", 384), (BGE_BASE, 768),
        ("@cf/baai/bge-large-en-v1.5", 1024), ("@cf/baai/bge-m3", 1024),
    ])
    def test_dimensions(self, run, model, dim):
        result = _ok(run(model, {"text": ["alpha", "beta", "gamma"]}))
        assert result["shape"] == [3, dim]
        assert len(result["data"]) == 3 and all(len(v) == dim for v in result["data"])
        # bge vectors are normalized.
        assert math.isclose(sum(x * x for x in result["data"][0]), 1.0, rel_tol=1e-3)

    def test_string_input_and_same_text_same_vector(self, run):
        single = _ok(run(BGE_BASE, {"text": "alpha"}))
        batch = _ok(run(BGE_BASE, {"text": ["alpha", "beta"]}))
        assert single["shape"] == [1, 768]
        assert single["data"][0] == batch["data"][0] != batch["data"][1]


def test_text_classification(run):
    result = _ok(run(DISTILBERT, {"text": "I love this"}))
    assert {r["label"] for r in result} == {"POSITIVE", "NEGATIVE"}
    assert math.isclose(sum(r["score"] for r in result), 1.0, abs_tol=1e-5)
    assert result[0]["score"] >= result[1]["score"]


class TestSpeechRecognition:
    def test_whisper_byte_array(self, run):
        audio = list(mp3_bytes(2.0))  # ~2 s of audio: about five words at 0.4 s/word
        result = _ok(run(WHISPER, {"audio": audio}))
        assert {"text", "word_count", "words", "vtt"} <= set(result)
        assert "segments" not in result
        assert result["word_count"] == len(result["words"]) == len(result["text"].split()) == 5
        assert all(set(w) == {"word", "start", "end"} and w["end"] > w["start"] for w in result["words"])
        assert result["words"][-1]["end"] == pytest.approx(2.0, abs=0.05)
        assert result["vtt"].startswith("WEBVTT\n\n00:00:00.000 --> ")

    def test_turbo_base64_has_segments_and_info(self, run):
        audio = base64.b64encode(mp3_bytes(4.0)).decode()
        result = _ok(run(WHISPER_TURBO, {"audio": audio}))
        assert {"text", "word_count", "words", "vtt", "segments", "transcription_info"} <= set(result)
        info = result["transcription_info"]
        assert info["language"] == "en" and info["duration"] == pytest.approx(4.0, abs=0.05)
        assert " ".join(s["text"] for s in result["segments"]) == result["text"]

    def test_invalid_base64_is_5004(self, run):
        response = run(WHISPER_TURBO, {"audio": "not base64!!"})
        assert response.status_code == 400
        assert response.json()["errors"][0]["code"] == 5004

    def test_raw_binary_body(self, emulator):
        import requests

        from .conftest import ACCOUNT, AUTH

        response = requests.post(emulator.run_url(ACCOUNT, WHISPER), data=mp3_bytes(1.2),
                                 headers={**AUTH, "Content-Type": "application/octet-stream"}, timeout=10)
        assert _ok(response)["word_count"] == 3


def test_image_classification(run):
    result = _ok(run("@cf/microsoft/resnet-50", {"image": list(_png())}))
    assert len(result) == 5
    assert all(set(r) == {"label", "score"} and 0 < r["score"] < 1 for r in result)
    assert sum(r["score"] for r in result) <= 1.0
    assert result == sorted(result, key=lambda r: r["score"], reverse=True)


def test_object_detection_boxes_inside_image(run):
    result = _ok(run("@cf/facebook/detr-resnet-50", {"image": list(_png(40, 30))}))
    assert 1 <= len(result) <= 3
    for detection in result:
        assert set(detection) == {"label", "score", "box"}
        box = detection["box"]
        assert set(box) == {"xmin", "ymin", "xmax", "ymax"}
        assert 0 <= box["xmin"] <= box["xmax"] <= 40 and 0 <= box["ymin"] <= box["ymax"] <= 30


def test_translation_keeps_word_count(run):
    result = _ok(run("@cf/meta/m2m100-1.2b", {"text": "hello my good friend", "target_lang": "es"}))
    assert set(result) == {"translated_text"}
    assert len(result["translated_text"].split()) == 4
    french = _ok(run("@cf/meta/m2m100-1.2b", {"text": "hello my good friend", "target_lang": "fr"}))
    assert french["translated_text"] != result["translated_text"]


def test_translation_requires_target_lang(run):
    response = run("@cf/meta/m2m100-1.2b", {"text": "hello"})
    assert response.status_code == 400 and response.json()["errors"][0]["code"] == 5006


def test_summarization_respects_max_length(run):
    text = " ".join(f"word{i}" for i in range(100))
    result = _ok(run("@cf/test/summarizer", {"input_text": text, "max_length": 10}))
    assert set(result) == {"summary"}
    assert result["summary"].split() == [f"word{i}" for i in range(10)]


def test_image_to_text_array_and_base64_forms(run):
    from_array = _ok(run("@cf/llava-hf/llava-1.5-7b-hf", {"image": list(_png()), "prompt": "What?"}))
    from_b64 = _ok(run("@cf/llava-hf/llava-1.5-7b-hf",
                       {"image": base64.b64encode(_png()).decode(), "prompt": "What?", "max_tokens": 4}))
    assert set(from_array) == {"description"} and from_array["description"]
    assert len(from_b64["description"].split()) <= 4


def test_image_text_to_text(run):
    result = _ok(run("@cf/test/image-text-to-text", {
        "image": base64.b64encode(_png()).decode(),
        "messages": [{"role": "user", "content": "Describe the image"}],
    }))
    assert set(result) == {"description"} and isinstance(result["description"], str)


def test_multimodal_embeddings(run):
    result = _ok(run("@cf/test/multimodal-embeddings",
                     {"text": ["a cat", "a dog"], "image": base64.b64encode(_png()).decode()}))
    assert result["shape"] == [3, 768]
    assert len(result["data"]) == 3 and all(len(v) == 768 for v in result["data"])
