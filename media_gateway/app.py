"""Composition root: build the aiohttp application from settings and own every component's lifecycle.

Nothing here is a module-level singleton. `build_app` wires the parts together; the contexts registered
in `cleanup_ctx` start them in order on startup and close them in reverse order on shutdown (aiohttp
runs these on SIGTERM/SIGINT after it stops accepting connections):

    database  → repositories → gateway instance → policy engine → bus → OVOS → speech pipeline and engine

OVOS (a local ovos-core the gateway starts, or the one serving `ovos_bus_url`) and the in-process speech
pipeline exist only on the embedded default (`speech_pipeline=inprocess`); otherwise workers answer.

The gateway instance registers this process in the database before it serves (releasing the sessions a
previous run under the same instance id left behind) and runs the heartbeat and revocation task.

Route modules receive their dependencies through the typed keys in `app_keys`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from prometheus_client import Gauge

from media_gateway.app_keys import (
    BUS,
    CALLS,
    DATABASE,
    DRAIN,
    ENGINE,
    INSTANCE,
    LIVE_CONNECTIONS,
    METRICS,
    METRICS_PORT,
    OVOS,
    POLICY,
    REPOSITORIES,
    SESSIONS,
    SETTINGS,
    SIP,
)
from media_gateway.drain import Drain
from media_gateway.observability import http as http_observability
from media_gateway.observability.logging import get_logger
from media_gateway.observability.metrics import Metrics
from media_gateway.ovos.runtime import running_ovos
from media_gateway.persistence.database import Database
from media_gateway.persistence.migrate import require_migrated
from media_gateway.persistence.repositories import Repositories
from media_gateway.pipeline.factory import running_bus
from media_gateway.pipeline.messages import INPUT_TOPIC, instance_slug, reply_topic
from media_gateway.pipeline.speech import SpeechPipeline
from media_gateway.policy.engine import create_policy_engine
from media_gateway.realtime.dispatcher import OutputDispatcher
from media_gateway.realtime.registry import LiveSessions
from media_gateway.realtime.session import EngineLimits, EngineServices
from media_gateway.settings import Settings
from media_gateway.signaling import call_control
from media_gateway.signaling import calls as calls_routes
from media_gateway.signaling import demo as demo_routes
from media_gateway.signaling import routes as signaling_routes
from media_gateway.signaling.errors import error_middleware
from media_gateway.signaling.hosts import host_middleware, parse_allowed_hosts
from media_gateway.signaling.instance import GatewayInstance
from media_gateway.speech.stt import load_recognizer
from media_gateway.speech.tts import FliteSynthesizer, Voices
from media_gateway.speech.vad import load_vad_model
from media_gateway.speech.voices import VoiceMap
from media_gateway.timezones import gateway_zone
from media_gateway.transports import websocket as websocket_transport
from media_gateway.transports.registry import LiveConnections
from media_gateway.transports.sip.gateway import SipGateway
from media_gateway.transports.twilio import stream as twilio_transport
from media_gateway.transports.webrtc.ice import install_gathering_policy
from media_gateway.transports.webrtc.patches import install_fast_audio_level
from media_gateway.transports.webrtc.registry import LiveCalls

log = get_logger(__name__)


def build_app(
    settings: Settings, *, metrics: Metrics | None = None, drain_on_sigterm: bool = False
) -> web.Application:
    """Build the application. Components start when the app starts, not here. `drain_on_sigterm` (the
    `serve` command) makes SIGTERM drain the gateway first (`drain.Drain`)."""
    middlewares: list[Any] = [http_observability.observe_middleware, error_middleware]
    allowed_hosts = parse_allowed_hosts(settings.allowed_hosts)
    if allowed_hosts:
        middlewares.insert(1, host_middleware(allowed_hosts))
    app = web.Application(client_max_size=settings.max_body_bytes, middlewares=middlewares)
    app[SETTINGS] = settings
    app[METRICS] = metrics or Metrics.create()
    app[LIVE_CONNECTIONS] = LiveConnections()
    app[SESSIONS] = LiveSessions()
    app[METRICS].realtime.sessions.set_function(lambda: len(app[SESSIONS]))
    app[CALLS] = LiveCalls(app[METRICS].webrtc)
    app[DRAIN] = Drain()
    if drain_on_sigterm:
        app.on_startup.append(_install_drain)
    # Process-wide aiortc/aioice adjustments (documented where they are defined).
    install_gathering_policy(
        timeout_seconds=settings.webrtc_gather_timeout_seconds,
        host_addresses=list(settings.webrtc_host_addresses),
        include_loopback=settings.webrtc_include_loopback,
        udp_ports=settings.webrtc_udp_ports,
        public_address=settings.webrtc_public_address,
    )
    install_fast_audio_level(settings.webrtc_fast_audio_level)

    app.cleanup_ctx.append(_database_context)
    app.cleanup_ctx.append(_instance_context)
    app.cleanup_ctx.append(_policy_context)
    app.cleanup_ctx.append(_bus_context)
    app.cleanup_ctx.append(_ovos_context)
    app.cleanup_ctx.append(_engine_context)
    app.cleanup_ctx.append(_sip_context)
    if settings.metrics_port is not None:
        app.cleanup_ctx.append(_metrics_listener_context)
    app.on_shutdown.append(_close_live_connections)

    http_observability.add_routes(app)
    signaling_routes.add_routes(app)
    websocket_transport.add_routes(app)
    twilio_transport.add_routes(app)
    calls_routes.add_routes(app)
    call_control.add_routes(app)
    demo_routes.add_routes(app)
    return app


async def _database_context(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    database = Database(settings.database_url)
    try:
        await require_migrated(database)
    except BaseException:
        await database.dispose()
        raise
    app[DATABASE] = database
    app[REPOSITORIES] = Repositories.from_database(database)
    log.info("database.started", dialect=database.dialect)
    try:
        yield
    finally:
        await database.dispose()
        log.info("database.stopped")


async def _instance_context(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    instance = GatewayInstance(
        instance_id=settings.resolved_instance_id(),
        database=app[DATABASE],
        sessions=app[SESSIONS],
        heartbeat_seconds=settings.instance_heartbeat_seconds,
        ttl_seconds=settings.instance_ttl_seconds,
    )
    await instance.start()
    app[INSTANCE] = instance
    try:
        yield
    finally:
        await instance.stop()


async def _policy_context(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    engine = create_policy_engine(
        settings.policy_engine,
        registry=app[METRICS].registry,
        opa_url=settings.opa_url,
        timeout_seconds=settings.opa_timeout_seconds,
        policy_dir=settings.policy_dir,
    )
    app[POLICY] = engine
    log.info("policy.started", engine=settings.policy_engine)
    try:
        yield
    finally:
        await engine.close()


async def _bus_context(app: web.Application) -> AsyncIterator[None]:
    """The bus, with the input topic and this instance's reply topic created (on Kafka)."""
    settings = app[SETTINGS]
    instance_id = app[INSTANCE].id
    topics = {
        INPUT_TOPIC: settings.kafka_input_partitions,
        reply_topic(instance_id): settings.kafka_reply_partitions,
    }
    client_id = f"gateway-{instance_slug(instance_id)}"
    async with running_bus(settings, app[METRICS].bus, client_id=client_id, topics=topics) as bus:
        app[BUS] = bus
        yield


