"""Transports that carry realtime events and audio: WebSocket and WebRTC."""
