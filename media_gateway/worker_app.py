"""Composition root of `media-gateway worker`: the speech pipeline on the Kafka bus, answering through
OVOS, and its own small HTTP surface (/health, /ready, /metrics) for the orchestrator and Prometheus.

A worker is a member of the `workers` consumer group on the input topic: each session's messages
reach the one worker that owns its partition, and more workers share the partitions (up to
`kafka_input_partitions` of them). Models load once per process, before the worker joins the group;
STT and TTS run in the pipeline's thread pool, sized to the cores. Start-up order:

    metrics → bus (and the input topic) → OVOS (a local one, or the bus of `ovos_bus_url`) → models →
    pipeline (joins the group)

Speech goes through OpenVoiceOS plugins (ovos-plugin-manager, configured by `speech_plugins` like
mycroft.conf's `stt`/`tts` sections) where OPM is installed: the ovos-media-gateway-worker distribution,
which has no aiortc (the two cannot share an environment). Installed with the gateway, the worker uses the
gateway's built-in engines (faster-whisper, Debian flite) instead.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import socket
from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import Gauge

from media_gateway.app_keys import BUS, METRICS, OVOS, SETTINGS
from media_gateway.observability import http as http_observability
from media_gateway.observability.logging import get_logger
from media_gateway.observability.metrics import Metrics
from media_gateway.ovos.runtime import running_ovos
from media_gateway.pipeline.factory import running_bus
from media_gateway.pipeline.messages import INPUT_TOPIC
from media_gateway.pipeline.speech import SpeechPipeline, Voices
from media_gateway.settings import Settings
from media_gateway.speech.stt import SpeechRecognizer, load_recognizer
from media_gateway.speech.tts import FliteSynthesizer
from media_gateway.speech.tts import Voices as BuiltInVoices
from media_gateway.speech.voices import VoiceMap

log = get_logger(__name__)

PIPELINE: web.AppKey[SpeechPipeline] = web.AppKey("worker_pipeline", SpeechPipeline)


def worker_client_id() -> str:
    """Names this process to the broker and in its messages' envelopes (unique per process)."""
    return f"worker-{socket.gethostname()}-{os.getpid()}"


def build_worker_app(settings: Settings, *, metrics: Metrics | None = None) -> web.Application:
    if settings.bus != "kafka":
        raise ValueError(
            "media-gateway worker needs MEDIA_GATEWAY_BUS=kafka (the embedded gateway has its own)"
        )
    app = web.Application()
    app[SETTINGS] = settings
    app[METRICS] = metrics or Metrics.create()
    app.cleanup_ctx.append(_bus_context)
    app.cleanup_ctx.append(_ovos_context)
    app.cleanup_ctx.append(_pipeline_context)
    app.router.add_get("/health", http_observability.health)
    app.router.add_get("/ready", _ready)
    app.router.add_get("/metrics", http_observability.metrics)
    return app


async def _bus_context(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    topics = {INPUT_TOPIC: settings.kafka_input_partitions}
    client_id = worker_client_id()
    async with running_bus(settings, app[METRICS].bus, client_id=client_id, topics=topics) as bus:
        app[BUS] = bus
        yield


async def _ovos_context(app: web.Application) -> AsyncIterator[None]:
    async with running_ovos(app[SETTINGS], app[METRICS].ovos) as runtime:
        app[OVOS] = runtime
        yield


def load_speech(settings: Settings) -> tuple[SpeechRecognizer, Voices]:
    """OpenVoiceOS plugins through OPM where it is installed (the worker distribution), else the built-in
    whisper and flite. Blocking: loads the models."""
    if importlib.util.find_spec("ovos_plugin_manager") is None:
        voices = BuiltInVoices(VoiceMap.for_engine("flite", settings.voices), FliteSynthesizer)
        voices.preload()
        log.info("worker.speech", engines="built-in")
        return load_recognizer(), voices
    from media_gateway.speech.opm import load_opm_speech

    recognizer, synthesizer = load_opm_speech(settings.speech_plugins, voices=settings.voices)
    log.info("worker.speech", engines="opm", stt=recognizer.module, tts=synthesizer.module)
    return recognizer, synthesizer.for_voice


async def _pipeline_context(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    recognizer, voices = await asyncio.to_thread(load_speech, settings)
    pipeline = SpeechPipeline(
        app[BUS],
        recognizer=recognizer,
        voices=voices,
        assistant=app[OVOS].assistant,
        session_ttl_seconds=settings.worker_session_ttl_seconds,
    )
    live = Gauge(
        "gateway_worker_sessions",
        "Sessions this worker holds state for (those of the partitions it owns).",
        registry=app[METRICS].registry,
    )
    live.set_function(lambda: pipeline.sessions)
    await pipeline.start()
    app[PIPELINE] = pipeline
    try:
        yield
    finally:
        await pipeline.stop()


async def _ready(request: web.Request) -> web.Response:
    """Ready once the models are loaded and the worker is in its group, while Kafka and OVOS answer."""
    bus = request.app.get(BUS)
    ovos = request.app.get(OVOS)
    return http_observability.readiness(
        {
            "kafka": "ok" if bus is not None and bus.ready() else "unavailable",
            "ovos": ovos.state() if ovos is not None else "starting",
            "pipeline": "ok" if PIPELINE in request.app else "starting",
        }
    )
