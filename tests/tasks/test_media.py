"""extract_media: uploads and inline media, sniffing, encodings, size limits."""

from __future__ import annotations

import base64

import pytest

from inference.catalog import get_model
from inference.tasks import (
    AUDIO_TYPES,
    IMAGE_TYPES,
    InputValidationError,
    MediaInput,
    MediaTooLarge,
    encode_for_upstream,
    extract_media,
    media_fields,
    sniff_content_type,
    upstream_input,
    validate_input,
)
from tests.tasks.cases import (
    INPAINT,
    INVALID_CASES,
    LLAVA,
    PNG,
    PNG_B64,
    PNG_DATA_URI,
    PNG_LIST,
    RESNET,
    TURBO,
    VALID_CASES,
    WAV,
    WHISPER,
)


def _errors(*args, **kwargs) -> dict[str, list[str]]:
    with pytest.raises(InputValidationError) as info:
        extract_media(*args, **kwargs)
    return info.value.errors


# --- the shared tables also hold through extract_media -----------------------


@pytest.mark.parametrize(
    ("shape", "task", "model", "payload"),
    VALID_CASES,
    ids=[f"{c[0]}-{i}" for i, c in enumerate(VALID_CASES)],
)
def test_valid_cases_round_trip(shape, task, model, payload):
    rest, media = extract_media(task, model, payload)
    names = {f.name for f in media_fields(task, model)}
    assert not names & rest.keys()  # media left the stored input
    assert {m.field for m in media} == names & payload.keys()
    body = upstream_input(rest, media)
    # What goes upstream is what the model's schema wants.
    validate_input(task, body, model=model)
    for item in media:
        assert item.content_type in IMAGE_TYPES or item.content_type in AUDIO_TYPES


@pytest.mark.parametrize(
    ("shape", "task", "model", "payload", "path"),
    INVALID_CASES,
    ids=[f"{c[0]}-{c[4] or 'input'}-{i}" for i, c in enumerate(INVALID_CASES)],
)
def test_invalid_cases_same_key(shape, task, model, payload, path):
    assert path in _errors(task, model, payload)


# --- sniffing ----------------------------------------------------------------


def test_sniff_images(image_samples):
    for content_type, data in image_samples.items():
        assert sniff_content_type(data) == content_type


def test_sniff_audio(audio_samples, mp3_frame_bytes):
    for content_type, data in audio_samples.items():
        assert sniff_content_type(data) == content_type
    assert sniff_content_type(mp3_frame_bytes) == "audio/mpeg"
    assert sniff_content_type(b"\xff\xf1\x50\x80") == "audio/aac"


def test_sniff_garbage():
    assert sniff_content_type(b"") is None
    assert sniff_content_type(b"hello world") is None
    assert sniff_content_type(b"BM") is None  # too short to be a bitmap


@pytest.mark.parametrize("content_type", sorted(IMAGE_TYPES))
def test_every_image_type_accepted(image_samples, content_type):
    rest, [item] = extract_media(
        "image-classification", RESNET, {}, {"image": (image_samples[content_type], None)}
    )
    assert item.content_type == content_type


@pytest.mark.parametrize("content_type", sorted(set(AUDIO_TYPES) - {"audio/aac"}))
def test_every_audio_type_accepted(audio_samples, content_type):
    _, [item] = extract_media(
        "automatic-speech-recognition",
        WHISPER,
        {},
        {"audio": (audio_samples[content_type], "audio/whatever")},
    )
    assert item.content_type == content_type


def test_image_field_given_audio_or_garbage(audio_samples):
    errors = _errors(
        "image-classification", RESNET, {}, {"image": (audio_samples["audio/mpeg"], "image/png")}
    )
    assert list(errors) == ["image"]
    assert "MP3" in errors["image"][0] and "PNG" in errors["image"][0]
    assert list(_errors("object-detection", None, {"image": [1, 2, 3]})) == ["image"]


def test_audio_field_given_image(png_bytes):
    errors = _errors("automatic-speech-recognition", WHISPER, {}, {"audio": (png_bytes, None)})
    assert list(errors) == ["audio"] and "PNG" in errors["audio"][0]


# --- conversions ---------------------------------------------------------------


def test_uint8_base64_data_uri_round_trip():
    forms = [
        PNG_LIST,
        PNG_B64,
        PNG_DATA_URI,
        base64.urlsafe_b64encode(PNG).decode().rstrip("="),
        base64.encodebytes(PNG).decode(),
    ]  # MIME line breaks
    for form in forms:
        _, [item] = extract_media("image-classification", RESNET, {"image": form})
        assert item == MediaInput("image", PNG, "image/png", "uint8")
        assert encode_for_upstream(item.data, "uint8") == PNG_LIST
        assert encode_for_upstream(item.data, "base64") == PNG_B64
        assert base64.b64decode(encode_for_upstream(item.data, "base64")) == PNG


