"""The WebRTC calls alive in this process, by call id (for hangup, the per-process cap and shutdown)."""

from __future__ import annotations

import asyncio

from media_gateway.observability.metrics import WebRtcMetrics
from media_gateway.transports.webrtc.peer import WebRtcCall


class LiveCalls:
    def __init__(self, metrics: WebRtcMetrics) -> None:
        self._calls: dict[str, WebRtcCall] = {}
        self._pending: set[WebRtcCall] = set()  # answering: counted against the cap, no id yet
        self._metrics = metrics
        self.closing = False  # set when shutdown begins: no call may be added after that

    def __len__(self) -> int:
        return len(self._calls) + len(self._pending)

    def reserve(self, call: WebRtcCall) -> None:
        if self.closing:
            raise RuntimeError("the gateway is shutting down")
        self._pending.add(call)
        self._metrics.live_calls.set(len(self))

    def add(self, call: WebRtcCall) -> None:
        self._pending.discard(call)
        self._calls[call.id] = call
        self._metrics.live_calls.set(len(self))

    def remove(self, call: WebRtcCall) -> None:
        self._pending.discard(call)
        if self._calls.get(call.id) is call:
            del self._calls[call.id]
        self._metrics.live_calls.set(len(self))

    def get(self, call_id: str) -> WebRtcCall | None:
        return self._calls.get(call_id)

    async def close_all(self) -> None:
        self.closing = True
        calls = list(self._calls.values()) + list(self._pending)
        await asyncio.gather(*(call.close("shutdown") for call in calls), return_exceptions=True)
