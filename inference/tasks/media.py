"""Media inputs: take images and audio out of a run's input, check them, and put
them back the way the model wants them.

A caller may send a file three ways: a multipart upload (``image``, ``audio``,
``mask``), inline JSON as a byte array (``[137, 80, 78, ...]``), or inline as a
base64 string / ``data:`` URI.  Whatever the way, ``extract_media`` returns the
input *without* the media (so the stored input stays small) plus one
``MediaInput`` per file, holding the raw bytes, the sniffed content type and the
encoding upstream expects for that field (per the reference page and the
catalog's ``audio_input`` / ``image_input``).  ``upstream_input`` rebuilds the
body to send.

``extract_media`` is the one call the submit path needs: it also validates the
rest of the input (with cheap placeholders standing in for the media, so
"is required" checks pass without building a 10-million-item list).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_to_bytes

from inference.catalog import TASKS, ModelSpec, get_model
from inference.tasks.errors import InputValidationError, MediaTooLarge
from inference.tasks.schemas import AUDIO, BASE64, IMAGE, OBJECT, UINT8, MediaField, media_fields
from inference.tasks.sniff import AUDIO_TYPES, IMAGE_TYPES, describe, sniff_content_type
from inference.tasks.validation import validate_input

DEFAULT_MAX_BYTES = 10 * 1024 * 1024  # Cloudflare rejects bodies over ~10 MB anyway

# What stands in for a file during schema validation: valid for its encoding,
# tiny.  "AA==" is base64 for one zero byte.
_PLACEHOLDER: dict[str, Any] = {
    UINT8: [0], BASE64: "AA==", OBJECT: {"body": {}, "contentType": "application/octet-stream"},
}
_KIND_TYPES = {IMAGE: IMAGE_TYPES, AUDIO: AUDIO_TYPES}


@dataclass(frozen=True)
class MediaInput:
    """One file taken out of a run's input."""

    field: str  # the input field it goes back into
    data: bytes
    content_type: str  # sniffed from the bytes
    encoding: str  # "uint8", "base64" or "object": how upstream wants it

    @property
    def size(self) -> int:
        return len(self.data)

    def encoded(self) -> list[int] | str | dict[str, str]:
        return encode_for_upstream(self.data, self.encoding, self.content_type)


def encode_for_upstream(
    data: bytes, encoding: str, content_type: str = "application/octet-stream"
) -> list[int] | str | dict[str, str]:
    """``data`` as the model's schema takes it: a list of 0-255 ints, a base64
    string, or a ``{"body": <base64>, "contentType": ...}`` object."""
    if encoding == UINT8:
        return list(data)
    if encoding == BASE64:
        return base64.b64encode(data).decode("ascii")
    if encoding == OBJECT:
        return {"body": base64.b64encode(data).decode("ascii"), "contentType": content_type}
    raise ValueError(f"unknown media encoding {encoding!r}")


def upstream_input(payload: Mapping[str, Any], media: list[MediaInput]) -> dict[str, Any]:
    """The body to send upstream: the stored input with its media put back."""
    body = dict(payload)
    for item in media:
        body[item.field] = item.encoded()
    return body


