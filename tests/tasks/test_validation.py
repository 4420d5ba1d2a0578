"""validate_input: the 15 shapes, their bounds, per-model limits, error keys."""

from __future__ import annotations

import time

import pytest
from jsonschema import Draft202012Validator

from inference.catalog import TASKS
from inference.tasks import (
    SHAPE_TASKS,
    SHAPES,
    TASK_SCHEMAS,
    TASK_SHAPES,
    InputValidationError,
    input_schema,
    join_key,
    validate_input,
)
from tests.tasks.cases import (
    ALL_SHAPES,
    BGE,
    FLUX,
    INVALID_CASES,
    LLAMA,
    PNG_LIST,
    SDXL,
    TURBO,
    USER,
    VALID_CASES,
    WAV_B64,
    WHISPER,
    WIRE_ONLY_INVALID_CASES,
)


def _errors(task, payload, model=None) -> dict[str, list[str]]:
    with pytest.raises(InputValidationError) as info:
        validate_input(task, payload, model=model)
    return info.value.errors


def test_tables_cover_every_shape():
    assert set(ALL_SHAPES) == set(SHAPES)
    assert {case[0] for case in VALID_CASES} == set(SHAPES)
    for shape in SHAPES:
        assert sum(case[0] == shape for case in INVALID_CASES) >= 3, shape


@pytest.mark.parametrize(
    ("shape", "task", "model", "payload"),
    VALID_CASES,
    ids=[f"{c[0]}-{i}" for i, c in enumerate(VALID_CASES)],
)
def test_valid(shape, task, model, payload):
    assert validate_input(task, payload, model=model) == payload
    # The shape named in the table is indeed one that accepts it.
    assert not list(Draft202012Validator(input_schema(task, model=model)).iter_errors(payload))


@pytest.mark.parametrize(
    ("shape", "task", "model", "payload", "path"),
    INVALID_CASES + WIRE_ONLY_INVALID_CASES,
    ids=[
        f"{c[0]}-{c[4] or 'input'}-{i}"
        for i, c in enumerate(INVALID_CASES + WIRE_ONLY_INVALID_CASES)
    ],
)
def test_invalid(shape, task, model, payload, path):
    errors = _errors(task, payload, model)
    assert path in errors, errors
    assert all(isinstance(m, str) and m for msgs in errors.values() for m in msgs)


def test_schemas_are_valid_draft_2020_12():
    for schema in list(SHAPES.values()) + list(TASK_SCHEMAS.values()):
        Draft202012Validator.check_schema(schema)
    assert set(TASK_SCHEMAS) == set(TASKS) == set(TASK_SHAPES)
    assert set(SHAPE_TASKS) == set(SHAPES)
    assert [b["title"] for b in TASK_SCHEMAS["text-generation"]["oneOf"]] == ["Prompt", "Messages"]


def test_input_schema_is_a_copy_with_model_limits():
    schema = input_schema("text-to-image")
    schema["properties"]["prompt"]["minLength"] = 99
    assert TASK_SCHEMAS["text-to-image"]["properties"]["prompt"]["minLength"] == 1
    assert input_schema("text-to-image", model=FLUX)["properties"]["steps"]["maximum"] == 8
    audio = input_schema("automatic-speech-recognition", model=TURBO)["properties"]["audio"]
    assert audio["type"] == "string" and "items" not in audio


# --- bounds at their edges ---------------------------------------------------

EDGES = [
    # (task, model, base payload, field, ok values, rejected values, message fragment)
    ("text-to-image", SDXL, {"prompt": "x"}, "height", [256, 2048, 1024.0], [255, 2049], None),
    ("text-to-image", SDXL, {"prompt": "x"}, "width", [256, 2048], [255.9, 2049], None),
    ("text-to-image", SDXL, {"prompt": "x"}, "num_steps", [1, 20], [21, 20.5], "≤ 20"),
    ("text-to-image", SDXL, {"prompt": "x"}, "strength", [0, 1], [-0.01, 1.01], None),
    ("text-to-image", FLUX, {"prompt": "x"}, "steps", [1, 8], [9, 8.5], None),
    ("text-generation", LLAMA, {"prompt": "x"}, "temperature", [0, 5], [-0.001, 5.001], None),
    ("text-generation", LLAMA, {"prompt": "x"}, "top_k", [1, 50], [0, 51], None),
    ("text-generation", LLAMA, {"prompt": "x"}, "top_p", [0.001, 1], [0.0009, 1.1], None),
    ("text-generation", LLAMA, {"prompt": "x"}, "seed", [1, 9999999999], [0, 10000000000], None),
    ("text-generation", LLAMA, {"prompt": "x"}, "frequency_penalty", [-2, 2], [-2.1, 2.1], None),
    ("text-generation", LLAMA, {"messages": [USER]}, "presence_penalty", [-2, 2], [-3, 3], None),
    (
        "text-generation",
        LLAMA,
        {"messages": [USER]},
        "repetition_penalty",
        [0, 2],
        [-1, 2.01],
        None,
    ),
]


@pytest.mark.parametrize(
    ("task", "model", "base", "field", "ok", "bad", "fragment"),
    EDGES,
    ids=[f"{e[3]}-{e[1].rsplit('/', 1)[-1]}" for e in EDGES],
)
def test_bounds_at_edges(task, model, base, field, ok, bad, fragment):
    # The run-endpoint shape's bounds (a model outside the catalog); flux's own
    # record carries its steps bound.
    model = model if model == FLUX else None
    for value in ok:
        validate_input(task, {**base, field: value}, model=model)
    for value in bad:
        errors = _errors(task, {**base, field: value}, model)
        assert list(errors) == [field], errors
        if fragment:
            assert any(fragment in m for m in errors[field]), errors


