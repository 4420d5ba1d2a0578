"""Every input shape of the run endpoint through the whole pipeline:
``POST /api/runs/`` → database → real Celery worker → emulator → stored result and media.

The payloads come from ``tests/tasks/cases.py`` (one valid case per shape, every
invalid case), so the API is checked against the same tables as the pure
validation code.
"""

from __future__ import annotations

import base64
import io
import json
import re
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from inference.models import Run, RunMedia

from .conftest import wait_for_status
from .tasks.cases import (
    ALL_SHAPES,
    INPAINT,
    INVALID_CASES,
    PNG,
    PNG_B64,
    PNG_DATA_URI,
    RESNET,
    TURBO,
    VALID_CASES,
    WAV,
    WHISPER,
)

# The two tasks without a public model run under a name only the emulator knows.
SHAPE_ONLY_MODELS = {
    "image-text-to-text": "@cf/cfai-test/vision-chat",
    "multimodal-embeddings": "@cf/cfai-test/multimodal-embed",
}

# One valid case per shape: the first of the table for each, in ALL_SHAPES order.
_FIRST = {}
for _case in VALID_CASES:
    _FIRST.setdefault(_case[0], _case)
# Text-to-speech runs through a catalog model: its output schema says the audio is
# base64 to be stored as media (a model outside the catalog has no output schema).
# Voice activity detection has no shape-only emulator output yet (#12: the emulator
# building outputs from every output schema), so it is covered by the shape tables.
_E2E_MODELS = {"TextToSpeech": "@cf/myshell-ai/melotts"}
E2E_CASES = [
    (*_FIRST[shape][:2], _E2E_MODELS.get(shape, _FIRST[shape][2]), *_FIRST[shape][3:])
    for shape in ALL_SHAPES if shape != "VoiceActivityDetection"
]

# Media fields of each e2e case and how the emulator must have received them
# ("uint8": a JSON array of bytes; "base64": a string).
EXPECTED_MEDIA: dict[str, dict[str, str]] = {
    "TextToImage": {"image": "uint8"},
    "AutomaticSpeechRecognition": {"audio": "uint8"},
    "ImageClassification": {"image": "uint8"},
    "ObjectDetection": {"image": "uint8"},
    "ImageToText": {"image": "uint8"},
    # uform takes the byte-array variant too (the catalog's default image encoding);
    # the caller's base64 is converted.
    "ImageToTextBase64": {"image": "uint8"},
    "ImageTextToText": {"image": "base64"},
    "MultimodalEmbeddings": {"image": "base64"},
}

MEDIA_URL = re.compile(r"^/api/media/[0-9a-f-]{36}/$")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _labels(result: Any) -> None:
    assert isinstance(result, list) and result
    for item in result:
        assert isinstance(item["label"], str) and _is_number(item["score"])


def _detections(result: Any) -> None:
    _labels(result)
    for item in result:
        assert set(item["box"]) == {"xmin", "ymin", "xmax", "ymax"}
        assert all(_is_number(v) for v in item["box"].values())


def _vectors(rows: int, width: int):
    def check(result: Any) -> None:
        assert result["shape"] == [rows, width]
        assert len(result["data"]) == rows
        assert all(len(row) == width and all(_is_number(v) for v in row) for row in result["data"])

    return check


def _string_key(key: str):
    def check(result: Any) -> None:
        assert isinstance(result[key], str) and result[key]

    return check


