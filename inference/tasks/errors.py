"""Errors raised while checking a run's input.

Plain Python (no Django, no DRF) so the tasks package stays importable
anywhere; the API layer turns them into 400 / 413 responses.  They live
outside ``inference.exceptions.InferenceError`` on purpose: that tree is for
failures talking to Workers AI, these are the caller's mistakes and are
raised before anything is stored or sent.
"""

from __future__ import annotations

# Key of errors about the input as a whole (not an object; neither/both of the
# alternative forms).  The API prefixes every key with "input": this one
# becomes plain "input".
WHOLE_INPUT = ""


def join_key(prefix: str, key: str) -> str:
    """``join_key("input", "messages[0].role") -> "input.messages[0].role"``;
    ``join_key("input", "") -> "input"``."""
    if not key:
        return prefix
    if not prefix:
        return key
    return f"{prefix}{key}" if key.startswith("[") else f"{prefix}.{key}"


class TaskInputError(ValueError):
    """Root of the errors below."""


class InputValidationError(TaskInputError):
    """The input does not match its task's schema (or the model's limits).

    ``errors`` maps a field path, relative to the input, to readable messages:

    * ``"text"``, ``"messages[0].role"``, ``"image[3]"``, ``"tools[1].function.name"``
    * ``""`` (``WHOLE_INPUT``) for the input as a whole: not an object, or
      neither / both of the alternative forms (text generation's ``prompt`` vs
      ``messages``)
    * ``"task"`` for an unknown task or one the model does not run
    * ``"model"`` is never used here (the model need not be in the catalog)

    Use ``prefixed("input")`` to get keys ready for a DRF error body.
    """

    def __init__(self, errors: dict[str, list[str]]) -> None:
        self.errors = errors
        super().__init__(self._summary())

    def _summary(self) -> str:
        parts = [f"{key or '<input>'}: {'; '.join(msgs)}" for key, msgs in self.errors.items()]
        return "Invalid input: " + " | ".join(parts)

    def prefixed(self, prefix: str = "input") -> dict[str, list[str]]:
        """The errors with every key placed under ``prefix`` (see ``join_key``);
        ``task`` stays top-level."""
        return {
            (key if key == "task" else join_key(prefix, key)): msgs
            for key, msgs in self.errors.items()
        }


class MediaTooLarge(TaskInputError):
    """A media file is over the size limit (the API answers 413)."""

    def __init__(self, field: str, size: int, limit: int) -> None:
        self.field = field
        self.size = size
        self.limit = limit
        super().__init__(f"{field}: {size} bytes is over the limit of {limit} bytes")