def test_uint8_edges():
    validate_input("image-classification", {"image": [0, 255]})
    assert "image[1]" in _errors("image-classification", {"image": [0, 256]})
    assert "image[0]" in _errors("image-classification", {"image": [-1]})
    assert "image[0]" in _errors("image-classification", {"image": ["1"]})


# --- per-model limits --------------------------------------------------------


def test_flux_steps_over_8_rejected_but_fine_for_other_models():
    assert _errors("text-to-image", {"prompt": "x", "steps": 9}, FLUX) == {"steps": ["must be ≤ 8"]}
    validate_input("text-to-image", {"prompt": "x", "steps": 9}, model=SDXL)


def test_embeddings_batch_limit():
    validate_input("text-embeddings", {"text": ["t"] * 100}, model=BGE)
    assert _errors("text-embeddings", {"text": ["t"] * 101}, BGE) == {
        "text": ["must have at most 100 items"]
    }
    # Without a model there is no batch limit (the page has none).
    validate_input("text-embeddings", {"text": ["t"] * 101})


def test_turbo_audio_must_be_base64_string():
    assert _errors("automatic-speech-recognition", {"audio": [1, 2, 3]}, TURBO) == {
        "audio": ["must be a string"]
    }
    validate_input("automatic-speech-recognition", {"audio": WAV_B64}, model=TURBO)
    # And the other whisper models take the byte array, not a string.
    assert "audio" in _errors("automatic-speech-recognition", {"audio": WAV_B64}, WHISPER)


def test_unknown_model_uses_task_schema():
    validate_input("text-to-image", {"prompt": "x", "steps": 50}, model="@cf/someone/new-model")


# --- error keys and messages -------------------------------------------------


def test_unknown_task_keyed_task():
    errors = _errors("text-to-video", {})
    assert list(errors) == ["task"]
    assert "text-generation" in errors["task"][0]


def test_model_of_another_task_keyed_task():
    assert list(_errors("text-generation", {"prompt": "x"}, WHISPER)) == ["task"]


def test_messages_name_the_constraint():
    errors = _errors(
        "text-generation",
        {
            "messages": [{"role": "robot", "content": "x"}, {"content": "y"}],
            "temperature": 9,
        },
    )
    assert errors == {
        "messages[0].role": ["must be one of: user, assistant, system, tool"],
        "messages[1].role": ["is required"],
        "temperature": ["must be ≤ 5"],
    }
    assert _errors("text-to-image", {"prompt": "x", "width": 4096}) == {"width": ["must be ≤ 2048"]}
    assert _errors("summarization", {"input_text": ""}) == {"input_text": ["must not be empty"]}


def test_prompt_or_messages_errors_are_short():
    assert _errors("text-generation", {}) == {"": ["requires prompt or messages"]}
    both = _errors("text-generation", {"prompt": "x", "messages": [USER]})
    assert both == {"": ["give exactly one of: prompt, messages (not several)"]}
    # An invalid prompt next to valid messages is still "both", not silently accepted.
    assert list(_errors("text-generation", {"prompt": "", "messages": [USER]})) == [""]
    # The branch the caller meant is reported, not every branch.
    assert _errors("text-generation", {"messages": [{"role": "user"}]}) == {
        "messages[0].content": ["is required"]
    }
    assert _errors("text-generation", {"prompt": 5}) == {"prompt": ["must be a string"]}


def test_string_or_array_alternatives():
    assert _errors("text-embeddings", {"text": 5}) == {"text": ["must be a string or an array"]}
    assert _errors("text-embeddings", {"text": ["a", None]}) == {"text[1]": ["must be a string"]}


def test_image_to_text_picks_the_right_form():
    # A base64 image without a prompt: the base64 form needs the prompt.
    assert _errors("image-to-text", {"image": "QUJD"}) == {"prompt": ["is required"]}
    assert _errors("image-to-text", {}) == {"image": ["is required"]}


def test_whole_input_key_and_prefixing():
    exc = pytest.raises(InputValidationError, validate_input, "translation", "hello").value
    assert exc.errors == {"": ["must be an object"]}
    assert exc.prefixed() == {"input": ["must be an object"]}
    assert join_key("input", "messages[0].role") == "input.messages[0].role"
    assert join_key("input", "[0]") == "input[0]"
    exc = pytest.raises(InputValidationError, validate_input, "nope", {}).value
    assert list(exc.prefixed()) == ["task"]
    assert "Invalid input" in str(exc)


def test_error_count_is_bounded():
    errors = _errors("image-classification", {"image": [-1] * 5000})
    assert 1 <= len(errors) <= 50


def test_returns_payload_unchanged():
    payload = {"image": PNG_LIST * 200}
    assert validate_input("image-classification", payload) is payload
    assert len(payload["image"]) == len(PNG_LIST) * 200


def test_large_byte_array_is_fast():
    payload = {"image": list(range(256)) * 8000}  # ~2 MB as a JSON list of ints
    validate_input("image-classification", payload)  # warm the validator cache
    start = time.perf_counter()
    validate_input("image-classification", payload)
    assert time.perf_counter() - start < 1.0


def test_large_invalid_byte_array_names_the_index():
    image = list(range(256)) * 20
    image[3000] = 999
    assert _errors("image-classification", {"image": image}) == {"image[3000]": ["must be ≤ 255"]}
    image[3000] = True
    assert "image[3000]" in _errors("image-classification", {"image": image})
