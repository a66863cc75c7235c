"""The engine's output over the `oai-events` data channel, and the client events coming back on it.

Server events are JSON text messages, exactly as on the WebSocket (no audio deltas: audio is on the RTP
track). Events emitted before the client's channel is open are kept (bounded) and sent when it opens.

Large messages: aiortc ≥ 1.16 caps DATA chunks at 1160 bytes of user data (SCTP packet 1189 bytes, which
fits the IPv6 minimum MTU once UDP/DTLS overhead is added), so a 30 kB event is fragmented into chunks that
pass 1280-MTU paths (earlier aiortc sent larger chunks, which such paths drop, so the message was
retransmitted forever). We add no application-level fragmentation (clients would not reassemble it). A
message larger than the peer's advertised max-message-size cannot be sent at all: aiortc raises, and we send
an `error` event in its place. A peer that stops reading (the SCTP send buffer keeps growing) is released.
"""

from __future__ import annotations

import contextlib
import json
from collections import deque
from collections.abc import Callable
from typing import Any

from aiortc import RTCDataChannel
from aiortc.exceptions import InvalidStateError

from media_gateway.observability.logging import get_logger
from media_gateway.realtime import server_events as ev
from media_gateway.realtime.errors import RealtimeError

log = get_logger(__name__)

CHANNEL_LABEL = "oai-events"
PENDING_LIMIT = 1024
# Bytes queued in SCTP for a peer that does not read; past this the call is released.
MAX_BUFFERED_BYTES = 8 * 1024 * 1024


class DataChannelOutput:
    """`EngineOutput` over the data channel. `close()` asks the call to end (it owns the teardown)."""

    def __init__(self, request_close: Callable[[str], None]) -> None:
        self._request_close = request_close
        self._channel: RTCDataChannel | None = None
        self._pending: deque[str] = deque(maxlen=PENDING_LIMIT)
        self.sent = 0
        self.closed = False

    @property
    def open(self) -> bool:
        return self._channel is not None and self._channel.readyState == "open"

    def bind(self, channel: RTCDataChannel) -> None:
        self._channel = channel
        while self._pending and self.open:
            self._send(self._pending.popleft())

    async def send_event(self, event: dict[str, Any]) -> None:
        if self.closed:
            return
        text = json.dumps(event, separators=(",", ":"))
        if not self.open:
            if self._channel is None:
                self._pending.append(text)
            return
        self._send(text, event)

    def _send(self, text: str, event: dict[str, Any] | None = None) -> None:
        channel = self._channel
        assert channel is not None
        if channel.bufferedAmount > MAX_BUFFERED_BYTES:
            log.warning("webrtc.datachannel_backlog", buffered=channel.bufferedAmount)
            self._request_close("datachannel_backlog")
            return
        try:
            channel.send(text)
            self.sent += 1
        except ValueError:
            # Larger than the peer's max-message-size (RFC 8841; 64 KiB when not advertised).
            log.warning("webrtc.event_too_large", bytes=len(text), type=(event or {}).get("type"))
            error = ev.error(
                RealtimeError(
                    f"A {(event or {}).get('type', 'server')} event of {len(text)} bytes exceeds the data "
                    "channel's maximum message size and was not delivered.",
                    code="event_too_large",
                    error_type="server_error",
                )
            )
            channel.send(json.dumps(error, separators=(",", ":")))
        except InvalidStateError:
            return  # the transport closed under us; the call's close follows

    def refuse(self, message: str | bytes) -> None:
        """A client event the call could not queue: answer it with an `error` echoing its event_id."""
        event_id: str | None = None
        with contextlib.suppress(ValueError, RecursionError, AttributeError):
            value = json.loads(message).get("event_id")
            event_id = value[:256] if isinstance(value, str) else None
        error = RealtimeError(
            "Too many client events are waiting on this session; this one was not processed. Slow down "
            "and send it again.",
            code="too_many_events",
            event_id=event_id,
        )
        self.send_now(ev.error(error))

    def send_now(self, event: dict[str, Any]) -> None:
        if not self.closed and self.open:
            self._send(json.dumps(event, separators=(",", ":")), event)

    async def close(self, code: int, reason: str) -> None:
        """The engine ends the session (expiry, shutdown): end the call."""
        self._request_close("shutdown" if code == 1001 else "session_closed")

    def stop(self) -> None:
        self.closed = True
        self._pending.clear()
