"""Prometheus metrics on a registry owned by the application (no global registry).

Labels are bounded: route *templates* (never raw paths), methods, status codes. Nothing per key, per
session or per call becomes a label.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

# Request latency buckets in seconds: signaling calls are ms-scale; SDP answers wait for ICE gathering.
HTTP_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(frozen=True)
class HttpMetrics:
    requests: Counter
    latency: Histogram
    in_flight: Gauge


# SDP answer time: ~1 ms with host candidates; a STUN/TURN server that never answers costs the gathering cap.
WEBRTC_ANSWER_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0)


@dataclass(frozen=True)
class WebRtcMetrics:
    answer_seconds: Histogram
    inbound_frames_dropped: Counter
    inbound_events_refused: Counter
    live_calls: Gauge
    calls_ended: Counter


@dataclass(frozen=True)
class Metrics:
    """The application's metric registry and the instruments the HTTP layer needs."""

    registry: CollectorRegistry
    http: HttpMetrics
    webrtc: WebRtcMetrics

    @classmethod
    def create(cls) -> Metrics:
        registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        http = HttpMetrics(
            requests=Counter(
                "gateway_http_requests_total",
                "HTTP requests answered, by route template, method and status.",
                ("method", "route", "status"),
                registry=registry,
            ),
            latency=Histogram(
                "gateway_http_request_duration_seconds",
                "Time to answer an HTTP request, by route template, method and status.",
                ("method", "route", "status"),
                buckets=HTTP_LATENCY_BUCKETS,
                registry=registry,
            ),
            in_flight=Gauge(
                "gateway_http_requests_in_flight",
                "HTTP requests being handled now.",
                registry=registry,
            ),
        )
        webrtc = WebRtcMetrics(
            answer_seconds=Histogram(
                "gateway_webrtc_answer_seconds",
                "Time from an SDP offer received to the SDP answer ready (ICE gathering included).",
                buckets=WEBRTC_ANSWER_BUCKETS,
                registry=registry,
            ),
            inbound_frames_dropped=Counter(
                "gateway_webrtc_inbound_frames_dropped_total",
                "Inbound 20 ms frames dropped (oldest first) because the engine fell behind the track.",
                registry=registry,
            ),
            inbound_events_refused=Counter(
                "gateway_webrtc_inbound_events_refused_total",
                "Client events refused with an error because the call's data-channel inbox was full.",
                registry=registry,
            ),
            live_calls=Gauge(
                "gateway_webrtc_live_calls",
                "WebRTC calls (peer connections) alive in this process.",
                registry=registry,
            ),
            calls_ended=Counter(
                "gateway_webrtc_calls_ended_total",
                "WebRTC calls ended, by reason (hangup, peer_closed, peer_timeout, connect_timeout, "
                "ice_failed, shutdown, session_closed).",
                ("reason",),
                registry=registry,
            ),
        )
        return cls(registry=registry, http=http, webrtc=webrtc)

    def render(self) -> tuple[bytes, str]:
        """The text exposition format and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
