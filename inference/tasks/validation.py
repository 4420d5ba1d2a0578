"""Validate a run's input against its model's own schema (or its task's shape).

One call: ``validate_input(task, payload, model=...)``.  A catalog model is
checked against the input schema of Cloudflare's record for it (draft-07, every
alternative included: prompt, messages, Responses ``input``, async ``requests``
batches, ...); a model outside the catalog against the run-endpoint shape(s) of
the task the caller names.  Validators are compiled once per model and cached.  Errors come back keyed by field
path (see ``InputValidationError``) with messages that name the constraint
("must be ≤ 2048", "is required", "must be one of: user, assistant, ...").

Alternatives (``oneOf``: Prompt vs Messages, string vs array of strings, the two
image-to-text forms, the two tool forms) are reported from the branch the input
most plausibly meant, not as jsonschema's wall of text for every branch.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

from jsonschema import Draft7Validator, Draft202012Validator
from jsonschema.exceptions import ValidationError

from inference.catalog import TASKS, ModelSpec, get_model
from inference.tasks.errors import WHOLE_INPUT, InputValidationError
from inference.tasks.schemas import build_schema, media_fields

# Enough to be useful, bounded so a hostile input cannot make a huge error body.
MAX_ERRORS = 50
# Byte arrays longer than this are checked in C (bytes()) and shortened before
# jsonschema sees them: a 10 MB image is 10 million list items, far too slow to
# walk item by item in Python.
FAST_BYTES_THRESHOLD = 1024

_TYPE_WORDS = {
    "string": "a string",
    "array": "an array",
    "object": "an object",
    "number": "a number",
    "integer": "an integer",
    "boolean": "a boolean",
    "null": "null",
}


def _object_branches(schema: dict[str, Any]) -> list[dict[str, Any]]:
    alternatives = schema.get("oneOf") or schema.get("anyOf") or []
    return [b for b in alternatives if isinstance(b, dict)]


def record_schema(input_schema: dict[str, Any]) -> dict[str, Any]:
    """A record's input schema made fit to validate one input with:

    * ``oneOf`` -> ``anyOf``: Cloudflare's alternatives overlap (a prompt-only
      body also fits a branch that requires nothing), and Cloudflare runs any
      input one of them accepts;
    * an object alternative that requires nothing (the async ``requests`` batch
      listing only optional fields, embedding ``pooling``-only forms) must then
      carry at least one of its own properties that no sibling has, so that it
      does not accept every input (``{"promt": "typo"}``) by itself;
    * media given as the raw request body (``format: binary``) are not JSON.
    """
    schema = copy.deepcopy(input_schema)
    distinguish_branches(schema)
    return schema


def distinguish_branches(node: Any) -> None:
    if isinstance(node, list):
        for item in node:
            distinguish_branches(item)
        return
    if not isinstance(node, dict):
        return
    props = node.get("properties")
    if isinstance(props, dict) and isinstance(props.get("required"), list):
        # A record slip (flux-2): "required" written inside "properties".
        node["properties"] = {k: v for k, v in props.items() if k != "required"}
        node["required"] = sorted({*node.get("required", ()), *props["required"]})
    for key in ("oneOf", "anyOf"):
        if key not in node:
            continue
        branches = node.pop(key)
        node["anyOf"] = branches
        objects = [b for b in branches if isinstance(b, dict) and b.get("properties")]
        for branch in objects:
            if branch.get("required"):
                continue
            others = {p for o in objects if o is not branch for p in (o.get("properties") or {})}
            own = [p for p in branch["properties"] if p not in others]
            if own and len(objects) > 1:
                branch["anyOf"] = [{"required": [p]} for p in own]
    for value in node.values():
        distinguish_branches(value)


@lru_cache(maxsize=512)
def _validator(task: str, model: str | None) -> Draft202012Validator | Draft7Validator:
    spec = get_model(model) if model else None
    if spec is not None and spec.input_schema:
        return Draft7Validator(record_schema(spec.input_schema))
    return Draft202012Validator(build_schema(task, spec.input_limits if spec else None))


def validate_input(task: str, payload: Any, *, model: str | None = None) -> dict[str, Any]:
    """Check ``payload`` (the model input, as Cloudflare's run endpoint takes it)
    against ``task``'s input shape(s) merged with the catalog ``model``'s
    ``input_limits``; return it unchanged.

    Raises ``InputValidationError``; its ``errors`` are ``{path: [message, ...]}``
    with paths relative to the input (``"messages[0].role"``, ``"image[3]"``),
    ``""`` for the input as a whole and ``"task"`` for an unknown task or a task
    the catalog model does not run.  A model outside the catalog is validated
    against the task schema alone.
    """
    if task not in TASKS:
        raise InputValidationError(
            {"task": [f"unknown task {task!r}; must be one of: {', '.join(TASKS)}"]}
        )
    spec = get_model(model) if model else None
    if spec is not None and spec.task != task:
        raise InputValidationError({"task": [f"{model} runs task {spec.task!s}, not {task}"]})
    if not isinstance(payload, dict):
        raise InputValidationError({WHOLE_INPUT: ["must be an object"]})

    candidate = _shorten_byte_arrays(task, spec, payload)
    key = model if spec is not None and (spec.input_limits or spec.input_schema) else None
    errors = _validator(task, key).iter_errors(candidate)
    rendered = render_errors(itertools.islice(errors, MAX_ERRORS * 2))
    if rendered:
        raise InputValidationError(rendered)
    return payload


def _shorten_byte_arrays(
    task: str, spec: ModelSpec | None, payload: dict[str, Any]
) -> dict[str, Any]:
    """Replace long, valid byte arrays by their first item: validity against
    any shape is unchanged (no shape bounds an array's length beyond
    ``minItems: 1``) and jsonschema then has one item to check, not millions.
    Invalid arrays are left whole so the error names the bad index."""
    shortened: dict[str, Any] | None = None
    for field in media_fields(task, spec):
        value = payload.get(field.name)
        if isinstance(value, list) and len(value) > FAST_BYTES_THRESHOLD and _valid_bytes(value):
            if shortened is None:
                shortened = dict(payload)
            shortened[field.name] = value[:1]
    return payload if shortened is None else shortened


def _valid_bytes(value: list[Any]) -> bool:
    """True when every item is an int 0-255 (not a bool: JSON true is no byte)."""
    if set(map(type, value)) != {int}:
        return False
    try:
        bytes(value)
    except ValueError:
        return False
    return True


# --- rendering -------------------------------------------------------------


def render_path(path: Iterable[Any]) -> str:
    """``["messages", 0, "role"] -> "messages[0].role"``; ``[] -> ""``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def render_errors(errors: Iterable[ValidationError]) -> dict[str, list[str]]:
    """jsonschema errors -> ``{path: [messages]}`` (deduplicated, bounded)."""
    out: dict[str, list[str]] = {}
    _collect(errors, out)
    return out


def _add(out: dict[str, list[str]], path: Iterable[Any] | str, message: str) -> None:
    key = path if isinstance(path, str) else render_path(path)
    if key not in out and len(out) >= MAX_ERRORS:
        return
    messages = out.setdefault(key, [])
    if message not in messages:
        messages.append(message)


def _collect(errors: Iterable[ValidationError], out: dict[str, list[str]]) -> None:
    for error in errors:
        if error.validator in ("oneOf", "anyOf"):
            _alternatives(error, out)
        elif error.validator == "required":
            # One error per missing property; report it at the property's own path.
            for name in error.validator_value:
                if isinstance(error.instance, dict) and name not in error.instance:
                    _add(out, [*error.absolute_path, name], "is required")
        else:
            _add(out, error.absolute_path, _message(error))


def _fmt(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def _type_words(types: Sequence[str] | str) -> str:
    if isinstance(types, str):
        types = [types]
    return " or ".join(_TYPE_WORDS.get(t, t) for t in types)


def _message(error: ValidationError) -> str:
    v = error.validator_value
    match error.validator:
        case "type":
            return f"must be {_type_words(v)}"
        case "minimum":
            return f"must be ≥ {_fmt(v)}"
        case "maximum":
            return f"must be ≤ {_fmt(v)}"
        case "exclusiveMinimum":
            return f"must be > {_fmt(v)}"
        case "exclusiveMaximum":
            return f"must be < {_fmt(v)}"
        case "minLength":
            return "must not be empty" if v == 1 else f"must be at least {v} characters long"
        case "maxLength":
            return f"must be at most {v} characters long"
        case "minItems":
            return "must not be empty" if v == 1 else f"must have at least {v} items"
        case "maxItems":
            return f"must have at most {v} items"
        case "enum":
            return "must be one of: " + ", ".join(_fmt(x) for x in v)
        case "const":
            return f"must be {_fmt(v)}"
        case "not" if isinstance(v, dict) and set(v) == {"required"}:
            return "must not include " + " and ".join(v["required"])
        case None | "false":  # a `false` subschema
            return "is not allowed"
    return error.message


def _alternatives(error: ValidationError, out: dict[str, list[str]]) -> None:
    """Report a failed oneOf/anyOf from the branch the input most likely meant."""
    branches: list[Any] = error.validator_value
    instance = error.instance
    titles = [
        b.get("title", f"#{i}") if isinstance(b, dict) else f"#{i}" for i, b in enumerate(branches)
    ]

    # Alternative forms told apart by their required fields (prompt / messages):
    # if the input carries the distinguishing fields of several, say so.
    if isinstance(instance, dict):
        required = [set(b.get("required", ())) if isinstance(b, dict) else set() for b in branches]
        common = set.intersection(*required) if required else set()
        present = [
            sorted(r - common) for r in required if (r - common) and (r - common) <= instance.keys()
        ]
        if len(present) > 1:
            names = ", ".join(name for group in present for name in group)
            _add(out, error.absolute_path, f"give exactly one of: {names} (not several)")
            return

    if not error.context:  # oneOf matched more than one branch
        _add(
            out,
            error.absolute_path,
            f"must match exactly one of: {', '.join(titles)}, but matches several",
        )
        return

    # Every branch only disagrees about this value's type: one combined message.
    if all(c.validator == "type" and not c.relative_path for c in error.context):
        types: list[str] = []
        for c in error.context:
            for t in (
                [c.validator_value] if isinstance(c.validator_value, str) else c.validator_value
            ):
                if t not in types:
                    types.append(t)
        _add(out, error.absolute_path, f"must be {_type_words(types)}")
        return

    groups: dict[int, list[ValidationError]] = {}
    for c in error.context:
        groups.setdefault(int(c.relative_schema_path[0]), []).append(c)

    def score(index: int) -> tuple[int, bool, int]:
        branch = branches[index] if isinstance(branches[index], dict) else {}
        errs = groups[index]
        # Prefer the branch whose required fields the input gives, then one whose
        # fields have the right types, then the one with the fewest complaints.
        present = sum(
            1 for r in branch.get("required", ()) if isinstance(instance, dict) and r in instance
        )
        # A type error on the value itself, or on one of its named fields; not on
        # an array item (["a", 5] is a bad array of strings, not a bad string).
        depth = 1 if isinstance(instance, dict) else 0
        mismatch = any(c.validator == "type" and len(c.relative_path) <= depth for c in errs)
        return (-present, mismatch, len(errs))

    ranked = sorted(groups, key=lambda i: (score(i), i))
    best = ranked[0]
    tied = [i for i in ranked if score(i) == score(best)]
    only_missing = all(
        c.validator == "required" and not c.relative_path for i in tied for c in groups[i]
    )
    if len(tied) > 1 and only_missing and isinstance(instance, dict):
        options = []
        for i in tied:
            missing = [n for c in groups[i] for n in c.validator_value if n not in instance]
            options.append(" and ".join(dict.fromkeys(missing)))
        _add(out, error.absolute_path, "requires " + " or ".join(options))
        return
    _collect(groups[best], out)


__all__ = ["MAX_ERRORS", "record_schema", "render_errors", "render_path", "validate_input"]
