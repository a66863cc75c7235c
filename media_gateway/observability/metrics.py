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


# Time from `publish` to the broker's acknowledgement: linger (5 ms) plus a replicated write.
PRODUCE_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0)


class BusMetrics:
    """The bus's instruments; it is the bus's observer (`pipeline.bus.BusObserver`, `KafkaObserver`)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.messages_published = Counter(
            "gateway_bus_messages_published_total",
            "Messages this process put on the bus (on Kafka: acknowledged by the broker), by kind.",
            ("kind",),
            registry=registry,
        )
        self.messages_dropped = Counter(
            "gateway_bus_messages_dropped_total",
            "Messages dropped before reaching the bus, by kind (only audio is ever dropped) and reason "
            "(buffer_full, broker_unavailable, delivery_failed).",
            ("kind", "reason"),
            registry=registry,
        )
        self.sequence_gaps = Counter(
            "gateway_bus_sequence_gaps_total",
            "Messages missing between two a subscriber received (by their envelope sequence numbers).",
            registry=registry,
        )
        self.unknown_versions = Counter(
            "gateway_bus_unknown_version_total",
            "Messages refused because their envelope names an unknown schema version.",
            registry=registry,
        )
        self.produce_seconds = Histogram(
            "gateway_kafka_produce_seconds",
            "Time from publish to the broker's acknowledgement.",
            buckets=PRODUCE_BUCKETS,
            registry=registry,
        )
        self.consumer_lag = Gauge(
            "gateway_kafka_consumer_lag",
            "Messages in this process's assigned partitions not yet consumed, by topic.",
            ("topic",),
            registry=registry,
        )
        self.kafka_connected = Gauge(
            "gateway_kafka_connected",
            "1 while the Kafka cluster answers this process's metadata requests.",
            registry=registry,
        )

    def published(self, kind: str) -> None:
        self.messages_published.labels(kind=kind or "unknown").inc()

    def dropped(self, kind: str, reason: str) -> None:
        self.messages_dropped.labels(kind=kind or "unknown", reason=reason).inc()

    def sequence_gap(self, missing: int) -> None:
        self.sequence_gaps.inc(missing)

    def unknown_version(self) -> None:
        self.unknown_versions.inc()

    def produced(self, seconds: float) -> None:
        self.produce_seconds.observe(seconds)

    def lag(self, topic: str, messages: int) -> None:
        self.consumer_lag.labels(topic=topic).set(messages)

    def connected(self, up: bool) -> None:
        self.kafka_connected.set(1 if up else 0)


# Time a turn waited for an OVOS slot: usually none; under load, until another session's turn ends.
ADMISSION_WAIT_BUCKETS = (0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class OvosMetrics:
    """OVOS turn admission (`ovos.admission.AdmissionObserver`) and the messagebus connection."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.turns_open = Gauge(
            "gateway_ovos_turns_open",
            "Sessions of this process with a turn or dialog open in OVOS (each holds an admission slot).",
            registry=registry,
        )
        self.turns_waiting = Gauge(
            "gateway_ovos_turns_waiting",
            "Turns waiting for an OVOS admission slot.",
            registry=registry,
        )
        self.turns_refused = Counter(
            "gateway_ovos_turns_refused_total",
            "Turns refused because no OVOS admission slot freed up in time (the response failed).",
            registry=registry,
        )
        self.admission_wait = Histogram(
            "gateway_ovos_admission_wait_seconds",
            "Time a turn waited for an OVOS admission slot (turns that found one free are not counted).",
            buckets=ADMISSION_WAIT_BUCKETS,
            registry=registry,
        )
        self.connected = Gauge(
            "gateway_ovos_connected",
            "1 while this process is connected to the OVOS messagebus.",
            registry=registry,
        )

    def changed(self, in_use: int, waiting: int) -> None:
        self.turns_open.set(in_use)
        self.turns_waiting.set(waiting)

    def waited(self, seconds: float) -> None:
        self.admission_wait.observe(seconds)

    def refused(self) -> None:
        self.turns_refused.inc()


