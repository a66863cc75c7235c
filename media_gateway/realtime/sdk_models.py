"""Read the `openai` SDK's pydantic models: their unions, JSON kinds and undeclared fields.

The SDK's models (``openai.types.realtime``) are generated from OpenAI's OpenAPI spec. Two of their
properties shape how the gateway validates with them:

* every model accepts undeclared fields (``extra="allow"``, kept in ``model_extra``), so
  :func:`undeclared_field` walks a validated model tree to find them;
* their unions carry no pydantic discriminator (the SDK's ``PropertyInfo(discriminator=…)`` is its
  own metadata, which pydantic ignores), so pydantic tries every member and reports errors for each,
  with the member's name in ``loc`` (``('tool_choice', "literal['none','auto','required']")``).
  :func:`union_site` finds where an error ``loc`` enters a union, and :func:`members`,
  :func:`json_kinds` and :func:`type_tags` let a caller pick the member the input meant.
"""

from __future__ import annotations

import types
from collections.abc import Sequence
from functools import lru_cache
from typing import Annotated, Any, Final, Literal, Union, get_args, get_origin

from pydantic import BaseModel, TypeAdapter

__all__ = [
    "Path",
    "adapter",
    "annotation_at",
    "describe_kinds",
    "is_model",
    "json_kind",
    "json_kinds",
    "members",
    "models_in",
    "type_tags",
    "undeclared_field",
    "undeclared_key",
    "union_site",
]

Path = tuple[str | int, ...]
"""A JSON path: object keys and array indices, e.g. ``("tools", 0, "name")``."""


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
    if isinstance(value, dict | BaseModel):
        return "object"
    if isinstance(value, list | tuple):
        return "array"
    return type(value).__name__


def _unwrap(annotation: Any) -> Any:
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return annotation


@lru_cache(maxsize=1024)
def members(annotation: Any) -> tuple[Any, ...]:
    """The alternatives of an annotation: nested unions flattened, ``Annotated`` and ``None`` dropped.

    A plain ``Optional[X]`` gives ``(X,)``; only two or more members make a union.
    """
    annotation = _unwrap(annotation)
    if get_origin(annotation) in (Union, types.UnionType):
        found: list[Any] = []
        for arg in get_args(annotation):
            found.extend(m for m in members(arg) if m not in found)
        return tuple(found)
    return () if annotation is None or annotation is type(None) else (annotation,)


def is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _child(annotation: Any, segment: str | int) -> Any | None:
    """The annotation of ``segment`` (field name, array index or object key) inside one member."""
    origin = get_origin(annotation)
    if is_model(annotation) and isinstance(segment, str):
        field = annotation.model_fields.get(segment)
        return field.annotation if field is not None else None
    if origin in (list, tuple) and isinstance(segment, int):
        return get_args(annotation)[0]
    if origin is dict and isinstance(segment, str):
        return get_args(annotation)[1]
    return None


def union_site(root: Any, loc: Sequence[str | int]) -> int | None:
    """How many ``loc`` segments lead from ``root`` to the first union on the way, or None.

    The segment after a union site is the name pydantic gives the member, not a JSON key.
    """
    annotation: Any = root
    for index, segment in enumerate(loc):
        found = members(annotation)
        if len(found) > 1:
            return index
        if not found:
            return None
        annotation = _child(found[0], segment)
        if annotation is None:
            return None
    return len(loc) if len(members(annotation)) > 1 else None


def annotation_at(root: Any, path: Sequence[str | int]) -> Any | None:
    """The annotation at ``path`` below ``root``, through non-union levels only."""
    annotation: Any = root
    for segment in path:
        found = members(annotation)
        if len(found) != 1:
            return None
        annotation = _child(found[0], segment)
        if annotation is None:
            return None
    return annotation


