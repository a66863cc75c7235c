"""Bounds on single JSON values, for the gateway's session rules (``session_rules.LIMITS``).

Each bound applies only to the JSON kinds it names (``Range`` to numbers, ``Text`` to strings…), so
one field may carry bounds for each of its alternatives (``max_output_tokens``: 1-4096 or ``"inf"``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Protocol

from .session_validation import (
    SessionConfigError,
    invalid_value,
    out_of_range,
    too_long,
    too_short,
    wrong_type,
)

__all__ = ["MAX_JSON_DEPTH", "MAX_JSON_NODES", "Items", "JsonObject", "Limit", "Matches", "Range", "Text"]

MAX_JSON_DEPTH: Final = 32
"""Deepest nesting accepted in free-form JSON (tool ``parameters``, tracing ``metadata``)."""
MAX_JSON_NODES: Final = 20_000
"""Most values (objects, arrays and scalars together) accepted in one free-form JSON value."""


class Limit(Protocol):
    def check(self, value: object, param: str | None) -> SessionConfigError | None: ...


@dataclass(frozen=True)
class Text:
    """A string of ``min`` to ``max`` characters."""

    max: int
    min: int = 0

    def check(self, value: object, param: str | None) -> SessionConfigError | None:
        if not isinstance(value, str):
            return None
        if len(value) < self.min:
            return too_short(param, value, self.min)
        return too_long(param, value, self.max) if len(value) > self.max else None


@dataclass(frozen=True)
class Items:
    """An array (or an object used as a map) of ``min`` to ``max`` entries."""

    max: int
    min: int = 0

    def check(self, value: object, param: str | None) -> SessionConfigError | None:
        if not isinstance(value, list | dict):
            return None
        if len(value) < self.min:
            return too_short(param, value, self.min)
        return too_long(param, value, self.max) if len(value) > self.max else None


@dataclass(frozen=True)
class Range:
    """A number within ``ge``..``le`` (either may be open); strings such as ``"inf"`` pass."""

    ge: float | None = None
    le: float | None = None

    def check(self, value: object, param: str | None) -> SessionConfigError | None:
        if not isinstance(value, int | float) or isinstance(value, bool):
            return None
        if self.ge is not None and value < self.ge:
            return out_of_range(param, value, ">=", self.ge)
        if self.le is not None and value > self.le:
            return out_of_range(param, value, "<=", self.le)
        return None


@dataclass(frozen=True)
class Matches:
    pattern: str

    def check(self, value: object, param: str | None) -> SessionConfigError | None:
        if isinstance(value, str) and not re.match(self.pattern, value):
            return invalid_value(
                param,
                "string does not match pattern. Expected a string that matches the pattern "
                f"'{self.pattern}'.",
            )
        return None


@dataclass(frozen=True)
class JsonObject:
    """Free-form JSON (the SDK's ``object``): a JSON object, bounded in depth and size."""

    def check(self, value: object, param: str | None) -> SessionConfigError | None:
        if not isinstance(value, dict):
            return wrong_type(param, "object", value)
        depth, nodes = _json_size(value)
        if depth > MAX_JSON_DEPTH:
            detail = f"object nested too deeply. Expected at most {MAX_JSON_DEPTH} levels of nesting."
            return invalid_value(param, detail)
        if nodes > MAX_JSON_NODES:
            return invalid_value(param, f"object too large. Expected at most {MAX_JSON_NODES} values.")
        return None


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
