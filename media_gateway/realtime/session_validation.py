"""OpenAI-style validation errors for Realtime session configurations and client events.

:class:`SessionConfigError` is shaped like the errors the OpenAI Realtime API returns: ``code`` is one
of ``unknown_parameter``, ``invalid_type``, ``invalid_value`` or ``missing_required_parameter``;
``param`` is the full path as OpenAI writes it (``session.tools[0].name``); ``message`` follows
OpenAI's wording. The builders (:func:`unknown_parameter`, :func:`wrong_type`, …) are shared by the
pydantic error conversion below and by the gateway's own rules (``session_rules``).

:func:`error_from_validation` turns a pydantic ``ValidationError`` raised by an ``openai`` SDK model
into one such error. The SDK's unions have no discriminator, so pydantic reports an error for every
member; the conversion picks the member the input meant (by its ``type`` or its JSON kind, see
``sdk_models``), validates the input against that member alone and reports that member's error.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final, Literal, get_args, get_origin

from pydantic import BeforeValidator, ValidationError
from pydantic_core import ErrorDetails, PydanticCustomError

from .sdk_models import (
    adapter,
    annotation_at,
    describe_kinds,
    is_model,
    json_kind,
    json_kinds,
    members,
    type_tags,
    undeclared_key,
    union_site,
)

__all__ = [
    "ErrorCode",
    "SessionConfigError",
    "error_from_validation",
    "format_param",
    "invalid_value",
    "json_kind",
    "missing_parameter",
    "not_null",
    "out_of_range",
    "too_long",
    "too_short",
    "unknown_parameter",
    "unsupported_value",
    "wrong_type",
]

ErrorCode = Literal["unknown_parameter", "invalid_type", "invalid_value", "missing_required_parameter"]

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


def not_null(expected: str) -> BeforeValidator:
    """Reject an explicit JSON ``null`` with ``invalid_type`` ("expected integer, got null").

    For the gateway's own request models (``expires_after``), whose fields may be omitted but not null.
    """

    def check(value: object) -> object:
        if value is None:
            raise PydanticCustomError("invalid_type", "expected {expected}", {"expected": expected})
        return value

    return BeforeValidator(check)


# ---------------------------------------------------------------------------------------------
# error builders (OpenAI's wording)


def format_param(prefix: str, path: Sequence[int | str]) -> str | None:
    """``prefix`` + path as OpenAI writes it: ``session.tools[0].parameters``."""
    text = prefix.rstrip(".")
    for seg in path:
        if isinstance(seg, int):
            text += f"[{seg}]"
        else:
            text = f"{text}.{seg}" if text else seg
    return text or None


def _shown(param: str | None) -> str:
    return param or "request body"


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


def unknown_parameter(param: str | None) -> SessionConfigError:
    return SessionConfigError("unknown_parameter", param, f"Unknown parameter: '{_shown(param)}'.")


def missing_parameter(param: str | None) -> SessionConfigError:
    return SessionConfigError(
        "missing_required_parameter", param, f"Missing required parameter: '{_shown(param)}'."
    )


def wrong_type(param: str | None, expected: str, value: object) -> SessionConfigError:
    return SessionConfigError(
        "invalid_type",
        param,
        f"Invalid type for '{_shown(param)}': expected {expected}, got {json_kind(value)}",
    )


def invalid_value(param: str | None, detail: str) -> SessionConfigError:
    return SessionConfigError("invalid_value", param, f"Invalid '{_shown(param)}': {detail}")


def unsupported_value(param: str | None, value: object, supported: Sequence[object]) -> SessionConfigError:
    quoted = [f"'{option}'" if isinstance(option, str) else str(option) for option in supported]
    return SessionConfigError(
        "invalid_value",
        param,
        f"Invalid value: {_echo(value)}. Supported values are: {_join_supported(quoted)}.",
    )


def out_of_range(param: str | None, value: object, operator: str, bound: object) -> SessionConfigError:
    """``operator`` is the bound the value broke: ``>=``/``>`` (minimum) or ``<=``/``<`` (maximum)."""
    number = "integer" if isinstance(value, int) and not isinstance(value, bool) else "decimal"
    what = "below minimum value" if operator.startswith(">") else "above maximum value"
    return invalid_value(
        param,
        f"{number} {what}. Expected a value {operator} {bound}, but got {_echo(value)} instead.",
    )


def too_long(param: str | None, value: object, maximum: object) -> SessionConfigError:
    if isinstance(value, str):
        return invalid_value(
            param,
            f"string too long. Expected a string with maximum length {maximum}, but got a string "
            f"with length {len(value)} instead.",
        )
    length = len(value) if isinstance(value, list | dict) else "?"
    return invalid_value(
        param,
        f"array too long. Expected an array with maximum length {maximum}, but got an array with "
        f"length {length} instead.",
    )


def too_short(param: str | None, value: object, minimum: object) -> SessionConfigError:
    if isinstance(value, str):
        return invalid_value(
            param,
            f"empty string. Expected a string with minimum length {minimum}, but got an empty string "
            "instead.",
        )
    length = len(value) if isinstance(value, list | dict) else "?"
    return invalid_value(
        param,
        f"array too short. Expected an array with minimum length {minimum}, but got an array with "
        f"length {length} instead.",
    )


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

_RANGE_ERRORS: Final[dict[str, tuple[str, str]]] = {
    # pydantic type: (ctx key, operator)
    "greater_than_equal": ("ge", ">="),
    "greater_than": ("gt", ">"),
    "less_than_equal": ("le", "<="),
    "less_than": ("lt", "<"),
}


def _split_expected(expected: str) -> list[str]:
    """Split pydantic's "'a', 'b' or 'c'" into ["'a'", "'b'", "'c'"]."""
    head, sep, last = expected.rpartition(" or ")
    parts = [*head.split(", "), last] if sep else expected.split(", ")
    return [p.strip() for p in parts if p.strip()]