def json_kinds(member: Any) -> frozenset[str]:
    """The JSON kinds one union member accepts (``object`` means any JSON value)."""
    member = _unwrap(member)
    origin = get_origin(member)
    if origin is Literal:
        return frozenset(json_kind(value) for value in get_args(member))
    if is_model(member) or member is dict or origin is dict:
        return frozenset({"object"})
    if member is list or origin in (list, tuple):
        return frozenset({"array"})
    simple = {str: {"string"}, bool: {"boolean"}, int: {"integer"}, float: {"number", "integer"}}
    if member in simple:
        return frozenset(simple[member])
    return frozenset({"string", "integer", "number", "boolean", "object", "array"})


def _describe(member: Any) -> str:
    member = _unwrap(member)
    if get_origin(member) is Literal:
        values = get_args(member)
        if len(values) == 1 and isinstance(values[0], str):
            return f"'{values[0]}'"
        return json_kind(values[0])
    if member is object:  # the SDK types free-form JSON objects as `object`
        return "object"
    kinds = json_kinds(member)
    if kinds == {"number", "integer"}:
        return "number"
    return next(iter(kinds)) if len(kinds) == 1 else "value"


# OpenAI's order in "expected …" messages: "integer or 'inf'", "'auto' or object", "string or object".
_KIND_ORDER: Final = ("integer", "number", "boolean", "'", "string", "array", "object")


def _kind_rank(name: str) -> int:
    return next((i for i, kind in enumerate(_KIND_ORDER) if name.startswith(kind)), len(_KIND_ORDER))


def describe_kinds(annotation: Any) -> str:
    """What an annotation expects, as OpenAI words it: ``"string or object"``, ``"integer or 'inf'"``."""
    names = sorted({_describe(member) for member in members(annotation)}, key=_kind_rank)
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + f" or {names[-1]}"


def type_tags(member: Any) -> tuple[str, ...]:
    """The values a model's ``type`` field allows (its tag in a union), or ``()``."""
    if not is_model(member):
        return ()
    field = member.model_fields.get("type")
    if field is None:
        return ()
    tags: list[str] = []
    for alternative in members(field.annotation):
        if get_origin(alternative) is Literal:
            tags.extend(str(value) for value in get_args(alternative))
    return tuple(tags)


@lru_cache(maxsize=256)
def adapter(annotation: Any) -> TypeAdapter[Any]:
    """A cached ``TypeAdapter`` for one union member (models, literals, lists…)."""
    return TypeAdapter(annotation)


def undeclared_key(annotation: Any, value: object) -> str | None:
    """The first key of the JSON object ``value`` that the model ``annotation`` does not declare."""
    found = members(annotation)
    if len(found) != 1 or not is_model(found[0]) or not isinstance(value, dict):
        return None
    declared = found[0].model_fields
    return next((key for key in value if key not in declared), None)


def _model_children(value: object, path: Path) -> list[tuple[BaseModel, Path]]:
    """The SDK models directly below ``value``: its model fields, and models in its arrays and maps.

    Nothing else is entered: the SDK's models nest no arrays in arrays, and free-form JSON (the
    SDK's ``object``) holds no models, so deep client JSON is never walked.
    """
    if isinstance(value, BaseModel):  # declared fields, in declaration order (extras are elsewhere)
        fields = [(child, (*path, name)) for name, child in value.__dict__.items() if child is not None]
    elif isinstance(value, list):
        fields = [(element, (*path, index)) for index, element in enumerate(value)]
    elif isinstance(value, dict):
        fields = [(element, (*path, key)) for key, element in value.items()]
    else:
        return []
    found: list[tuple[BaseModel, Path]] = []
    for child, where in fields:
        if isinstance(child, BaseModel):
            found.append((child, where))
        elif isinstance(value, BaseModel) and isinstance(child, list | dict):
            found.extend(_model_children(child, where))
    return found


def models_in(value: BaseModel, path: Path = ()) -> list[tuple[BaseModel, Path]]:
    """Every SDK model of a validated tree with its path, parents first (``value`` included)."""
    found = [(value, path)]
    for child, where in _model_children(value, path):
        found.extend(models_in(child, where))
    return found


def undeclared_field(value: BaseModel, path: Path = ()) -> Path | None:
    """The path of the first field a validated SDK model tree holds but does not declare, or None."""
    for model, where in models_in(value, path):
        for name in model.model_extra or {}:
            return (*where, name)
    return None
