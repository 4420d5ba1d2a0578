"""Binary outputs are real media: Pillow decodes the images, mutagen parses the MP3."""

from __future__ import annotations

import base64
import io

import pytest
from mutagen.mp3 import MP3
from PIL import Image

from .conftest import AURA, FLUX, MELOTTS, PHOENIX, SDXL


def test_png_bytes_model_answers_raw_png_of_requested_size(run):
    response = run(SDXL, {"prompt": "a lighthouse", "width": 320, "height": 200})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "image/png"
    assert response.content.startswith(b"\x89PNG\r\n\x1a\n")  # raw bytes, no envelope
    image = Image.open(io.BytesIO(response.content))
    image.load()
    assert image.format == "PNG" and image.size == (320, 200)


def test_default_image_size_is_small(run):
    image = Image.open(io.BytesIO(run(SDXL, {"prompt": "x"}).content))
    assert image.size == (256, 256)


def test_jpeg_bytes_model(run):
    response = run(PHOENIX, {"prompt": "a fox", "width": 300, "height": 260})
    assert response.headers["Content-Type"] == "image/jpeg"
    image = Image.open(io.BytesIO(response.content))
    image.load()
    assert image.format == "JPEG" and image.size == (300, 260)


def test_flux_answers_base64_png_in_json(run):
    response = run(FLUX, {"prompt": "a cat", "steps": 4})
    assert response.headers["Content-Type"] == "application/json"
    result = response.json()["result"]
    assert set(result) == {"image"}
    image = Image.open(io.BytesIO(base64.b64decode(result["image"])))
    image.load()
    assert image.format == "PNG" and image.size == (256, 256)


def test_images_are_deterministic(run):
    assert run(SDXL, {"prompt": "same"}).content == run(SDXL, {"prompt": "same"}).content
    assert run(SDXL, {"prompt": "same"}).content != run(SDXL, {"prompt": "other"}).content


def test_image_noise_makes_large_images(emulator, run):
    emulator.configure(image_noise=True)
    response = run(SDXL, {"prompt": "noise", "width": 2048, "height": 1400})
    assert len(response.content) > 8_000_000
    assert Image.open(io.BytesIO(response.content)).size == (2048, 1400)


def test_melotts_base64_mp3_duration_grows_with_text(run):
    def duration(text: str) -> float:
        result = run(MELOTTS, {"prompt": text, "lang": "en"}).json()["result"]
        assert set(result) == {"audio"}
        return MP3(io.BytesIO(base64.b64decode(result["audio"]))).info.length

    short, long = duration("hello there"), duration(" ".join(["word"] * 20))
    assert short == pytest.approx(0.8, abs=0.05)  # 0.4 s per word
    assert long == pytest.approx(8.0, abs=0.05)


def test_aura_raw_mpeg(run):
    response = run(AURA, {"text": "one two three four five"})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "audio/mpeg"
    info = MP3(io.BytesIO(response.content)).info
    assert info.length == pytest.approx(2.0, abs=0.05) and info.sample_rate == 32000


def test_tts_without_text_is_rejected(run):
    response = run(MELOTTS, {"lang": "en"})
    assert response.status_code == 400 and response.json()["errors"][0]["code"] == 5006