def extract_media(
    task: str,
    model: ModelSpec | str | None,
    payload: Any,
    uploads: Mapping[str, tuple[bytes, str | None]] | None = None,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> tuple[dict[str, Any], list[MediaInput]]:
    """Split ``payload`` into (input without media, media files) and validate it.

    ``model`` is a catalog spec, a model name (looked up in the catalog) or None.
    ``uploads`` maps multipart file names (``image``, ``audio``, ``mask``) to
    ``(bytes, declared content type)``; the declared type is ignored, the bytes
    are sniffed.  A ``None`` payload counts as ``{}`` (a multipart form with
    files only).

    Raises ``MediaTooLarge`` for a file over ``max_bytes`` (checked before
    decoding where possible) and ``InputValidationError`` for everything else,
    keyed like ``validate_input`` (a media field's own key for a bad file,
    ``image[3]`` for a bad inline byte, the upload name for an unexpected file).
    """
    if task not in TASKS:
        validate_input(task, {})  # raises the standard "task" error
    spec = get_model(model) if isinstance(model, str) else model
    model_name = spec.name if spec is not None else model if isinstance(model, str) else None
    if payload is None:
        payload = {}
    if not isinstance(payload, dict):
        validate_input(task, payload, model=model_name)  # raises "must be an object"
    uploads = uploads or {}

    fields = media_fields(task, spec)
    errors: dict[str, list[str]] = {}
    accepted = {f.upload for f in fields if f.upload}
    for name in uploads:
        if name not in accepted:
            takes = ", ".join(sorted(accepted)) or "none"
            errors[name] = [f"unexpected file for task {task} (files it takes: {takes})"]

    rest = dict(payload)
    media: list[MediaInput] = []
    placeholders: dict[str, Any] = {}
    for field in fields:
        upload = uploads.get(field.upload) if field.upload else None
        if upload is not None and field.name in payload:
            errors[field.name] = ["given both as an uploaded file and inline; send one"]
            rest.pop(field.name)
            placeholders[field.name] = _PLACEHOLDER[field.encoding]
            continue
        if upload is not None:
            data = bytes(upload[0])
            if len(data) > max_bytes:
                raise MediaTooLarge(field.name, len(data), max_bytes)
        elif field.name in payload:
            value = payload[field.name]
            if not isinstance(value, list | str):
                continue  # left in place: schema validation names the wrong type
            try:
                data = _decode_inline(field.name, value, max_bytes)
            except _BadMedia as bad:
                errors.setdefault(bad.key, []).append(bad.message)
                rest.pop(field.name)
                placeholders[field.name] = _PLACEHOLDER[field.encoding]
                continue
        else:
            continue

        rest.pop(field.name, None)
        placeholders[field.name] = _PLACEHOLDER[field.encoding]
        problem = _check_kind(field, data)
        if problem:
            errors.setdefault(field.name, []).append(problem)
            continue
        content_type = sniff_content_type(data) or "application/octet-stream"
        media.append(MediaInput(field.name, data, content_type, field.encoding))

    try:
        validate_input(task, {**rest, **placeholders}, model=model_name)
    except InputValidationError as exc:
        if "task" in exc.errors:
            raise
        for key, messages in exc.errors.items():
            errors.setdefault(key, []).extend(m for m in messages if m not in errors[key])
    if errors:
        raise InputValidationError(errors)
    return rest, media


class _BadMedia(Exception):
    def __init__(self, key: str, message: str) -> None:
        self.key = key
        self.message = message


def _check_kind(field: MediaField, data: bytes) -> str | None:
    if not data:
        return "must not be empty"
    sniffed = sniff_content_type(data)
    allowed = _KIND_TYPES[field.kind]
    if sniffed in allowed:
        return None
    names = list(allowed.values())
    return (
        f"must be an {field.kind} file "
        f"({', '.join(names[:-1])} or {names[-1]}); got {describe(sniffed)}"
    )


def _decode_inline(name: str, value: list[Any] | str, max_bytes: int) -> bytes:
    if isinstance(value, list):
        if len(value) > max_bytes:
            raise MediaTooLarge(name, len(value), max_bytes)
        return _bytes_from_list(name, value)
    return _bytes_from_string(name, value, max_bytes)


def _bytes_from_list(name: str, value: list[Any]) -> bytes:
    # Fast path in C; the slow loop only runs to name the first bad item.
    if set(map(type, value)) <= {int}:
        try:
            return bytes(value)
        except ValueError:
            pass
    out = bytearray()
    for index, item in enumerate(value):
        # JSON numbers like 3.0 are integers to JSON Schema; true/false are not.
        if isinstance(item, bool) or not isinstance(item, int | float):
            raise _BadMedia(f"{name}[{index}]", "must be an integer")
        if isinstance(item, float) and not item.is_integer():
            raise _BadMedia(f"{name}[{index}]", "must be an integer")
        if item < 0:
            raise _BadMedia(f"{name}[{index}]", "must be ≥ 0")
        if item > 255:
            raise _BadMedia(f"{name}[{index}]", "must be ≤ 255")
        out.append(int(item))
    return bytes(out)


def _bytes_from_string(name: str, value: str, max_bytes: int) -> bytes:
    text = value
    if value.startswith("data:"):
        header, comma, text = value.partition(",")
        if not comma:
            raise _BadMedia(name, "is not a valid data: URI (no comma)")
        if not header.endswith(";base64"):
            # Percent-encoded data URI (rare for binary, but legal).
            if len(text) > 3 * max_bytes:
                raise MediaTooLarge(name, len(text), max_bytes)
            data = unquote_to_bytes(text)
            if len(data) > max_bytes:
                raise MediaTooLarge(name, len(data), max_bytes)
            return data
    # Refuse before decoding: every 4 base64 characters (not counting line
    # breaks and padding) make 3 bytes.
    whitespace = sum(text.count(c) for c in " \n\r\t")
    estimate = (len(text) - whitespace - text.count("=")) * 3 // 4
    if estimate > max_bytes:
        raise MediaTooLarge(name, estimate, max_bytes)
    if whitespace:
        text = "".join(text.split())  # MIME base64 wraps lines
    if "-" in text or "_" in text:
        text = text.translate(str.maketrans("-_", "+/"))  # URL-safe alphabet
    text += "=" * (-len(text) % 4)
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise _BadMedia(name, "is not valid base64 (nor a data: URI)") from None
    if len(data) > max_bytes:
        raise MediaTooLarge(name, len(data), max_bytes)
    return data


__all__ = [
    "DEFAULT_MAX_BYTES",
    "MediaInput",
    "encode_for_upstream",
    "extract_media",
    "upstream_input",
]