def _convert(err: ErrorDetails, param: str | None) -> SessionConfigError:
    """One pydantic error whose ``loc`` is a plain JSON path (no union member names in it)."""
    etype = err["type"]
    ctx: dict[str, Any] = dict(err.get("ctx") or {})
    value = err.get("input")
    if etype == "extra_forbidden":
        return unknown_parameter(param)
    if etype == "missing":
        return missing_parameter(param)
    if etype == "invalid_type":  # not_null: msg is "expected <kind>"
        return SessionConfigError(
            "invalid_type", param, f"Invalid type for '{_shown(param)}': {err['msg']}, got {json_kind(value)}"
        )
    if etype in _TYPE_ERRORS:
        return wrong_type(param, _TYPE_ERRORS[etype], value)
    if etype == "literal_error":
        quoted = _split_expected(str(ctx.get("expected", "")))
        return SessionConfigError(
            "invalid_value",
            param,
            f"Invalid value: {_echo(value)}. Supported values are: {_join_supported(quoted)}.",
        )
    if etype in _RANGE_ERRORS:
        key, operator = _RANGE_ERRORS[etype]
        return out_of_range(param, value, operator, ctx.get(key))
    if etype in ("string_too_long", "too_long"):
        return too_long(param, value, ctx.get("max_length"))
    if etype in ("string_too_short", "too_short"):
        return too_short(param, value, ctx.get("min_length"))
    return SessionConfigError("invalid_value", param, f"Invalid value for '{_shown(param)}': {err['msg']}.")


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


def _pick_member(annotation: Any, value: object, param: str | None) -> Any | SessionConfigError:
    """The member of a union the input meant, or the error that says why none fits.

    By JSON kind first (``"voice": 3`` fits neither string nor object); for an object, by its
    ``type`` when the object members declare one (the tag of the SDK's object unions).
    """
    fitting = [m for m in members(annotation) if json_kind(value) in json_kinds(m)]
    if not fitting:
        return wrong_type(param, describe_kinds(annotation), value)
    by_tag = {tag: m for m in fitting if is_model(m) for tag in type_tags(m)}
    if isinstance(value, dict) and by_tag:
        type_param = format_param(param or "", ["type"])
        if "type" not in value:
            return missing_parameter(type_param)
        tag = value["type"]
        if not isinstance(tag, str):
            return wrong_type(type_param, "string", tag)
        if tag not in by_tag:
            return unsupported_value(type_param, tag, list(by_tag))
        return by_tag[tag]
    open_members = [m for m in fitting if get_origin(m) is not Literal]
    if open_members:
        return open_members[0]
    return unsupported_value(param, value, [v for m in fitting for v in get_args(m)])


def _undeclared_on(root: Any, data: object, path: Sequence[int | str]) -> tuple[int | str, ...] | None:
    """An undeclared field in an object on the way to ``path`` (the shallowest), or None.

    The SDK's models accept undeclared fields, so pydantic never reports them; upstream reports
    an unknown parameter before other errors (e.g. a beta-shaped object that also lacks a field).
    """
    for depth in range(len(path) + 1):
        here = tuple(path[:depth])
        key = undeclared_key(annotation_at(root, here), _lookup(data, here))
        if key is not None:
            return (*here, key)
    return None


def error_from_validation(exc: ValidationError, root: Any, data: object, prefix: str) -> SessionConfigError:
    """The one error to report for ``exc``, raised validating ``data`` against ``root``.

    ``root`` is the model (or annotation) ``data`` was validated against; ``prefix`` (e.g.
    ``"session."``) is prepended to every param. An unknown parameter is reported first, as
    upstream does: one the gateway's own strict models reject, or an undeclared field of an SDK
    model on the way to pydantic's first error; otherwise that error.
    """
    errors = exc.errors(include_url=False)
    if not errors:  # pragma: no cover - pydantic never raises an empty ValidationError
        return SessionConfigError("invalid_value", prefix.rstrip(".") or None, "Invalid request.")
    err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc = tuple(err["loc"])
    site = union_site(root, loc)
    path = loc if site is None else loc[:site]
    unknown = _undeclared_on(root, data, path)
    if unknown is not None:
        return unknown_parameter(format_param(prefix, unknown))
    if site is None:
        return _convert(err, format_param(prefix, loc))
    param = format_param(prefix, path)
    annotation = annotation_at(root, path)
    value = _lookup(data, path)
    member = _pick_member(annotation, value, param)
    if isinstance(member, SessionConfigError):
        return member
    try:
        adapter(member).validate_python(value, strict=True)
    except ValidationError as inner:
        return error_from_validation(inner, member, value, f"{param}." if param else "")
    # Not reached: pydantic's smart union tries every member with the same strictness.
    return SessionConfigError("invalid_value", param, f"Invalid value for '{_shown(param)}'.")
