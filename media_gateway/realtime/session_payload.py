"""The session object the gateway sends to clients (client secret response, ``session.created``,
``session.updated``)."""

from __future__ import annotations

from typing import Any, Final

from .session_effective import SessionConfig

__all__ = ["session_object"]

_REDACTED_MCP_FIELDS: Final = ("authorization", "headers")


def _redact_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # MCP credentials set server-side (client secret) must not reach the browser in session.created.
    return [
        {k: v for k, v in tool.items() if k not in _REDACTED_MCP_FIELDS}
        if tool.get("type") == "mcp"
        else tool
        for tool in tools
    ]


def session_object(
    config: SessionConfig, *, session_id: str, expires_at: int | None = None
) -> dict[str, Any]:
    """The GA session object for ``config``.

    Realtime: ``RealtimeSessionCreateResponse`` shape with ``object: "realtime.session"``.
    Transcription: ``RealtimeTranscriptionSessionCreateResponse`` shape with
    ``object: "realtime.transcription_session"``. MCP ``authorization``/``headers`` are omitted; a
    custom voice ``{"id": "voice_…"}`` is shown as the id string (the only form the SDK's response
    model accepts).
    """
    data = config.to_dict()
    session_type = data.pop("type")
    obj: dict[str, Any] = {
        "type": session_type,
        "object": "realtime.session" if session_type == "realtime" else "realtime.transcription_session",
        "id": session_id,
    }
    if "tools" in data:
        data["tools"] = _redact_tools(data["tools"])
    output = (data.get("audio") or {}).get("output") or {}
    if isinstance(output.get("voice"), dict):
        # The SDK's RealtimeSessionCreateResponse types voice as a string only (openai 3.60.0,
        # openai/types/realtime/realtime_session_create_response.py; the request and session.created
        # models also allow {"id"}): send the custom voice id as the string.
        output["voice"] = output["voice"]["id"]
    obj.update(data)
    if expires_at is not None:
        obj["expires_at"] = expires_at
    return obj
