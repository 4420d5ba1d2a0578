"""Tell a file's type from its first bytes (magic numbers), never from what the
caller claims: a declared ``Content-Type`` or file name is too easy to get wrong,
and the model only cares about the bytes."""

from __future__ import annotations

IMAGE_TYPES: dict[str, str] = {
    "image/png": "PNG",
    "image/jpeg": "JPEG",
    "image/gif": "GIF",
    "image/webp": "WebP",
    "image/bmp": "BMP",
}
AUDIO_TYPES: dict[str, str] = {
    "audio/mpeg": "MP3",
    "audio/wav": "WAV",
    "audio/ogg": "OGG",
    "audio/flac": "FLAC",
    "audio/mp4": "M4A/MP4",
    "audio/webm": "WebM",
    "audio/aac": "AAC",
}


def sniff_content_type(data: bytes) -> str | None:
    """The MIME type of ``data`` (one of IMAGE_TYPES / AUDIO_TYPES), or None."""
    head = bytes(data[:16])
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "audio/wav"
    if head.startswith(b"BM") and len(data) >= 26:
        return "image/bmp"
    if head.startswith(b"ID3"):
        return "audio/mpeg"
    if head.startswith(b"OggS"):
        return "audio/ogg"
    if head.startswith(b"fLaC"):
        return "audio/flac"
    if head[4:8] == b"ftyp":
        return "audio/mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):  # EBML: WebM / Matroska
        return "audio/webm"
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        # MPEG frame sync (11 set bits).  Layer bits 00 mean an AAC ADTS header;
        # anything else is MPEG audio (MP3 without an ID3 tag).
        return "audio/aac" if head[1] & 0x06 == 0 else "audio/mpeg"
    return None


def describe(content_type: str | None) -> str:
    """A short human name for error messages."""
    if content_type is None:
        return "data in no recognized format"
    return IMAGE_TYPES.get(content_type) or AUDIO_TYPES.get(content_type) or content_type
