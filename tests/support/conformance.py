"""The conformance gate: every server event a test receives is validated with the `openai` SDK's own
GA models, strictly (as the Agents SDK for Python does, plus `strict=True`), and undeclared fields are
rejected except the few upstream itself sends (`session.id`, `session.object`, `session.expires_at`,
`obfuscation`)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Annotated, Any

from openai.types.realtime import RealtimeServerEvent
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

SERVER_EVENTS: TypeAdapter[Any] = TypeAdapter(Annotated[RealtimeServerEvent, Field(discriminator="type")])

# Undeclared in the SDK's models but sent by upstream (session id/object/expires_at) or harmless echoes
# documented in media_gateway.realtime.session_rules.
ALLOWED_EXTRAS = {"id", "object", "expires_at", "obfuscation", "parallel_tool_calls"}


def _extras(value: object, path: str) -> list[str]:
    found: list[str] = []
    if isinstance(value, BaseModel):
        found += [f"{path}.{name}" for name in (value.model_extra or {}) if name not in ALLOWED_EXTRAS]
        for name in type(value).model_fields:
            found += _extras(getattr(value, name), f"{path}.{name}")
    elif isinstance(value, list):
        for index, element in enumerate(value):
            found += _extras(element, f"{path}[{index}]")
    return found


class ConformanceError(AssertionError):
    pass


@dataclass
class ConformanceGate:
    validated: int = 0
    failures: list[str] = field(default_factory=list)
    by_type: dict[str, int] = field(default_factory=dict)

    def check(self, raw: str | bytes) -> dict[str, Any]:
        """Validate one raw server frame; return it decoded. Raises on any mismatch."""
        try:
            model = SERVER_EVENTS.validate_json(raw, strict=True)
        except ValidationError as exc:
            self._fail(f"{str(raw)[:300]}\n{exc}")
        extras = _extras(model, "")
        if extras:
            self._fail(f"undeclared fields {extras} in {str(raw)[:300]}")
        event: dict[str, Any] = json.loads(raw)
        self.validated += 1
        self.by_type[event["type"]] = self.by_type.get(event["type"], 0) + 1
        return event

    def _fail(self, message: str) -> None:
        self.failures.append(message)
        raise ConformanceError(message)


GATE = ConformanceGate()
