"""The realtime session engine: one per connected session, independent of the transport.

A transport hands the engine decoded client events (`handle_text`) and, for WebRTC, 16 kHz frames
(`push_frames`); it receives server events through `EngineOutput.send_event`, and a transport that
plays audio itself passes its `AudioSink`. The engine talks to the speech pipeline only through the bus
(`pipeline.messages`). It imports neither aiohttp nor aiortc.

The session owns its parts and their lifecycles: the conversation (loaded from the database on start,
so a reconnect with the same client secret sees its earlier items), the input audio buffer, and the
responses (`responses.Responses`). Client events and pipeline messages both change session state, so
both run under one lock. Pipeline messages arrive in a bounded per-session inbox (filled by the
`OutputDispatcher`) and are handled by a task this session owns, so one slow session never stalls
another's messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from media_gateway.observability.logging import get_logger
from media_gateway.persistence.repositories import Repositories
from media_gateway.pipeline.bus import Bus
from media_gateway.pipeline.messages import PipelineAudio, PipelineEvent, SessionSettings
from media_gateway.policy.engine import PolicyEngine, PolicyUnavailable
from media_gateway.realtime import handlers
from media_gateway.realtime import server_events as ev
from media_gateway.realtime.client_events import ClientEvent, parse_client_event
from media_gateway.realtime.conversation import Conversation
from media_gateway.realtime.dispatcher import AUDIO_DROPPED, OutputDispatcher, SessionInbox
from media_gateway.realtime.errors import RealtimeError
from media_gateway.realtime.input_audio import InputAudio, TurnDetection
from media_gateway.realtime.pipeline_channel import PipelineChannel
from media_gateway.realtime.playout import AudioSink
from media_gateway.realtime.response import ResponseContext, ResponseOptions
from media_gateway.realtime.responses import Responses, response_input
from media_gateway.realtime.session_config import SessionConfig, session_object
from media_gateway.speech.vad import SpeechStarted, VadModel
from media_gateway.timezones import valid_zone

log = get_logger(__name__)

CLOSE_TIMEOUT_SECONDS = 5.0


class EngineOutput(Protocol):
    """What a transport offers the engine."""

    async def send_event(self, event: dict[str, Any]) -> None: ...
    async def close(self, code: int, reason: str) -> None: ...


@dataclass(frozen=True)
class EngineLimits:
    max_append_bytes: int = 15 * 1024 * 1024
    response_timeout_seconds: float = 30.0
    pipeline_idle_timeout_seconds: float = 5.0
    max_session_seconds: float = 3600.0


@dataclass(frozen=True)
class EngineServices:
    """Shared, process-wide dependencies of every session (built by the composition root)."""

    bus: Bus
    reply_topic: str  # this gateway instance's reply topic (`pipeline.messages.reply_topic`)
    dispatcher: OutputDispatcher
    repositories: Repositories
    policy: PolicyEngine
    vad_model: VadModel
    limits: EngineLimits
    timezone: str | None = None  # the IANA zone answers about the time use, when the session names none
    count_error: Callable[[str], None] = lambda _code: None  # every `error` event sent, by code (metrics)
    # End of the user's speech → the first audio of the reply, in seconds, per spoken turn (metrics).
    observe_turn: Callable[[float], None] = lambda _seconds: None


@dataclass(frozen=True)
class Principal:
    """Who opened the session: the policy view of the key (and secret, if one was used), and what the
    connect policy decided about its OVOS sessions (`timezone`, `pipeline`, `system_unit`, ...)."""

    key: dict[str, Any]
    ovos: Mapping[str, Any] = field(default_factory=dict)


class RealtimeSession:
    def __init__(
        self,
        *,
        session_id: str,
        config: SessionConfig,
        output: EngineOutput,
        services: EngineServices,
        principal: Principal,
        expires_at: int | None = None,
        audio_sink: AudioSink | None = None,
    ) -> None:
        self.id = session_id
        self.config = config
        self.outputs: list[EngineOutput] = [output]
        self.audio_sink = audio_sink
        self.services = services
        self.principal = principal
        self.expires_at = expires_at
        self.lock = asyncio.Lock()
        self.conversation = Conversation(session_id, services.repositories.items)
        self.pipeline = PipelineChannel(
            services.bus, session_id, reply_to=services.reply_topic, settings=self.pipeline_settings
        )
        self.input_audio = InputAudio(
            self.pipeline,
            input_format=self.input_format_of(config),
            turn_detection=self._turn_detection(config),
            vad_model=services.vad_model,
        )
        self.responses = Responses(
            context=ResponseContext(
                conversation=self.conversation,
                conversation_id=f"conv_{session_id[5:]}",
                emit=self.emit,
                lock=self.lock,
                cancel_in_pipeline=self._cancel_in_pipeline,
                sink=audio_sink,
                timeout_seconds=services.limits.response_timeout_seconds,
                idle_timeout_seconds=services.limits.pipeline_idle_timeout_seconds,
                first_audio=self._reply_started,
            ),
            publish=self.publish,
            spawn=self.spawn,
            responds=config.type == "realtime",
        )
        self._inbox = SessionInbox()
        self._tasks: set[asyncio.Task[None]] = set()
        self.closed = False
        self._speech_stopped_at: float | None = None

    # --- configuration views ----------------------------------------------------------------------

    @staticmethod
    def input_format_of(config: SessionConfig) -> dict[str, Any]:
        audio = config.to_dict().get("audio") or {}
        return dict((audio.get("input") or {}).get("format") or {"type": "audio/pcm", "rate": 24000})

    @staticmethod
    def _turn_detection(config: SessionConfig) -> TurnDetection | None:
        audio = config.to_dict().get("audio") or {}
        value = (audio.get("input") or {}).get("turn_detection")
        return TurnDetection.from_config(
            value if isinstance(value, dict) else None, responds=config.type == "realtime"
        )

    def pipeline_settings(self) -> SessionSettings:
        """What the pipeline is told about the session: everything the session knows that shapes an
        answer (the language it transcribes, the time zone answers about the time use, its voice, and
        what the key's policy sets for its OVOS sessions).

        The time zone is the session's own (`tracing.metadata.timezone`, an IANA name: the one free-form
        object of the GA session a client can set), else the policy's for the key, else the gateway's."""
        transcription = self.config.transcription
        language = getattr(transcription, "language", None) or "en"
        voice = self.config.voice
        policy = dict(self.principal.ovos)
        timezone = session_timezone(self.config.to_dict()) or policy.pop("timezone", None)
        return SessionSettings(
            language=str(language),
            instructions=self.config.instructions,
            voice=voice if isinstance(voice, str) else "alloy",
            output_modalities=tuple(self.config.output_modalities or ["audio"]),
            transcribe=True,
            timezone=str(timezone) if timezone else self.services.timezone,
            ovos={k: v for k, v in policy.items() if k != "timezone"},
        )

    def session_view(self) -> dict[str, Any]:
        return session_object(self.config, session_id=self.id, expires_at=self.expires_at)

    async def apply_config(self, updated: SessionConfig) -> None:
        """Adopt a validated, policy-approved configuration (from `session.update`)."""
        self.config = updated
        await self.input_audio.reconfigure(self.input_format_of(updated), self._turn_detection(updated))
        await self.services.repositories.sessions.update_config(
            self.id, updated.to_dict(), model=updated.model
        )
        await self.publish("session.update", **self.pipeline_settings().as_fields())

    # --- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        await self.conversation.load()
        self.services.dispatcher.register(self.id, self._inbox)
        await self.publish("session.open", **self.pipeline_settings().as_fields())
        self.spawn(self._consume_pipeline(), "pipeline-in")
        self.spawn(self._enforce_deadline(), "deadline")
        await self.emit(ev.session_created(self.session_view()))

    async def close(self) -> None:
        """End the session once: responses end (their items stored), the pipeline forgets it, every task
        it started is cancelled."""
        if self.closed:
            return
        self.closed = True
        for output in self.outputs[1:]:  # sideband connections end with the session
            with contextlib.suppress(Exception):
                await output.close(1000, "session ended")
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_SECONDS), self.lock:
                await self.responses.close()
        except Exception:  # a timeout or a failing store must not keep the session's resources alive
            log.warning("session.close_incomplete", session_id=self.id, exc_info=True)
        self.services.dispatcher.unregister(self.id)
        with contextlib.suppress(Exception):
            await self.publish("session.close")
        current = asyncio.current_task()
        tasks = [task for task in self._tasks if task is not current]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def spawn(self, coroutine: Awaitable[None], name: str) -> asyncio.Task[None]:
        async def run() -> None:
            await coroutine

        task = asyncio.create_task(run(), name=f"{name}:{self.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _enforce_deadline(self) -> None:
        await asyncio.sleep(self.services.limits.max_session_seconds)
        minutes = self.services.limits.max_session_seconds / 60
        await self.terminate(
            RealtimeError(
                f"Your session hit the maximum duration of {minutes:g} minutes.", code="session_expired"
            ),
            code=1000,
            reason="session expired",
        )

    async def terminate(self, error: RealtimeError, *, code: int, reason: str) -> None:
        """End the session from the server side: every connection gets `error`, then a close with `code`
        (1000 normal end, 1008 policy: revoked credentials, 1011 server trouble). The transports' own
        teardown then runs `close()`."""
        await self.emit(ev.error(error))
        for output in list(self.outputs):
            await output.close(code, reason)

    # --- output -----------------------------------------------------------------------------------

    def speech_ended(self) -> None:
        """The user stopped speaking (server VAD): the next reply's first audio ends a spoken turn."""
        self._speech_stopped_at = time.monotonic()

    def _reply_started(self) -> None:
        if self._speech_stopped_at is not None:
            self.services.observe_turn(time.monotonic() - self._speech_stopped_at)
            self._speech_stopped_at = None

    async def emit(self, event: dict[str, Any]) -> None:
        if event.get("type") == "error":
            self.services.count_error(str((event.get("error") or {}).get("code") or "unknown"))
        if not self.closed:
            for output in list(self.outputs):
                await output.send_event(event)

    async def attach(self, output: EngineOutput) -> None:
        """A sideband connection (WebSocket `?call_id=`): it gets session.created, then every event."""
        await output.send_event(ev.session_created(self.session_view()))
        self.outputs.append(output)

    def detach(self, output: EngineOutput) -> None:
        if output in self.outputs[1:]:
            self.outputs.remove(output)

    async def shutdown(self) -> None:
        """The gateway is stopping: close every connection of this session (1001: going away)."""
        for output in list(self.outputs):
            await output.close(1001, "server shutting down")

    async def publish(self, event_type: str, **fields: Any) -> None:
        await self.pipeline.event(event_type, **fields)

    async def _cancel_in_pipeline(self, response_id: str) -> None:
        await self.publish("response.cancel", response_id=response_id)

    # --- input from the transport ----------------------------------------------------------------

    async def handle_text(self, raw: str | bytes) -> None:
        """One client event frame. Errors become `error` events; the session goes on."""
        if self.closed:
            return
        try:
            event = parse_client_event(raw)
            async with self.lock:
                await self.dispatch(event)
        except RealtimeError as exc:
            await self.emit(ev.error(exc))
        except PolicyUnavailable:
            await self.emit(
                ev.error(
                    RealtimeError(
                        "The policy service is unavailable; the change was refused.",
                        code="policy_unavailable",
                        error_type="server_error",
                    )
                )
            )
        except Exception:
            # A bug or a failing dependency (e.g. the database) must cost this event, not the connection.
            log.exception("session.event_failed", session_id=self.id)
            await self.emit(
                ev.error(
                    RealtimeError(
                        "The server had an error while processing the event.",
                        code="internal_error",
                        error_type="server_error",
                    )
                )
            )

    async def push_frames(self, frames: list[bytes]) -> None:
        """16 kHz frames from a media track (WebRTC): the same path as appended audio."""
        if self.closed:
            return
        async with self.lock:
            await self.on_turn_events(await self.input_audio.push_frames(frames))

    async def dtmf(self, digit: str) -> None:
        """A keypad press on a phone transport: the clients hear of it, and so does the pipeline."""
        if self.closed:
            return
        async with self.lock:
            await self.emit(ev.dtmf_received(digit, int(time.time())))
            await self.publish("input.dtmf", digit=digit)

    async def dispatch(self, event: ClientEvent) -> None:
        if event.type == "input_audio_buffer.append":  # fifty times a second: no table lookup
            await handlers.on_input_audio_buffer_append(self, event)
            return
        handler = handlers.CLIENT_EVENT_HANDLERS.get(event.type)
        if handler is None:  # pragma: no cover - parse_client_event admits only known types
            raise RealtimeError(f"Unsupported event type '{event.type}'.", code="invalid_value", param="type")
        await handler(self, event)

    async def on_turn_events(self, events: list[Any]) -> None:
        for turn_event in events:
            if isinstance(turn_event, SpeechStarted):
                await handlers.speech_started(self, turn_event.audio_start_ms)
            else:
                await handlers.speech_stopped(self, turn_event.audio_end_ms)

    async def create_response(self, params: dict[str, Any], *, event_id: str | None = None) -> None:
        """Start a response (a client's `response.create`, or a turn that creates one)."""
        options = ResponseOptions.from_request(self.config.to_dict(), params, self.config.instructions)
        await self.responses.create(options, response_input(self.conversation, params), event_id=event_id)

    # --- input from the pipeline ------------------------------------------------------------------

    async def _consume_pipeline(self) -> None:
        while (message := await self._inbox.get()) is not None:
            try:
                async with self.lock:
                    await self.on_pipeline(message)
            except Exception:
                log.exception("session.pipeline_message_failed", session_id=self.id)
        log.error("session.inbox_overflow", session_id=self.id, queued=len(self._inbox))
        await self.terminate(
            RealtimeError(
                "The session could not keep up with its speech pipeline and was ended.",
                code="session_overloaded",
                error_type="server_error",
            ),
            code=1011,
            reason="pipeline backlog",
        )

    async def on_pipeline(self, message: PipelineEvent | PipelineAudio) -> None:
        if isinstance(message, PipelineAudio):
            await self.responses.on_pipeline(message)
            return
        data = message.data
        if message.type == "transcription.completed":
            await self._transcribed(
                str(data.get("item_id")),
                str(data.get("transcript", "")),
                float(data.get("audio_seconds", 0.0)),
            )
        elif message.type == "transcription.delta":
            if self.config.transcription is not None:
                await self.emit(ev.transcription_delta(str(data.get("item_id")), str(data.get("delta", ""))))
        elif message.type == "transcription.failed":
            if self.config.transcription is not None:
                await self.emit(
                    ev.transcription_failed(str(data.get("item_id")), str(data.get("message", "")))
                )
        elif message.type == "session.state":
            state = data.get("state")
            self.pipeline.state = dict(state) if isinstance(state, dict) else None
        elif message.type == "response.started":
            options = ResponseOptions.from_request(self.config.to_dict(), {}, self.config.instructions)
            await self.responses.server_started(str(data.get("response_id", "")), options)
        elif message.type == AUDIO_DROPPED:
            await self.responses.fail(
                str(data.get("response_id", "")),
                code="audio_dropped",
                message="Part of the reply's audio could not be delivered in time.",
            )
        else:
            await self.responses.on_pipeline(message)

    async def _transcribed(self, item_id: str, transcript: str, audio_seconds: float) -> None:
        item = self.conversation.get(item_id)
        if item is not None:
            for part in item.get("content") or []:
                if part.get("type") == "input_audio":
                    part["transcript"] = transcript
            await self.conversation.save(item)
        if self.config.transcription is not None:
            await self.emit(ev.transcription_completed(item_id, transcript, audio_seconds))


def session_timezone(config: Mapping[str, Any]) -> str | None:
    """The IANA zone a session names in `tracing.metadata.timezone`, if it is a valid one."""
    tracing = config.get("tracing")
    metadata = tracing.get("metadata") if isinstance(tracing, Mapping) else None
    zone = metadata.get("timezone") if isinstance(metadata, Mapping) else None
    return zone if isinstance(zone, str) and valid_zone(zone) else None