class RealtimeMetrics:
    """Realtime sessions of this process, whatever their transport."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.sessions = Gauge(
            "gateway_realtime_sessions",
            "Realtime sessions live in this process (WebSocket, WebRTC, phone calls).",
            registry=registry,
        )
        self.errors = Counter(
            "gateway_realtime_errors_total",
            "`error` events sent to realtime clients, by error code.",
            ("code",),
            registry=registry,
        )
        self.turn_seconds = Histogram(
            "gateway_turn_seconds",
            "Spoken turns: the end of the user's speech (server VAD's speech_stopped) to the first audio of "
            "the reply handed to the transport.",
            buckets=(0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0),
            registry=registry,
        )


class TelephonyMetrics:
    """Phone calls: media-stream WebSockets (Twilio's shape) and SIP."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.calls = Counter(
            "gateway_telephony_calls_total",
            "Phone calls, by transport (twilio, sip) and outcome (ended, failed, refused, rejected, "
            "cancelled, unanswered).",
            ("transport", "outcome"),
            registry=registry,
        )
        self.dtmf = Counter(
            "gateway_telephony_dtmf_total",
            "Keypad presses received, by transport.",
            ("transport",),
            registry=registry,
        )
        self.marks_pending = Gauge(
            "gateway_telephony_marks_pending",
            "Playback marks sent on media streams and not echoed yet (audio the callers have not heard).",
            registry=registry,
        )
        self.bad_frames = Counter(
            "gateway_telephony_bad_frames_total",
            "Frames on media streams that were not messages of the protocol (dropped), by transport.",
            ("transport",),
            registry=registry,
        )
        self.sip_bad_messages = Counter(
            "gateway_sip_bad_messages_total",
            "SIP datagrams that could not be read or lacked mandatory headers (answered 400 or dropped).",
            registry=registry,
        )
        self.sip_live_calls = Gauge(
            "gateway_sip_live_calls", "SIP calls in this process, ringing or answered.", registry=registry
        )
        self.rtp_packets = Counter(
            "gateway_sip_rtp_packets_total",
            "RTP packets of SIP calls, by direction (in, out).",
            ("direction",),
            registry=registry,
        )
        self.rtp_lost = Counter(
            "gateway_sip_rtp_lost_packets_total",
            "RTP packets of callers that never arrived (sequence gaps), counted when a call ends.",
            registry=registry,
        )
        self.rtp_late = Counter(
            "gateway_sip_rtp_late_packets_total",
            "RTP packets of callers that arrived after a newer one and were dropped.",
            registry=registry,
        )
        self.rtp_jitter = Histogram(
            "gateway_sip_rtp_jitter_seconds",
            "Interarrival jitter of each SIP call's inbound RTP (RFC 3550), observed when the call ends.",
            buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16),
            registry=registry,
        )
        self.webhooks = Counter(
            "gateway_sip_webhooks_total",
            "realtime.call.incoming webhooks, by outcome (delivered, failed).",
            ("outcome",),
            registry=registry,
        )


@dataclass(frozen=True)
class Metrics:
    """The application's metric registry and the instruments the HTTP layer needs."""

    registry: CollectorRegistry
    http: HttpMetrics
    webrtc: WebRtcMetrics
    bus: BusMetrics
    ovos: OvosMetrics
    telephony: TelephonyMetrics
    realtime: RealtimeMetrics

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
        return cls(
            registry=registry,
            http=http,
            webrtc=webrtc,
            bus=BusMetrics(registry),
            ovos=OvosMetrics(registry),
            telephony=TelephonyMetrics(registry),
            realtime=RealtimeMetrics(registry),
        )

    def render(self) -> tuple[bytes, str]:
        """The text exposition format and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