def _generation(result: Any) -> None:
    assert isinstance(result["response"], str) and result["response"]
    usage = result["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def _transcript(result: Any) -> None:
    assert isinstance(result["text"], str) and result["text"]
    assert result["word_count"] == len(result["words"])
    assert result["vtt"].startswith("WEBVTT")


def _media_ref(key: str):
    def check(result: Any) -> None:
        assert MEDIA_URL.match(result[key]), result

    return check


# The "Returns" of the reference page, per shape.
RESULT_CHECKS = {
    "TextClassification": _labels,
    "TextToImage": _media_ref("image"),
    "TextToSpeech": _media_ref("audio"),
    "TextEmbeddings": _vectors(2, 768),
    "AutomaticSpeechRecognition": _transcript,
    "ImageClassification": _labels,
    "ObjectDetection": _detections,
    "Prompt": _generation,
    "Messages": _generation,
    "Translation": _string_key("translated_text"),
    "Summarization": _string_key("summary"),
    "ImageToText": _string_key("description"),
    "ImageToTextBase64": _string_key("description"),
    "ImageTextToText": _string_key("description"),
    "MultimodalEmbeddings": _vectors(2, 768),
}
OUTPUT_MEDIA = {"TextToImage": ("image", "image/png"), "TextToSpeech": ("audio", "audio/mpeg")}


def _submit(api, model: str, payload: Any, task: str | None = None):
    body: dict[str, Any] = {"model": model, "input": payload}
    if task:
        body["task"] = task
    return api.post("/api/runs/", body, format="json")


def _model_for(task: str, model: str | None, emulator) -> tuple[str, str | None]:
    """(model name, task to send): shape-only tasks go through ``task``."""
    if model is not None:
        return model, None
    # A model outside the catalog, validated by the run endpoint's shape of its task.
    name = SHAPE_ONLY_MODELS.get(task, f"@cf/cfai-test/{task}")
    emulator.register_model(name, task)
    return name, task


def _sent_field(body: str, field: str) -> str:
    """How ``field`` starts in the (truncated) JSON body the emulator received."""
    match = re.search(rf'"{re.escape(field)}":\s*(.{{0,24}})', body)
    assert match, f"{field} not in upstream body {body[:300]!r}"
    return match.group(1)


def _assert_encoding(sent: str, encoding: str, data: bytes) -> None:
    if encoding == "uint8":
        prefix = ", ".join(str(b) for b in data[:4])
        assert re.sub(r"\s", "", sent).startswith("[" + prefix.replace(" ", "")), sent
    else:
        assert sent.startswith('"' + base64.b64encode(data).decode()[:12]), sent


def _media_bytes(api, url: str) -> tuple[Any, bytes]:
    response = api.get(url)
    assert response.status_code == 200
    return response, b"".join(response.streaming_content)


def _upstream_calls(emulator, model: str) -> list[dict[str, Any]]:
    return [r for r in emulator.requests if r["model"] == model]


@pytest.mark.worker
@pytest.mark.parametrize(("shape", "task", "model", "payload"), E2E_CASES, ids=[c[0] for c in E2E_CASES])
def test_every_shape_end_to_end(api, worker, emulator, shape, task, model, payload):
    model, send_task = _model_for(task, model, emulator)
    response = _submit(api, model, payload, send_task)
    assert response.status_code == 202, response.json()
    run = wait_for_status(response.json()["id"])
    assert run.status == "succeeded", (run.error_code, run.error_message)
    assert run.task == task
    detail = api.get(f"/api/runs/{run.pk}/").json()

    RESULT_CHECKS[shape](detail["result"])

    (call,) = _upstream_calls(emulator, model)
    assert call["status"] == 200
    expected = EXPECTED_MEDIA.get(shape, {})
    inputs = {m["field"]: m for m in detail["media"] if m["role"] == "input"}
    assert set(inputs) == set(expected)
    for field, encoding in expected.items():
        # Stored as input media; the run's input holds a small reference.
        ref = detail["input"][field]
        assert ref["url"] == inputs[field]["url"] and ref["media"] == inputs[field]["id"]
        assert ref["content_type"] == ("image/png" if field == "image" else "audio/wav")
        _, data = _media_bytes(api, ref["url"])
        assert data == (PNG if field == "image" else WAV)
        # Upstream got the bytes back in the encoding the model takes.
        _assert_encoding(_sent_field(call["body"], field), encoding, data)
    # The rest of the input is stored as sent.
    for key, value in payload.items():
        if key not in expected:
            assert detail["input"][key] == value

    outputs = [m for m in detail["media"] if m["role"] == "output"]
    if shape in OUTPUT_MEDIA:
        key, content_type = OUTPUT_MEDIA[shape]
        (media,) = outputs
        assert media["field"] == key and media["content_type"] == content_type
        assert detail["result"][key] == media["url"]
        _, data = _media_bytes(api, media["url"])
        assert len(data) == media["size"] > 0
    else:
        assert outputs == []


# Each binary output kind of the catalog: (model, input, result key, content type).
OUTPUT_KINDS = [
    ("@cf/stabilityai/stable-diffusion-xl-base-1.0", {"prompt": "a lighthouse", "width": 256, "height": 320},
     "image", "image/png"),
    ("@cf/leonardo/phoenix-1.0", {"prompt": "a harbour", "width": 320, "height": 256}, "image", "image/jpeg"),
    ("@cf/black-forest-labs/flux-1-schnell", {"prompt": "a fox", "steps": 4}, "image", "image/png"),
    ("@cf/leonardo/lucid-origin", {"prompt": "a meadow"}, "image", "image/png"),
    ("@cf/myshell-ai/melotts", {"prompt": "hello there general kenobi"}, "audio", "audio/mpeg"),
    ("@cf/deepgram/aura-1", {"text": "hello there general kenobi"}, "audio", "audio/mpeg"),
]


@pytest.mark.worker
@pytest.mark.parametrize(("model", "payload", "key", "content_type"), OUTPUT_KINDS,
                         ids=[m[0].rsplit("/", 1)[1] for m in OUTPUT_KINDS])
def test_binary_outputs_are_media(api, worker, model, payload, key, content_type):
    run = wait_for_status(_submit(api, model, payload).json()["id"])
    assert run.status == "succeeded", run.error_message
    detail = api.get(f"/api/runs/{run.pk}/").json()
    (media,) = detail["media"]
    assert (media["role"], media["field"], media["content_type"]) == ("output", key, content_type)
    assert detail["result"] == {key: media["url"]}  # never inlined, nothing else left over
    response, data = _media_bytes(api, media["url"])
    assert response["Content-Type"] == content_type
    if key == "image":
        size = Image.open(io.BytesIO(data)).size
        if "width" in payload:
            assert size == (payload["width"], payload["height"])
    else:
        assert data[:2] == b"\xff\xfb"  # an MPEG audio frame, not JSON or base64


# --- invalid input: 400 naming the field, nothing stored, nothing sent --------------


def _error_key(path: str) -> str:
    return "input" if path == "" else f"input.{path}"


@pytest.mark.embedded
@pytest.mark.django_db
@pytest.mark.parametrize(
    ("shape", "task", "model", "payload", "path"),
    INVALID_CASES,
    ids=[f"{c[0]}-{c[4] or 'input'}-{i}" for i, c in enumerate(INVALID_CASES)],
)
def test_invalid_input_is_refused_before_anything_happens(api, emulator, shape, task, model, payload, path):
    send_task = None
    if model is None:
        model, send_task = SHAPE_ONLY_MODELS.get(task, f"@cf/cfai-test/{task}"), task
    response = _submit(api, model, payload, send_task)
    assert response.status_code == 400, response.content[:300]
    body = response.json()
    key = _error_key(path)
    assert key in body, body
    assert all(isinstance(m, str) and m for m in body[key])
    assert not Run.objects.exists()
    assert not RunMedia.objects.exists()
    assert emulator.requests == []


def test_invalid_table_has_three_cases_per_shape():
    counts = {shape: 0 for shape in ALL_SHAPES}
    for case in INVALID_CASES:
        counts[case[0]] += 1
    assert min(counts.values()) >= 3, counts


# --- media inputs: multipart uploads, base64 and data URIs ------------------------


def _multipart(api, model: str, payload: dict[str, Any] | None = None, task: str | None = None, **files: bytes):
    form: dict[str, Any] = {"model": model, "input": json.dumps(payload or {})}
    if task:
        form["task"] = task
    for name, data in files.items():
        form[name] = SimpleUploadedFile(f"upload-{name}", data, content_type="application/octet-stream")
    return api.post("/api/runs/", form, format="multipart")


@pytest.mark.worker
@pytest.mark.parametrize(
    ("model", "payload", "files", "encodings"),
    [
        (RESNET, {}, {"image": PNG}, {"image": "uint8"}),
        (WHISPER, {"source_lang": "en"}, {"audio": WAV}, {"audio": "uint8"}),
        (TURBO, {}, {"audio": WAV}, {"audio": "base64"}),
        (INPAINT, {"prompt": "fill the hole", "strength": 1}, {"image": PNG, "mask": PNG},
         {"image": "uint8", "mask": "uint8"}),
    ],
    ids=["resnet-image", "whisper-audio", "turbo-audio-base64", "inpainting-image-mask"],
)
def test_multipart_uploads_run_end_to_end(api, worker, emulator, model, payload, files, encodings):
    response = _multipart(api, model, payload, **files)
    assert response.status_code == 202, response.json()
    run = wait_for_status(response.json()["id"])
    assert run.status == "succeeded", run.error_message
    stored = {m.field: m for m in run.media.filter(role=RunMedia.Role.INPUT)}
    assert set(stored) == set(files)
    (call,) = _upstream_calls(emulator, model)
    for field, encoding in encodings.items():
        assert stored[field].encoding == encoding
        assert stored[field].size == len(files[field])
        assert run.input[field]["media"] == str(stored[field].pk)
        _assert_encoding(_sent_field(call["body"], field), encoding, files[field])
    for key, value in payload.items():
        assert run.input[key] == value


@pytest.mark.worker
@pytest.mark.parametrize("inline", [PNG_B64, PNG_DATA_URI], ids=["base64", "data-uri"])
def test_base64_and_data_uri_strings_become_the_byte_array(api, worker, emulator, inline):
    response = _submit(api, RESNET, {"image": inline})
    assert response.status_code == 202, response.json()
    run = wait_for_status(response.json()["id"])
    assert run.status == "succeeded", run.error_message
    (media,) = run.media.filter(role=RunMedia.Role.INPUT)
    assert media.content_type == "image/png" and media.sha256
    assert run.input["image"]["media"] == str(media.pk)
    (call,) = _upstream_calls(emulator, RESNET)
    _assert_encoding(_sent_field(call["body"], "image"), "uint8", PNG)


@pytest.fixture
def small_uploads(settings):
    settings.INFERENCE = {**settings.INFERENCE, "MAX_UPLOAD_BYTES": 1000}
    return 1000


@pytest.mark.embedded
@pytest.mark.django_db
class TestMediaRefused:
    def _refused(self, response, status: int, key: str, emulator) -> dict:
        assert response.status_code == status, response.content[:300]
        body = response.json()
        assert key in body, body
        assert not Run.objects.exists() and not RunMedia.objects.exists()
        assert emulator.requests == []
        return body

    def test_upload_over_the_limit_is_413_naming_the_file(self, api, emulator, small_uploads):
        big = PNG + bytes(2000)
        body = self._refused(_multipart(api, RESNET, image=big), 413, "image", emulator)
        assert "1000" in body["image"][0]

    def test_inline_base64_over_the_limit_is_413_naming_the_input_field(self, api, emulator, small_uploads):
        big = base64.b64encode(PNG + bytes(2000)).decode()
        self._refused(_submit(api, RESNET, {"image": big}), 413, "input.image", emulator)

    def test_audio_in_an_image_field_is_400(self, api, emulator):
        body = self._refused(_multipart(api, RESNET, image=WAV), 400, "image", emulator)
        assert "image" in body["image"][0] and "WAV" in body["image"][0].upper()

    def test_image_in_an_audio_field_is_400(self, api, emulator):
        self._refused(_multipart(api, WHISPER, audio=PNG), 400, "audio", emulator)

    def test_inline_audio_as_image_is_400_under_input(self, api, emulator):
        self._refused(_submit(api, RESNET, {"image": list(WAV)}), 400, "input.image", emulator)

    def test_file_the_task_does_not_take_is_400(self, api, emulator):
        self._refused(_multipart(api, RESNET, audio=WAV), 400, "audio", emulator)

    def test_file_and_inline_value_together_is_400(self, api, emulator):
        self._refused(_multipart(api, RESNET, {"image": PNG_B64}, image=PNG), 400, "image", emulator)

    def test_multipart_input_must_be_json(self, api, emulator):
        response = api.post("/api/runs/", {"model": RESNET, "input": "{not json"}, format="multipart")
        self._refused(response, 400, "input", emulator)

    def test_input_is_required_without_files(self, api, emulator):
        self._refused(api.post("/api/runs/", {"model": RESNET}, format="json"), 400, "input", emulator)
        self._refused(api.post("/api/runs/", {"model": RESNET}, format="multipart"), 400, "input", emulator)

    def test_files_alone_are_a_complete_multipart_input(self, api, emulator):
        form = {"model": RESNET, "image": SimpleUploadedFile("cat.png", PNG)}
        response = api.post("/api/runs/", form, format="multipart")
        assert response.status_code == 202, response.json()
        run = Run.objects.get()
        assert run.input["image"]["size"] == len(PNG)
        assert run.media.get().field == "image"

    def test_bad_base64_is_400(self, api, emulator):
        self._refused(_submit(api, RESNET, {"image": "!!not base64!!"}), 400, "input.image", emulator)


@pytest.mark.embedded
@pytest.mark.django_db(transaction=True)
def test_uploads_in_process(api, eager, emulator):
    """The embedded default (SQLite, eager Celery): an upload runs to the end."""
    form = {"model": TURBO, "input": "{}", "audio": SimpleUploadedFile("a.wav", WAV)}
    response = api.post("/api/runs/", form, format="multipart", HTTP_PREFER="wait=10")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "succeeded" and body["result"]["text"]
    assert body["input"]["audio"]["content_type"] == "audio/wav"
    (call,) = _upstream_calls(emulator, TURBO)
    _assert_encoding(_sent_field(call["body"], "audio"), "base64", WAV)
