"""Errors the engine reports to the client as `error` events (the session stays open)."""

from __future__ import annotations

from typing import Literal

ErrorType = Literal["invalid_request_error", "server_error"]


class RealtimeError(Exception):
    """A client event could not be honoured. Becomes one `error` event echoing the client's event_id."""

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        error_type: ErrorType = "invalid_request_error",
        event_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.param = param
        self.error_type: ErrorType = error_type
        self.event_id = event_id
