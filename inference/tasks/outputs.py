"""Results: pull binary blobs out of them, and even out per-task shapes.

Order of use on a finished call: ``normalize_output(task, result)`` first (it may
wrap a bare string into ``{"image": ...}`` / ``{"audio": ...}``), then
``extract_binary_outputs(output_kind, result)``, then store each ``BinaryOutput``
as media and put its URL under ``key`` in the stored result (contract §5:
binary outputs are never inlined).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from inference.catalog import OutputKind, Task
from inference.tasks.sniff import sniff_content_type


class BinaryOutputError(ValueError):
    """A result that should carry a file does not (missing key, bad base64).
    Upstream's fault, not the caller's: map it to a protocol error."""


@dataclass(frozen=True)
class BinaryOutput:
    key: str  # where it sat in the result ("image" / "audio")
    data: bytes
    content_type: str

    @property
    def size(self) -> int:
        return len(self.data)


# Output kind -> (result key, content type when the bytes are not recognizable).
_BINARY_KINDS: dict[str, tuple[str, str]] = {
    OutputKind.PNG_BYTES: ("image", "image/png"),
    OutputKind.JPEG_BYTES: ("image", "image/jpeg"),
    OutputKind.BASE64_IMAGE: ("image", "image/png"),
    OutputKind.BASE64_AUDIO: ("audio", "audio/mpeg"),
    OutputKind.AUDIO_BYTES: ("audio", "audio/mpeg"),
}


def extract_binary_outputs(output_kind: str, result: Any) -> tuple[Any, list[BinaryOutput]]:
    """Split ``result`` into (result without blobs, blobs).

    * raw bytes (PNG/JPEG/MP3 bodies, or any kind whose upstream answered bytes,
      as melotts may) -> ``({}, [BinaryOutput(key, bytes, type)])``;
    * ``{"image": "<base64>"}`` / ``{"audio": "<base64>"}`` -> the dict without
      that key, and the decoded blob (a ``data:`` URI prefix is tolerated);
    * ``OutputKind.JSON`` with a non-bytes result -> unchanged, no blobs.

    The content type is sniffed from the bytes, falling back to the kind's
    default.  Raises ``BinaryOutputError`` when a file is expected but missing
    or not valid base64.
    """
    if isinstance(result, bytes | bytearray | memoryview):
        key, default = _BINARY_KINDS.get(output_kind, ("file", "application/octet-stream"))
        data = bytes(result)
        return {}, [BinaryOutput(key, data, sniff_content_type(data) or default)]
    if output_kind not in _BINARY_KINDS:
        return result, []
    key, default = _BINARY_KINDS[output_kind]
    if not isinstance(result, dict) or not isinstance(result.get(key), str):
        raise BinaryOutputError(f"expected a base64 string in result.{key}")
    data = _b64decode(result[key], key)
    rest = {k: v for k, v in result.items() if k != key}
    return rest, [BinaryOutput(key, data, sniff_content_type(data) or default)]


def _b64decode(text: str, key: str) -> bytes:
    if text.startswith("data:"):
        text = text.partition(",")[2]
    text = "".join(text.split())
    text += "=" * (-len(text) % 4)
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BinaryOutputError(f"result.{key} is not valid base64: {exc}") from None
    if not data:
        raise BinaryOutputError(f"result.{key} is empty")
    return data


# Tasks whose result is a list of labelled scores / detections.
_LIST_TASKS = frozenset(
    {Task.TEXT_CLASSIFICATION, Task.IMAGE_CLASSIFICATION, Task.OBJECT_DETECTION}
)
# Tasks whose result is an object with one main string field; the page also
# allows a bare string for some, which we wrap so clients see one shape.
_STRING_KEY: dict[str, str] = {
    Task.TEXT_GENERATION: "response",
    Task.TRANSLATION: "translated_text",
    Task.SUMMARIZATION: "summary",
    Task.IMAGE_TO_TEXT: "description",
    Task.IMAGE_TEXT_TO_TEXT: "description",
    Task.TEXT_TO_IMAGE: "image",
    Task.TEXT_TO_SPEECH: "audio",
}
_EMBEDDING_TASKS = frozenset({Task.TEXT_EMBEDDINGS, Task.MULTIMODAL_EMBEDDINGS})


def normalize_output(task: str, result: Any) -> Any:
    """Light normalization to the reference page's result shapes; never drops data.

    * classification / detection: a single ``{label, score}`` object becomes a
      one-item list;
    * a bare string where the page's shape is an object (text generation,
      translation, summary, descriptions, base64 image/audio) is wrapped:
      ``"hi"`` -> ``{"response": "hi"}``;
    * text generation: a non-string ``response`` (some models stream numbers)
      becomes a string; an OpenAI-style ``choices[0].message.content`` fills a
      missing ``response``; other keys (``tool_calls``, ``usage``…) are kept;
    * embeddings: ``shape`` is filled in from ``data`` when missing.

    Anything else (bytes, unknown tasks, already-normal results) is returned as is.
    """
    if task in _LIST_TASKS:
        if isinstance(result, dict) and ("label" in result or "box" in result):
            return [result]
        return result
    key = _STRING_KEY.get(task)
    if key is not None and isinstance(result, str):
        return {key: result}
    if task == Task.TEXT_GENERATION and isinstance(result, dict):
        return _normalize_generation(result)
    if task in _EMBEDDING_TASKS and isinstance(result, dict):
        data = result.get("data")
        if (
            "shape" not in result
            and isinstance(data, list)
            and all(isinstance(row, list) for row in data)
        ):
            width = len(data[0]) if data else 0
            return {**result, "shape": [len(data), width]}
    return result


def _normalize_generation(result: dict[str, Any]) -> dict[str, Any]:
    response = result.get("response")
    if response is None:
        choices = result.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], dict):
            message = choices[0].get("message") or choices[0].get("delta") or {}
            content = message.get("content") if isinstance(message, dict) else None
            if isinstance(content, str):
                return {**result, "response": content}
        return result
    if not isinstance(response, str) and isinstance(response, int | float):
        return {**result, "response": str(response)}
    return result


__all__ = [
    "BinaryOutput",
    "BinaryOutputError",
    "extract_binary_outputs",
    "normalize_output",
]
