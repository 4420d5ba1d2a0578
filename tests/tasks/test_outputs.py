"""extract_binary_outputs and normalize_output."""

from __future__ import annotations

import base64

import pytest

from inference.catalog import OutputKind
from inference.tasks import (
    BinaryOutput,
    BinaryOutputError,
    extract_binary_outputs,
    normalize_output,
)
from tests.tasks.cases import PNG, PNG_B64

MP3 = b"ID3\x04\x00\x00\x00\x00\x00\x00\xff\xfb\x90\x64" + bytes(32)


def test_base64_image(jpeg_bytes):
    rest, blobs = extract_binary_outputs(OutputKind.BASE64_IMAGE, {"image": PNG_B64, "seed": 4})
    assert rest == {"seed": 4}
    assert blobs == [BinaryOutput("image", PNG, "image/png")]
    _, [blob] = extract_binary_outputs(
        OutputKind.BASE64_IMAGE, {"image": base64.b64encode(jpeg_bytes).decode()}
    )
    assert blob.content_type == "image/jpeg"


def test_base64_audio():
    result = {"audio": base64.b64encode(MP3).decode()}
    rest, [blob] = extract_binary_outputs(OutputKind.BASE64_AUDIO, result)
    assert rest == {} and blob == BinaryOutput("audio", MP3, "audio/mpeg")
    assert result == {"audio": base64.b64encode(MP3).decode()}  # input untouched


def test_raw_bytes(jpeg_bytes):
    assert extract_binary_outputs(OutputKind.PNG_BYTES, PNG) == (
        {},
        [BinaryOutput("image", PNG, "image/png")],
    )
    _, [blob] = extract_binary_outputs(OutputKind.JPEG_BYTES, jpeg_bytes)
    assert blob.content_type == "image/jpeg"
    _, [blob] = extract_binary_outputs(OutputKind.AUDIO_BYTES, b"\x00unknown")
    assert blob == BinaryOutput("audio", b"\x00unknown", "audio/mpeg")  # kind's default
    # melotts may answer raw audio although its kind is base64-in-JSON.
    _, [blob] = extract_binary_outputs(OutputKind.BASE64_AUDIO, MP3)
    assert blob.key == "audio"


def test_json_results_untouched():
    result = {"response": "hi"}
    assert extract_binary_outputs(OutputKind.JSON, result) == (result, [])


@pytest.mark.parametrize("result", [{"image": "!!!"}, {"image": ""}, {}, "x", {"image": 5}])
def test_invalid_base64_is_a_clear_error(result):
    with pytest.raises(BinaryOutputError, match="result.image"):
        extract_binary_outputs(OutputKind.BASE64_IMAGE, result)


def test_data_uri_tolerated():
    _, [blob] = extract_binary_outputs(
        OutputKind.BASE64_IMAGE, {"image": "data:image/png;base64," + PNG_B64}
    )
    assert blob.data == PNG


def test_normalize_classification_lists():
    one = {"label": "POSITIVE", "score": 0.9}
    assert normalize_output("text-classification", one) == [one]
    assert normalize_output("image-classification", [one]) == [one]
    box = {"label": "cat", "score": 0.8, "box": {"xmin": 1, "ymin": 2, "xmax": 3, "ymax": 4}}
    assert normalize_output("object-detection", box) == [box]


def test_normalize_wraps_bare_strings():
    assert normalize_output("text-generation", "hi") == {"response": "hi"}
    assert normalize_output("translation", "bonjour") == {"translated_text": "bonjour"}
    assert normalize_output("summarization", "short") == {"summary": "short"}
    assert normalize_output("image-to-text", "a cat") == {"description": "a cat"}
    assert normalize_output("text-to-speech", "QUJD") == {"audio": "QUJD"}


def test_normalize_generation():
    usage = {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
    result = {"response": "ok", "tool_calls": [], "usage": usage}
    assert normalize_output("text-generation", result) == result
    assert normalize_output("text-generation", {"response": 42})["response"] == "42"
    openai = {"choices": [{"message": {"content": "hello"}}], "usage": usage}
    assert normalize_output("text-generation", openai) == {**openai, "response": "hello"}


def test_normalize_embeddings_shape():
    assert normalize_output("text-embeddings", {"data": [[0.1, 0.2], [0.3, 0.4]]}) == {
        "data": [[0.1, 0.2], [0.3, 0.4]],
        "shape": [2, 2],
    }
    full = {"data": [[1.0]], "shape": [1, 1]}
    assert normalize_output("multimodal-embeddings", full) == full


def test_normalize_leaves_the_rest():
    asr = {"text": "hi", "word_count": 1, "words": [{"word": "hi", "start": 0, "end": 1}]}
    assert normalize_output("automatic-speech-recognition", asr) == asr
    assert normalize_output("unknown-task", {"x": 1}) == {"x": 1}
    assert normalize_output("text-to-image", PNG) == PNG
