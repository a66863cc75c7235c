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


@dataclass(frozen=True)
class Metrics:
    """The application's metric registry and the instruments the HTTP layer needs."""

    registry: CollectorRegistry
    http: HttpMetrics

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
        return cls(registry=registry, http=http)

    def render(self) -> tuple[bytes, str]:
        """The text exposition format and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