def test_percent_encoded_data_uri():
    uri = "data:image/png," + "".join(f"%{b:02X}" for b in PNG)
    _, [item] = extract_media("image-classification", RESNET, {"image": uri})
    assert item.data == PNG


def test_turbo_gets_base64_whatever_the_input_form():
    for given in (list(WAV), base64.b64encode(WAV).decode()):
        rest, [item] = extract_media("automatic-speech-recognition", TURBO, {"audio": given})
        assert item.encoding == "base64"
        assert upstream_input(rest, [item]) == {"audio": base64.b64encode(WAV).decode()}
    _, [item] = extract_media(
        "automatic-speech-recognition", get_model(WHISPER), {}, {"audio": (WAV, "audio/wav")}
    )
    assert item.encoding == "uint8"
    assert upstream_input({}, [item]) == {"audio": list(WAV)}


def test_vision_llm_gains_an_image_field(png_bytes):
    model = "@cf/meta/llama-3.2-11b-vision-instruct"
    rest, [item] = extract_media(
        "text-generation", model, {"prompt": "What is it?"}, {"image": (png_bytes, "image/png")}
    )
    assert rest == {"prompt": "What is it?"} and item.encoding == "uint8"


def test_inpainting_image_and_mask_uploads(png_bytes):
    rest, media = extract_media(
        "text-to-image",
        INPAINT,
        {"prompt": "fill"},
        {"image": (png_bytes, None), "mask": (png_bytes, None)},
    )
    assert rest == {"prompt": "fill"}
    assert sorted(m.field for m in media) == ["image", "mask"]


def test_image_b64_inline_for_img2img():
    rest, [item] = extract_media("text-to-image", INPAINT, {"prompt": "x", "image_b64": PNG_B64})
    assert item.field == "image_b64" and item.encoding == "base64"
    assert upstream_input(rest, [item])["image_b64"] == PNG_B64


def test_required_media_from_upload_only(png_bytes):
    rest, [item] = extract_media("image-to-text", LLAVA, None, {"image": (png_bytes, "image/png")})
    assert rest == {} and item.field == "image"
    assert _errors("image-classification", RESNET, {}) == {"image": ["is required"]}


def test_upload_and_inline_together(png_bytes):
    errors = _errors(
        "image-classification", RESNET, {"image": PNG_LIST}, {"image": (png_bytes, None)}
    )
    assert list(errors) == ["image"]


def test_unexpected_upload(png_bytes):
    errors = _errors("text-classification", None, {"text": "x"}, {"image": (png_bytes, None)})
    assert list(errors) == ["image"]


def test_bad_base64_and_data_uri():
    assert list(_errors("image-classification", RESNET, {"image": "!!!not base64!!!"})) == ["image"]
    assert list(_errors("image-classification", RESNET, {"image": "data:image/png;base64"})) == [
        "image"
    ]
    assert list(_errors("image-classification", RESNET, {"image": "é"})) == ["image"]


def test_other_errors_reported_with_media_errors():
    errors = _errors("image-to-text", LLAVA, {"image": "garbage!", "max_tokens": "x"})
    assert set(errors) == {"image", "max_tokens"}


def test_unknown_task_and_non_object():
    assert list(_errors("nope", None, {})) == ["task"]
    assert _errors("image-classification", RESNET, [1, 2]) == {"": ["must be an object"]}


# --- size limits ---------------------------------------------------------------


def test_media_too_large_upload():
    with pytest.raises(MediaTooLarge) as info:
        extract_media(
            "image-classification", RESNET, {}, {"image": (PNG + bytes(200), None)}, max_bytes=100
        )
    assert (info.value.field, info.value.size, info.value.limit) == ("image", len(PNG) + 200, 100)


@pytest.mark.parametrize("form", ["list", "base64", "data_uri"])
def test_media_too_large_inline(form):
    data = PNG + bytes(1000)
    value = {
        "list": list(data),
        "base64": base64.b64encode(data).decode(),
        "data_uri": "data:image/png;base64," + base64.b64encode(data).decode(),
    }[form]
    with pytest.raises(MediaTooLarge) as info:
        extract_media("image-classification", RESNET, {"image": value}, max_bytes=1000)
    assert info.value.field == "image" and info.value.limit == 1000


def test_at_the_limit_is_fine():
    _, [item] = extract_media(
        "image-classification", RESNET, {"image": PNG_B64}, max_bytes=len(PNG)
    )
    assert item.size == len(PNG)


def test_default_limit_is_10_mb():
    big = PNG + bytes(10 * 1024 * 1024)
    with pytest.raises(MediaTooLarge):
        extract_media("image-classification", RESNET, {}, {"image": (big, None)})


def test_encode_for_upstream_rejects_unknown_encoding():
    with pytest.raises(ValueError):
        encode_for_upstream(b"x", "hex")
