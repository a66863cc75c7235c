"""structlog configuration: JSON lines on stdout, context ids bound per request, secrets redacted.

Context (request id, later session and call ids) travels in `structlog.contextvars`, so every line a
request handler or a task it starts writes carries them without passing a logger around.

Redaction runs as the last processor before rendering, on every event from every logger (ours, and the
standard library's routed through `ProcessorFormatter`), so a secret that reaches a log call by accident
is still removed. It removes values of sensitive keys (authorization, api_key, secret, ...) and any
string that looks like a gateway credential (`sk_…`, `ek_…`, `Bearer …`, the browser subprotocol
`openai-insecure-api-key.…`).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

REDACTED = "[REDACTED]"

_SENSITIVE_KEY = re.compile(
    r"(authorization|api[_-]?key|secret|password|passwd|token|cookie|credential|client_secret|value_hash)",
    re.IGNORECASE,
)
# Credential-shaped substrings inside free text. Gateway keys are `sk_` / `ek_` + urlsafe base64; OpenAI's
# own are `sk-…`. The subprotocol form carries a key after a dot.
_SECRET_PATTERNS = (
    re.compile(r"\b(?:sk|ek)[_-][A-Za-z0-9_\-]{8,}"),
    re.compile(r"(?i)\bbearer\s+[^\s,;\"']+"),
    re.compile(r"openai-insecure-api-key\.[^\s,;\"']+"),
    re.compile(r"(?i)(postgres(?:ql)?(?:\+\w+)?://[^:/@\s]+:)[^@\s]+@"),
)


def _scrub_text(text: str) -> str:
    for pattern in _SECRET_PATTERNS:
        if pattern.groups:
            text = pattern.sub(lambda m: m.group(1) + REDACTED + "@", text)
        else:
            text = pattern.sub(REDACTED, text)
    return text


def _scrub(value: Any, depth: int = 0) -> Any:
    if depth > 8:
        return REDACTED
    if isinstance(value, str):
        return _scrub_text(value)
    if isinstance(value, Mapping):
        return {
            key: (REDACTED if isinstance(key, str) and _is_sensitive_key(key) else _scrub(item, depth + 1))
            for key, item in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [_scrub(item, depth + 1) for item in value]
    if isinstance(value, bytes | bytearray):
        return f"<{len(value)} bytes>"
    return value


def _is_sensitive_key(key: str) -> bool:
    # `*_id` fields name a record (secret_id, api_key_id), they are not the secret itself.
    return bool(_SENSITIVE_KEY.search(key)) and not key.endswith(("_id", "_prefix", "_count"))


def redact_secrets(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """structlog processor: drop sensitive values from every field of the event, recursively."""
    for key in list(event_dict):
        if _is_sensitive_key(key):
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _scrub(event_dict[key])
    return event_dict


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
    ]


def configure_logging(level: str = "info", fmt: str = "json", stream: TextIO | None = None) -> None:
    """Route structlog and standard-library logging through one redacting renderer to `stream`."""
    renderer: Processor = (
        structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    )
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=_shared_processors(),
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                redact_secrets,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiohttp's own access log duplicates ours (see observability.http) and would print raw query strings.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_shared_processors(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger


def bind_context(**values: Any) -> Mapping[str, Any]:
    """Bind ids (request_id, session_id, call_id) to every log line of the current task."""
    return structlog.contextvars.bind_contextvars(**values)


def clear_context() -> None:
    structlog.contextvars.clear_contextvars()
