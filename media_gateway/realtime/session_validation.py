"""OpenAI-style validation errors for Realtime session configuration.

Turns pydantic ``ValidationError``s raised by the models in :mod:`session_config` into a single
:class:`SessionConfigError` shaped like the errors the OpenAI Realtime API returns (§7 of the wire
reference): ``code`` is one of ``unknown_parameter``, ``invalid_type``, ``invalid_value`` or
``missing_required_parameter``; ``param`` is the full dotted path as OpenAI writes it
(``session.tools[0].name``); ``message`` follows OpenAI's wording.

Also holds the small annotated-type helpers the models use: null rejection with an OpenAI-style
``invalid_type``, JSON-kind discriminators for ``str | object`` style unions, and a size/depth bound
for free-form JSON (tool parameter schemas, tracing metadata, prompt variables).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, Discriminator, ValidationError
from pydantic_core import ErrorDetails, PydanticCustomError

__all__ = [
    "MAX_JSON_DEPTH",
    "MAX_JSON_NODES",
    "ErrorCode",
    "SessionConfigError",
    "bounded_json",
    "json_kind",
    "kind_discriminator",
    "not_null",
    "session_config_error_from_validation",
]

ErrorCode = Literal["unknown_parameter", "invalid_type", "invalid_value", "missing_required_parameter"]

MAX_JSON_DEPTH: Final = 32
"""Deepest nesting accepted in free-form JSON (tool ``parameters``, tracing ``metadata``…)."""
MAX_JSON_NODES: Final = 20_000
"""Most values (objects, arrays and scalars together) accepted in one free-form JSON value."""
_MAX_ECHO_CHARS: Final = 80


class SessionConfigError(Exception):
    """A client error in a session configuration, in OpenAI's ``error`` shape.

    ``param`` is ``None`` only when the whole request body is wrong (e.g. not a JSON object).
    """

    http_status: Final = 400

    def __init__(self, code: ErrorCode, param: str | None, message: str) -> None:
        super().__init__(message)
        self.code: ErrorCode = code
        self.param: str | None = param
        self.message: str = message

    def to_error(self) -> dict[str, Any]:
        """The ``error`` object for an HTTP error body or a Realtime ``error`` event.

        The caller adds ``event_id`` (the client event's id) for WebSocket/data-channel errors.
        """
        return {
            "type": "invalid_request_error",
            "code": self.code,
            "message": self.message,
            "param": self.param,
        }

    def __repr__(self) -> str:
        return f"SessionConfigError(code={self.code!r}, param={self.param!r}, message={self.message!r})"


# ---------------------------------------------------------------------------------------------
# JSON kinds and annotated helpers used by the models


def json_kind(value: object) -> str:
    """The JSON type name of a decoded JSON value, as used in OpenAI's messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list | tuple):
        return "array"
    return type(value).__name__


def not_null(expected: str) -> BeforeValidator:
    """Reject an explicit JSON ``null`` with ``invalid_type`` ("expected boolean, got null").

    Used on optional fields that OpenAI does not declare nullable: the field may be omitted, but
    ``null`` is a type error upstream (e.g. ``turn_detection.create_response``).
    """

    def check(value: object) -> object:
        if value is None:
            raise PydanticCustomError("invalid_type", "expected {expected}", {"expected": expected})
        return value

    return BeforeValidator(check)


def kind_discriminator(expected: str, *kinds: str) -> Discriminator:
    """A discriminator that picks a union member by the input's JSON kind.

    Members are tagged with JSON kind names (``Tag("string")``, ``Tag("object")``…). Input of any
    other kind becomes ``invalid_type`` with ``expected`` in the message, instead of one pydantic
    error per union member.
    """
    allowed = frozenset(kinds)

    def pick(value: Any) -> str | None:
        # Validation sees JSON; serialization sees the validated models.
        kind = "object" if isinstance(value, BaseModel) else json_kind(value)
        return kind if kind in allowed else None

    return Discriminator(
        pick,
        custom_error_type="invalid_type",
        custom_error_message=f"expected {expected}",
    )


def _json_size(value: object) -> tuple[int, int]:
    """(max depth, node count) of a JSON value, iteratively (no recursion limit issues)."""
    max_depth = 0
    nodes = 0
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        current, depth = stack.pop()
        nodes += 1
        if nodes > MAX_JSON_NODES or depth > MAX_JSON_DEPTH:
            return depth, nodes
        max_depth = max(max_depth, depth)
        if isinstance(current, dict):
            stack.extend((child, depth + 1) for child in current.values())
        elif isinstance(current, list):
            stack.extend((child, depth + 1) for child in current)
    return max_depth, nodes


def _check_bounded(value: Any) -> Any:
    depth, nodes = _json_size(value)
    if depth > MAX_JSON_DEPTH:
        raise PydanticCustomError(
            "invalid_value",
            "{detail}",
            {"detail": f"object nested too deeply. Expected at most {MAX_JSON_DEPTH} levels of nesting."},
        )
    if nodes > MAX_JSON_NODES:
        raise PydanticCustomError(
            "invalid_value",
            "{detail}",
            {"detail": f"object too large. Expected at most {MAX_JSON_NODES} values."},
        )
    return value


def bounded_json() -> AfterValidator:
    """Bound depth and size of a free-form JSON value (after its top-level type is checked)."""
    return AfterValidator(_check_bounded)


# ---------------------------------------------------------------------------------------------
# pydantic error -> OpenAI error

_TYPE_ERRORS: Final[dict[str, str]] = {
    "bool_type": "boolean",
    "bool_parsing": "boolean",
    "int_type": "integer",
    "int_parsing": "integer",
    "int_from_float": "integer",
    "float_type": "number",
    "float_parsing": "number",
    "string_type": "string",
    "dict_type": "object",
    "model_type": "object",
    "model_attributes_type": "object",
    "list_type": "array",
    "tuple_type": "array",
    "set_type": "array",
}

_RANGE_ERRORS: Final[dict[str, tuple[str, str, str]]] = {
    # pydantic type: (ctx key, "below minimum"/"above maximum", operator)
    "greater_than_equal": ("ge", "below minimum value", ">="),
    "greater_than": ("gt", "below minimum value", ">"),
    "less_than_equal": ("le", "above maximum value", "<="),
    "less_than": ("lt", "above maximum value", "<"),
}

# Preference when pydantic reports several problems: an unknown parameter (typically a beta-shaped
# field) is reported first, as upstream does; otherwise pydantic's order (declaration order).
_PRIORITY: Final[dict[str, int]] = {"unknown_parameter": 0}


def _echo(value: object) -> str:
    """A value as OpenAI quotes it in messages: strings in single quotes, the rest as JSON."""
    if isinstance(value, str):
        text = value if len(value) <= _MAX_ECHO_CHARS else value[:_MAX_ECHO_CHARS] + "…"
        return f"'{text}'"
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= _MAX_ECHO_CHARS else text[:_MAX_ECHO_CHARS] + "…"


def _join_supported(quoted: Sequence[str]) -> str:
    """'a', 'b', and 'c' (OpenAI's "Supported values are: …" list)."""
    if len(quoted) <= 1:
        return "".join(quoted)
    if len(quoted) == 2:
        return f"{quoted[0]} and {quoted[1]}"
    return ", ".join(quoted[:-1]) + f", and {quoted[-1]}"


def _split_expected(expected: str) -> list[str]:
    """Split pydantic's "'a', 'b' or 'c'" into ["'a'", "'b'", "'c'"]."""
    head, sep, last = expected.rpartition(" or ")
    parts = [*head.split(", "), last] if sep else expected.split(", ")
    return [p.strip() for p in parts if p.strip()]


def _path(loc: tuple[int | str, ...], data: object) -> list[int | str]:
    """Map a pydantic ``loc`` to the JSON path in ``data``, dropping union tags.

    Pydantic inserts the chosen tag of a tagged union into ``loc`` (e.g. ``('format', 'audio/pcm',
    'rate')`` or ``('tool_choice', 'object', 'function', 'name')``). A segment is taken as a tag
    when it equals the current value's JSON kind (callable discriminators) or its ``type`` (field
    discriminators); each is skipped at most once per level, and never when it is the last segment
    and a key of the value, so a real key equal to a tag survives.
    """
    out: list[int | str] = []
    current: object = data
    skipped: set[str] = set()
    last = len(loc) - 1
    for index, seg in enumerate(loc):
        if isinstance(seg, str) and seg not in skipped:
            is_kind_tag = seg == json_kind(current)
            is_type_tag = isinstance(current, dict) and current.get("type") == seg
            if is_type_tag and index == last and isinstance(current, dict) and seg in current:
                is_type_tag = False  # a real key that happens to equal the type, e.g. retention_ratio
            if is_kind_tag or is_type_tag:
                skipped.add(seg)
                continue
        out.append(seg)
        skipped = set()
        if isinstance(current, dict):
            current = current.get(seg)
        elif isinstance(current, list) and isinstance(seg, int) and 0 <= seg < len(current):
            current = current[seg]
        else:
            current = None
    return out


def _lookup(data: object, path: Sequence[int | str]) -> object:
    current = data
    for seg in path:
        if isinstance(current, dict):
            current = current.get(seg)
        elif isinstance(current, list) and isinstance(seg, int) and 0 <= seg < len(current):
            current = current[seg]
        else:
            return None
    return current


def format_param(prefix: str, path: Sequence[int | str]) -> str | None:
    """``prefix`` + path as OpenAI writes it: ``session.tools[0].parameters``."""
    text = prefix.rstrip(".")
    for seg in path:
        if isinstance(seg, int):
            text += f"[{seg}]"
        else:
            text = f"{text}.{seg}" if text else seg
    return text or None


def _convert(err: ErrorDetails, data: object, prefix: str) -> SessionConfigError:
    etype = err["type"]
    ctx: dict[str, Any] = dict(err.get("ctx") or {})
    value = err.get("input")
    path = _path(tuple(err["loc"]), data) + list(ctx.get("subpath", ()))
    param = format_param(prefix, path)
    shown = param or "request body"

    if etype == "extra_forbidden":
        return SessionConfigError("unknown_parameter", param, f"Unknown parameter: '{shown}'.")
    if etype in ("missing", "missing_required_parameter"):
        return SessionConfigError(
            "missing_required_parameter", param, f"Missing required parameter: '{shown}'."
        )
    if etype == "union_tag_not_found":
        tag_param = format_param(prefix, [*path, "type"])
        return SessionConfigError(
            "missing_required_parameter", tag_param, f"Missing required parameter: '{tag_param}'."
        )
    if etype == "invalid_type":  # ours (not_null, kind_discriminator): msg is "expected <kinds>"
        return SessionConfigError(
            "invalid_type", param, f"Invalid type for '{shown}': {err['msg']}, got {json_kind(value)}"
        )
    if etype in _TYPE_ERRORS:
        return SessionConfigError(
            "invalid_type",
            param,
            f"Invalid type for '{shown}': expected {_TYPE_ERRORS[etype]}, got {json_kind(value)}",
        )
    if etype == "literal_error":
        supported = _join_supported(_split_expected(str(ctx.get("expected", ""))))
        return SessionConfigError(
            "invalid_value", param, f"Invalid value: {_echo(value)}. Supported values are: {supported}."
        )
    if etype == "union_tag_invalid":
        tag_value = _lookup(data, [*path, "type"])
        if not isinstance(tag_value, str):
            tag_param = format_param(prefix, [*path, "type"])
            return SessionConfigError(
                "invalid_type",
                tag_param,
                f"Invalid type for '{tag_param}': expected string, got {json_kind(tag_value)}",
            )
        supported = _join_supported(_split_expected(str(ctx.get("expected_tags", ""))))
        tag_param = format_param(prefix, [*path, "type"])
        return SessionConfigError(
            "invalid_value",
            tag_param,
            f"Invalid value: {_echo(ctx.get('tag'))}. Supported values are: {supported}.",
        )
    if etype in _RANGE_ERRORS:
        key, what, op = _RANGE_ERRORS[etype]
        number = "integer" if isinstance(value, int) and not isinstance(value, bool) else "decimal"
        return SessionConfigError(
            "invalid_value",
            param,
            f"Invalid '{shown}': {number} {what}. Expected a value {op} {ctx.get(key)}, "
            f"but got {_echo(value)} instead.",
        )
    if etype == "string_too_long":
        length = len(value) if isinstance(value, str) else "?"
        return SessionConfigError(
            "invalid_value",
            param,
            f"Invalid '{shown}': string too long. Expected a string with maximum length "
            f"{ctx.get('max_length')}, but got a string with length {length} instead.",
        )
    if etype == "string_too_short":
        return SessionConfigError(
            "invalid_value",
            param,
            f"Invalid '{shown}': empty string. Expected a string with minimum length "
            f"{ctx.get('min_length')}, but got an empty string instead.",
        )
    if etype in ("too_long", "too_short"):
        bound = "maximum" if etype == "too_long" else "minimum"
        return SessionConfigError(
            "invalid_value",
            param,
            f"Invalid '{shown}': array too {'long' if etype == 'too_long' else 'short'}. Expected an array "
            f"with {bound} length {ctx.get(f'{bound[:3]}_length')}, but got an array with length "
            f"{ctx.get('actual_length')} instead.",
        )
    if etype == "string_pattern_mismatch":
        return SessionConfigError(
            "invalid_value",
            param,
            f"Invalid '{shown}': string does not match pattern. Expected a string that matches the "
            f"pattern '{ctx.get('pattern')}'.",
        )
    if etype == "invalid_value":
        return SessionConfigError(
            "invalid_value", param, f"Invalid '{shown}': {ctx.get('detail', err['msg'])}"
        )
    if etype == "enum":
        return SessionConfigError(
            "invalid_value",
            param,
            f"Invalid value: {_echo(value)}. Supported values are: {ctx.get('expected')}.",
        )
    return SessionConfigError("invalid_value", param, f"Invalid value for '{shown}': {err['msg']}.")


def session_config_error_from_validation(
    exc: ValidationError, data: object, prefix: str
) -> SessionConfigError:
    """The one error to report for ``exc`` (raised validating ``data``), with params under ``prefix``."""
    converted = [_convert(err, data, prefix) for err in exc.errors(include_url=False)]
    if not converted:  # pragma: no cover - pydantic never raises an empty ValidationError
        return SessionConfigError("invalid_value", prefix.rstrip(".") or None, "Invalid request.")
    return min(converted, key=lambda e: _PRIORITY.get(e.code, 1))
