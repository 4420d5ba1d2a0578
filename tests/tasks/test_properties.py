"""Property tests: arbitrary JSON never crashes validation."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from inference.catalog import TASKS
from inference.tasks import (
    SHAPES,
    InputValidationError,
    MediaTooLarge,
    extract_media,
    validate_input,
)
from tests.tasks.cases import FLUX, LLAMA, TURBO

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=25,
)
# Keys the shapes know, so random payloads reach deep into the schemas.
field_names = sorted({name for shape in SHAPES.values() for name in shape["properties"]})
payloads = (
    st.dictionaries(st.sampled_from(field_names) | st.text(max_size=8), json_values, max_size=6)
    | json_values
)
tasks = st.sampled_from([*TASKS, "not-a-task"])
models = st.sampled_from([None, LLAMA, FLUX, TURBO, "@cf/not/in-catalog"])


@settings(max_examples=400, deadline=None)
@given(task=tasks, model=models, payload=payloads)
def test_validate_input_only_raises_input_validation_error(task, model, payload):
    try:
        assert validate_input(task, payload, model=model) is payload
    except InputValidationError as exc:
        assert exc.errors
        assert all(
            isinstance(k, str) and v and all(isinstance(m, str) for m in v)
            for k, v in exc.errors.items()
        )


@settings(max_examples=300, deadline=None)
@given(task=tasks, model=models, payload=payloads, upload=st.none() | st.binary(max_size=64))
def test_extract_media_only_raises_its_errors(task, model, payload, upload):
    uploads = {"image": (upload, None)} if upload is not None else None
    try:
        extract_media(task, model, payload, uploads, max_bytes=32)
    except (InputValidationError, MediaTooLarge):
        pass
