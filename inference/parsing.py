"""A JSON parser for hostile bodies: bounded nesting, no NUL characters.

DRF's JSONParser hands the body to ``json.loads``, which recurses: a body of
100 000 ``[`` raises RecursionError — not a ValueError — and the request ends in
a 500.  PostgreSQL's jsonb refuses ``\\u0000`` inside strings, NaN and
infinities, more 500s at save time.  All are refused here with a 400.
"""

from __future__ import annotations

import codecs
import json
import math
import re
from typing import Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from .conf import inference_settings

# A JSON string literal; replaced by "" before counting brackets, so brackets
# inside strings do not count.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)  # unrolled: fast on long strings
_BRACKETS = re.compile(r"[\[\]{}]")


class JSONTooDeep(ValueError):
    pass


def json_depth(text: str, stop_above: int | None = None) -> int:
    """Deepest nesting of arrays/objects in ``text``, without recursion.
    ``stop_above``: return as soon as the depth exceeds it (a million ``[`` are
    refused after the 65th)."""
    depth = deepest = 0
    for match in _BRACKETS.finditer(_STRING.sub('""', text)):
        if match.group() in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if stop_above is not None and deepest > stop_above:
                    return deepest
        else:
            depth -= 1
    return deepest


def exceeds_depth(text: str, limit: int) -> bool:
    # Fast path in C: fewer opening brackets than the limit cannot nest deeper
    # (a 10 MB byte array has two), so the scan only runs on bracket-heavy bodies.
    if text.count("[") + text.count("{") <= limit:
        return False
    return json_depth(text, stop_above=limit) > limit


def _reject_constant(name: str) -> Any:
    # NaN / Infinity are not JSON (DRF's STRICT_JSON refuses them too) and
    # PostgreSQL's jsonb cannot store them: a 500 at save time otherwise.
    raise ValueError(f"{name} is not valid JSON.")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):  # 1e400 parses to inf: the same trap as Infinity
        raise ValueError(f"Number out of range: {text[:32]}")
    return value


def loads(text: str, *, max_depth: int | None = None) -> Any:
    """``json.loads`` that raises ValueError (never RecursionError) for hostile text."""
    limit = int(max_depth if max_depth is not None else inference_settings.MAX_JSON_DEPTH)
    if exceeds_depth(text, limit):
        raise JSONTooDeep(f"JSON nested deeper than {limit} levels.")
    try:
        return json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except RecursionError as exc:  # belt and braces: a limit above Python's own
        raise JSONTooDeep("JSON nested too deeply.") from exc


class SafeJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None) -> Any:
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = codecs.getreader(encoding)(stream).read()
        except (UnicodeError, LookupError) as exc:
            raise ParseError(f"JSON parse error - body is not valid {encoding}.") from exc
        try:
            return loads(text)
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from exc
