"""Per-task knowledge: input schemas, validation, media inputs, result helpers.

Plain Python (no Django) so services, serializers, the compatible endpoint and
the emulator can all use it.  The public API:

* ``validate_input(task, payload, *, model=None) -> dict``
* ``extract_media(task, model, payload, uploads, *, max_bytes) -> (payload, [MediaInput])``
* ``upstream_input(payload, media)``, ``encode_for_upstream(data, encoding)``
* ``input_schema(task, *, model=None)``, ``TASK_SCHEMAS``, ``SHAPES``, ``TASK_SHAPES``
* ``media_fields(task, model)``, ``MEDIA_FIELDS``, ``sniff_content_type(data)``
* ``extract_binary_outputs(output_kind, result)``, ``normalize_output(task, result)``
* errors: ``InputValidationError`` (``.errors``: path -> messages; ``""`` = the
  whole input; ``"task"``), ``MediaTooLarge`` (413), ``BinaryOutputError``
"""

from inference.tasks.errors import (
    WHOLE_INPUT,
    InputValidationError,
    MediaTooLarge,
    TaskInputError,
    join_key,
)
from inference.tasks.media import (
    DEFAULT_MAX_BYTES,
    MediaInput,
    encode_for_upstream,
    extract_media,
    upstream_input,
)
from inference.tasks.outputs import (
    BinaryOutput,
    BinaryOutputError,
    extract_binary_outputs,
    normalize_output,
)
from inference.tasks.schemas import (
    MEDIA_FIELDS,
    SHAPE_TASKS,
    SHAPES,
    TASK_SCHEMAS,
    TASK_SHAPES,
    MediaField,
    input_schema,
    media_fields,
)
from inference.tasks.sniff import AUDIO_TYPES, IMAGE_TYPES, sniff_content_type
from inference.tasks.validation import validate_input

__all__ = [
    "AUDIO_TYPES",
    "DEFAULT_MAX_BYTES",
    "IMAGE_TYPES",
    "MEDIA_FIELDS",
    "SHAPES",
    "SHAPE_TASKS",
    "TASK_SCHEMAS",
    "TASK_SHAPES",
    "WHOLE_INPUT",
    "BinaryOutput",
    "BinaryOutputError",
    "InputValidationError",
    "MediaField",
    "MediaInput",
    "MediaTooLarge",
    "TaskInputError",
    "encode_for_upstream",
    "extract_binary_outputs",
    "extract_media",
    "input_schema",
    "join_key",
    "media_fields",
    "normalize_output",
    "sniff_content_type",
    "upstream_input",
    "validate_input",
]
