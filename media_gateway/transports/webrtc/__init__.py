"""The WebRTC transport: SDP offer/answer over HTTP, Opus audio on RTP, events on the `oai-events` channel.

Signaling routes live in `media_gateway.signaling.calls`; `peer.WebRtcCall` owns one call.
"""
