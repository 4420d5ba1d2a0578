"""Run media: the only code that touches media files.  Stores inputs and
outputs in the ``INFERENCE["MEDIA_STORAGE"]`` storage, and rebuilds the bytes a
model must receive from the stored input references."""

from __future__ import annotations

import hashlib
from typing import Any

from django.core.files.base import ContentFile
from django.urls import reverse

from ..models import Run, RunMedia
from ..tasks.media import MediaInput, encode_for_upstream

_EXTENSIONS = {
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/gif": "gif",
    "image/webp": "webp",
    "image/bmp": "bmp",
    "audio/mpeg": "mp3",
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/ogg": "ogg",
    "audio/flac": "flac",
    "audio/mp4": "m4a",
    "audio/webm": "webm",
}


def store_media(run: Run, role: str, field_name: str, data: bytes, content_type: str, encoding: str = "") -> RunMedia:
    media = RunMedia(
        run=run,
        role=role,
        field=field_name,
        encoding=encoding,
        content_type=content_type,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )
    extension = _EXTENSIONS.get(content_type, "bin")
    media.file.save(f"{field_name}.{extension}", ContentFile(data), save=False)
    media.save(force_insert=True)
    return media


def media_url(media: RunMedia) -> str:
    return reverse("inference-api:media-detail", args=[media.pk])


def store_input_media(run: Run, media: list[MediaInput]) -> None:
    for item in media:
        stored = store_media(run, RunMedia.Role.INPUT, item.field, item.data, item.content_type, item.encoding)
        run.input[item.field] = {"media": str(stored.pk), "url": media_url(stored), "content_type": item.content_type, "size": len(item.data)}
    Run.objects.filter(pk=run.pk).update(input=run.input)


def upstream_payload(run: Run) -> dict[str, Any]:
    """Rebuild what Cloudflare must receive: the stored input with each media
    reference replaced by the bytes in the encoding the model expects."""
    payload = dict(run.input)
    # Most runs carry no media: skip the query unless the input references some.
    if not any(isinstance(v, dict) and "media" in v for v in payload.values()):
        return payload
    for media in run.media.filter(role=RunMedia.Role.INPUT):
        with media.file.open("rb") as fh:
            payload[media.field] = encode_for_upstream(fh.read(), media.encoding, media.content_type)
    return payload
