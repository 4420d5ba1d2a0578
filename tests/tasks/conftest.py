"""Fixtures for the tasks package tests: small real media files."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from tests.tasks.cases import PNG, WAV


def _pillow(fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (4, 4), (200, 30, 30)).save(buf, format=fmt)
    return buf.getvalue()


@pytest.fixture
def png_bytes() -> bytes:
    return PNG


@pytest.fixture
def wav_bytes() -> bytes:
    return WAV


@pytest.fixture
def jpeg_bytes() -> bytes:
    return _pillow("JPEG")


@pytest.fixture
def image_samples() -> dict[str, bytes]:
    """Real files for every image type we sniff."""
    return {
        "image/png": PNG,
        "image/jpeg": _pillow("JPEG"),
        "image/gif": _pillow("GIF"),
        "image/webp": _pillow("WEBP"),
        "image/bmp": _pillow("BMP"),
    }


@pytest.fixture
def audio_samples() -> dict[str, bytes]:
    """Headers of every audio type we sniff (sniffing reads only the start)."""
    return {
        "audio/wav": WAV,
        "audio/mpeg": b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\xff\xfb\x90\x64" + bytes(64),
        "audio/ogg": b"OggS\x00\x02" + bytes(64),
        "audio/flac": b"fLaC\x00\x00\x00\x22" + bytes(64),
        "audio/mp4": b"\x00\x00\x00\x20ftypM4A \x00\x00\x00\x00" + bytes(64),
        "audio/webm": b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01" + bytes(64),
    }


@pytest.fixture
def mp3_frame_bytes() -> bytes:
    """An MP3 without an ID3 tag: starts directly with an MPEG-1 Layer III frame."""
    return b"\xff\xfb\x90\x64" + bytes(413)