async def _ovos_context(app: web.Application) -> AsyncIterator[None]:
    """OVOS for the in-process pipeline; none when workers answer over Kafka."""
    settings = app[SETTINGS]
    if settings.speech_pipeline != "inprocess":
        yield
        return
    async with running_ovos(settings, app[METRICS].ovos) as runtime:
        app[OVOS] = runtime
        yield


def flite_voices(settings: Settings) -> Voices:
    """The embedded pipeline's voices: Debian flite's, by OpenAI voice name (`settings.voices`)."""
    voices = Voices(VoiceMap.for_engine("flite", settings.voices), lambda voice: FliteSynthesizer(voice))
    voices.preload()
    return voices


async def _install_drain(app: web.Application) -> None:
    app[DRAIN].install(app)


async def _metrics_listener_context(app: web.Application) -> AsyncIterator[None]:
    async with http_observability.metrics_listener(app) as port:
        app[METRICS_PORT] = port
        yield


async def _sip_context(app: web.Application) -> AsyncIterator[None]:
    """The SIP endpoint, when a port is configured. Its calls are hung up before the engine stops."""
    if app[SETTINGS].sip_port is None:
        yield
        return
    gateway = SipGateway(app)
    await gateway.start()
    app[SIP] = gateway
    try:
        yield
    finally:
        await gateway.close()


async def _close_live_connections(app: web.Application) -> None:
    if SIP in app:
        await app[SIP].close()
    await app[CALLS].close_all()
    await app[SESSIONS].close_all()
    await app[LIVE_CONNECTIONS].close_all()


async def _engine_context(app: web.Application) -> AsyncIterator[None]:
    """The realtime engine's shared parts: the VAD model, the output dispatcher and, on the embedded
    default, the in-process speech pipeline. Heavy models load here once per process."""
    settings = app[SETTINGS]
    bus = app[BUS]
    vad_model = await asyncio.to_thread(load_vad_model)
    pipeline: SpeechPipeline | None = None
    if settings.speech_pipeline == "inprocess":
        recognizer = await asyncio.to_thread(load_recognizer)
        pipeline = SpeechPipeline(
            bus,
            recognizer=recognizer,
            voices=await asyncio.to_thread(flite_voices, settings),
            assistant=app[OVOS].assistant,
            session_ttl_seconds=settings.worker_session_ttl_seconds,
        )
    topic = reply_topic(app[INSTANCE].id)
    dispatcher = OutputDispatcher(bus, topic)
    Gauge(
        "gateway_bus_replies_undeliverable",
        "Replies that reached this gateway for a session it does not hold (ended, or another gateway's).",
        registry=app[METRICS].registry,
    ).set_function(lambda: dispatcher.undeliverable)
    await dispatcher.start()
    if pipeline is not None:
        await pipeline.start()
    app[ENGINE] = EngineServices(
        bus=bus,
        reply_topic=topic,
        dispatcher=dispatcher,
        repositories=app[REPOSITORIES],
        policy=app[POLICY],
        vad_model=vad_model,
        limits=EngineLimits(
            max_append_bytes=settings.max_append_bytes,
            response_timeout_seconds=settings.response_timeout_seconds,
            pipeline_idle_timeout_seconds=settings.pipeline_idle_timeout_seconds,
            max_session_seconds=settings.session_max_seconds,
        ),
        timezone=gateway_zone(settings.timezone),
        count_error=lambda code: app[METRICS].realtime.errors.labels(code=code).inc(),
        observe_turn=app[METRICS].realtime.turn_seconds.observe,
    )
    log.info("engine.started")
    try:
        yield
    finally:
        if pipeline is not None:
            await pipeline.stop()
        await dispatcher.stop()
