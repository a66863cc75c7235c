"""The speech pipeline: the pipeline side of the bus contract in `pipeline.messages`.

It runs inside the gateway on the embedded default and inside `media-gateway worker` processes over
Kafka; either way it consumes `INPUT_TOPIC` as a member of the `workers` group and answers on each
session's `reply-to` topic. Per session:

* state is created by the first message that names a reply topic (`session.open`, or any message of a
  session this worker takes over after a rebalance), dropped on `session.close`, and forgotten after
  `session_ttl_seconds` without a message (its gateway went away without closing it);
* audio frames accumulate into the next utterance; `input.clear` drops them;
* `input.commit{item_id}` transcribes them in the thread pool and publishes `transcription.completed` (or
  `.failed`). The utterance is always transcribed (a response may need it); the transcription events are
  published only when the session's `transcribe` setting is on. One session's utterances are transcribed in
  order;
* `response.create` waits for its item's transcript (or takes `input_text`) and hands the utterance to the
  session's OVOS dialog (`ovos.dialog`), which speaks what OVOS answers through the session's `Speaker`:
  per sentence `response.text.delta` and, unless the modalities are text only, that sentence's audio in
  chunks of at most `chunk_ms`, a `response.mark` after each spoken `speak`, then `response.done`. Until
  then `response.alive` goes out every `ALIVE_SECONDS`. A session's responses run one at a time; OVOS may
  also start one (`response.started`: a timer, a reminder);
* `response.cancel` stops the response at once (synthesis in flight is abandoned, not awaited) and publishes
  `response.done{status: cancelled}`; a failure publishes `response.done{status: failed, message}`;
* `output_audio.played{mark}` says the client played a reply up to a mark (OVOS hears the speech ended);
* `session.state{state}` goes to the gateway whenever the session's OVOS session dict changed, and comes back
  with the turn events, so a worker that takes the session over continues its dialog.

The dispatcher never waits on speech work: transcription and responses run as per-session tasks, so a slow
STT in one session does not hold back another session's messages. The recognizer, the voices and the OVOS
connection are injected and shared by all sessions (load heavy models once per process).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Mapping
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from media_gateway.observability.logging import get_logger
from media_gateway.ovos.assistant import OvosAssistant
from media_gateway.ovos.dialog import SessionDialog
from media_gateway.ovos.sessions import SessionPreferences
from media_gateway.pipeline.bus import Bus, Subscription
from media_gateway.pipeline.messages import (
    ALIVE_SECONDS,
    INPUT_TOPIC,
    PIPELINE_SAMPLE_RATE,
    REPLY_TO_HEADER,
    PipelineAudio,
    PipelineEvent,
    SessionSettings,
    audio_headers,
    decode,
    event_payload,
)
from media_gateway.pipeline.speaker import Speaker
from media_gateway.speech.stt import SpeechRecognizer, Transcript
from media_gateway.speech.tts import SpeechSynthesizer

log = get_logger("media_gateway.pipeline.speech")

T = TypeVar("T")

MAX_UTTERANCE_SECONDS: Final = 300
_MAX_UTTERANCE_BYTES: Final = MAX_UTTERANCE_SECONDS * PIPELINE_SAMPLE_RATE * 2
_KEPT_TRANSCRIPTS: Final = 32
_KEPT_CLOSED: Final = 10_000
WORKER_GROUP: Final = "workers"
NOTHING_HEARD_REPLY: Final = "Sorry, I didn't catch that."
DEFAULT_SESSION_TTL_SECONDS: Final = 900.0


Voices = Callable[[str], SpeechSynthesizer]


@dataclass
class _Session:
    session_id: str
    settings: SessionSettings
    reply_to: str
    dialog: SessionDialog | None = None
    last_seen: float = 0.0
    audio: bytearray = field(default_factory=bytearray)
    transcripts: OrderedDict[str, asyncio.Future[Transcript]] = field(default_factory=OrderedDict)
    last_transcription: asyncio.Task[None] | None = None
    last_response: asyncio.Task[None] | None = None
    responses: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)


class SpeechPipeline:
    def __init__(
        self,
        bus: Bus,
        *,
        recognizer: SpeechRecognizer,
        voices: Voices,
        assistant: OvosAssistant,
        executor: Executor | None = None,
        chunk_ms: int = 200,
        session_ttl_seconds: float = DEFAULT_SESSION_TTL_SECONDS,
        group: str = WORKER_GROUP,
    ) -> None:
        if not 10 <= chunk_ms <= 200:
            raise ValueError("chunk_ms must be within 10..200")
        self._bus = bus
        self._recognizer = recognizer
        self._voices = voices
        self._assistant = assistant
        self._executor = executor
        self._owns_executor = executor is None
        # Synthesis has a pool of its own: behind a queue of transcriptions (each hundreds of ms of CPU)
        # the next sentence of a reply would wait for all of them, and the reply's first audio with it.
        self._tts_executor: ThreadPoolExecutor | None = None
        self._chunk_ms = chunk_ms
        self._session_ttl = session_ttl_seconds
        self._group = group
        self._sessions: dict[str, _Session] = {}
        self._subscription: Subscription | None = None
        self._dispatcher: asyncio.Task[None] | None = None
        self._sweeper: asyncio.Task[None] | None = None
        # Sessions closed lately: a late message of one must not bring it back.
        self._closed: OrderedDict[str, None] = OrderedDict()

    @property
    def sessions(self) -> int:
        return len(self._sessions)

    async def start(self) -> None:
        if self._dispatcher is not None:
            return
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                max_workers=max(4, 2 * (os.cpu_count() or 1)), thread_name_prefix="speech"
            )
        self._tts_executor = ThreadPoolExecutor(
            max_workers=max(2, os.cpu_count() or 1), thread_name_prefix="tts"
        )
        self._subscription = await self._bus.subscribe(INPUT_TOPIC, group=self._group)
        self._dispatcher = asyncio.create_task(self._dispatch(self._subscription), name="speech-pipeline")
        self._sweeper = asyncio.create_task(self._sweep(), name="speech-pipeline-ttl")

    async def stop(self) -> None:
        if self._subscription is not None:
            await self._subscription.close()
            self._subscription = None
        for task in (self._dispatcher, self._sweeper):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._dispatcher = self._sweeper = None
        for session_id in list(self._sessions):
            await self._close_session(session_id)
        if self._owns_executor and self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
        if self._tts_executor is not None:
            self._tts_executor.shutdown(wait=False, cancel_futures=True)
            self._tts_executor = None

    # -- dispatch (never blocks on speech work) ------------------------------------------------------------

    async def _dispatch(self, subscription: Subscription) -> None:
        async for message in subscription:
            try:
                decoded = decode(message)
            except ValueError as exc:
                log.warning("pipeline_bad_message", session_id=message.key, error=str(exc))
                continue
            try:
                session = self._session_of(decoded, message.headers.get(REPLY_TO_HEADER))
                if session is None:
                    continue
                if isinstance(decoded, PipelineAudio):
                    self._on_audio(session, decoded)
                else:
                    await self._on_event(session, decoded)
            except Exception:
                log.exception("pipeline_message_failed", session_id=message.key)

    def _session_of(self, message: PipelineAudio | PipelineEvent, reply_to: str | None) -> _Session | None:
        """The message's session: known, or new when the message says where replies go."""
        session = self._sessions.get(message.session_id)
        kind = message.type if isinstance(message, PipelineEvent) else "audio"
        if kind == "session.open":  # a session reopened (a reconnect with its client secret)
            self._closed.pop(message.session_id, None)
        adoptable = kind != "session.close" and message.session_id not in self._closed
        if session is None and reply_to and adoptable:
            session = _Session(message.session_id, SessionSettings(), reply_to)
            session.dialog = self._new_dialog(session)
            self._sessions[message.session_id] = session
        if session is None:
            log.debug("pipeline_unknown_session", session_id=message.session_id)
            return None
        if reply_to:
            session.reply_to = reply_to
        session.last_seen = asyncio.get_running_loop().time()
        return session

    async def _sweep(self) -> None:
        """Forget sessions nobody sent anything for `session_ttl_seconds` and that have no work running."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(max(0.05, self._session_ttl / 4))
            cutoff = loop.time() - self._session_ttl
            for session_id, session in list(self._sessions.items()):
                if session.last_seen < cutoff and not session.tasks:
                    log.info("pipeline_session_expired", session_id=session_id)
                    await self._close_session(session_id)

    def _on_audio(self, session: _Session, audio: PipelineAudio) -> None:
        if audio.sample_rate != PIPELINE_SAMPLE_RATE:
            log.warning("pipeline_audio_rate", session_id=audio.session_id, sample_rate=audio.sample_rate)
            return
        session.audio += audio.pcm
        if len(session.audio) > _MAX_UTTERANCE_BYTES:
            del session.audio[: len(session.audio) - _MAX_UTTERANCE_BYTES]

    async def _on_event(self, session: _Session, event: PipelineEvent) -> None:
        session_id, data = event.session_id, event.data
        if event.type in ("session.open", "session.update"):
            _configure(session, data)
            return
        if event.type == "session.close":
            await self._close_session(session_id)
            return
        carried = data.get("session")
        if isinstance(carried, Mapping):
            _configure(session, carried)
        dialog = session.dialog
        assert dialog is not None
        dialog.state.adopt(data.get("state"))
        if event.type == "input.commit":
            self._commit(session, str(data.get("item_id", "")))
        elif event.type == "input.clear":
            session.audio.clear()
        elif event.type == "response.create":
            self._create_response(session, data)
        elif event.type == "response.cancel":
            self._cancel_response(session, data.get("response_id"))
        elif event.type == "output_audio.played":
            await dialog.played(str(data.get("mark", "")))
        elif event.type == "input.dtmf":
            # OVOS has no keypad input on its bus: the digits are on the record, for skills to come.
            log.info("pipeline_dtmf", session_id=session_id, digit=str(data.get("digit", ""))[:1])
        else:
            log.debug("pipeline_ignored_event", session_id=session_id, type=event.type)

    # -- transcription -------------------------------------------------------------------------------------

    def _commit(self, session: _Session, item_id: str) -> None:
        pcm = bytes(session.audio)
        session.audio.clear()
        future: asyncio.Future[Transcript] = asyncio.get_running_loop().create_future()
        session.transcripts[item_id] = future
        while len(session.transcripts) > _KEPT_TRANSCRIPTS:
            _, old = session.transcripts.popitem(last=False)
            old.cancel()
        previous = session.last_transcription
        task = self._spawn(session, self._transcribe(session, item_id, pcm, future, previous))
        session.last_transcription = task

    async def _transcribe(
        self,
        session: _Session,
        item_id: str,
        pcm: bytes,
        future: asyncio.Future[Transcript],
        previous: asyncio.Task[None] | None,
    ) -> None:
        if previous is not None:
            await asyncio.wait([previous])
        language = session.settings.language
        try:
            transcript = await self._in_thread(self._recognizer.transcribe, pcm, language)
        except Exception as exc:
            log.warning(
                "transcription_failed", session_id=session.session_id, item_id=item_id, error=str(exc)
            )
            if not future.done():
                future.set_exception(TranscriptionFailed(str(exc)))
                future.exception()  # retrieved here; a response waiting on it reports it again
            if session.settings.transcribe:
                await self._emit(session, "transcription.failed", item_id=item_id, message=str(exc))
            return
        if not future.done():
            future.set_result(transcript)
        if session.settings.transcribe:
            await self._emit(
                session,
                "transcription.completed",
                item_id=item_id,
                transcript=transcript.text,
                audio_seconds=round(transcript.audio_seconds, 3),
            )

    # -- responses -----------------------------------------------------------------------------------------

    def _new_dialog(self, session: _Session) -> SessionDialog:
        async def emit(event_type: str, **fields: Any) -> None:
            await self._emit(session, event_type, **fields)

        async def emit_audio(response_id: str, pcm: bytes, rate: int, seq: int) -> None:
            headers = audio_headers(sample_rate=rate, response_id=response_id, seq=str(seq))
            await self._bus.publish(session.reply_to, session.session_id, pcm, headers)

        def speaker(dialog: SessionDialog) -> Speaker:
            return Speaker(
                emit=emit,
                emit_audio=emit_audio,
                synthesizer=lambda: self._voices(session.settings.voice),
                executor=self._tts_executor,
                listener=dialog,
                chunk_ms=self._chunk_ms,
            )

        return SessionDialog(
            session.session_id,
            assistant=self._assistant,
            speaker=speaker,
            emit=emit,
            preferences=lambda: SessionPreferences.from_fields(session.settings.as_fields()),
            audio_default=lambda: "audio" in session.settings.output_modalities,
        )

    def _create_response(self, session: _Session, data: Mapping[str, Any]) -> None:
        response_id = str(data.get("response_id", ""))
        modalities = data.get("output_modalities")
        audio = "audio" in (modalities if modalities is not None else session.settings.output_modalities)
        item_id = data.get("input_item_id")
        input_text = data.get("input_text")
        previous = session.last_response
        task = self._spawn(
            session, self._respond(session, response_id, item_id, input_text, audio=audio, previous=previous)
        )
        session.responses[response_id] = task
        session.last_response = task
        task.add_done_callback(lambda _: session.responses.pop(response_id, None))
        alive = self._spawn(session, self._keep_alive(session, response_id))
        task.add_done_callback(lambda _: alive.cancel())  # until it is done, failed or cancelled

    def _cancel_response(self, session: _Session, response_id: Any) -> None:
        if not response_id and session.responses:
            response_id = next(reversed(session.responses))  # no id: the latest response
        rid = str(response_id or "")
        task = session.responses.get(rid)
        if task is None or task.done():
            return  # unknown or already finished (its response.done is out)
        self._spawn(session, self._report_cancelled(session, task, rid))

    async def _report_cancelled(self, session: _Session, task: asyncio.Task[None], response_id: str) -> None:
        dialog = session.dialog
        assert dialog is not None
        if not await dialog.cancel(response_id):
            task.cancel()  # still waiting for its transcript or its turn: nothing was said yet
        await asyncio.wait([task])
        await self._emit(session, "response.done", response_id=response_id, status="cancelled", message="")

    async def _keep_alive(self, session: _Session, response_id: str) -> None:
        while True:
            await asyncio.sleep(ALIVE_SECONDS)
            await self._emit(session, "response.alive", response_id=response_id)

    async def _respond(
        self,
        session: _Session,
        response_id: str,
        item_id: Any,
        input_text: Any,
        *,
        audio: bool,
        previous: asyncio.Task[None] | None,
    ) -> None:
        if previous is not None:
            await asyncio.wait([previous])
        dialog = session.dialog
        assert dialog is not None
        try:
            utterance = await self._utterance(session, item_id, input_text)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning(
                "response_failed", session_id=session.session_id, response_id=response_id, error=str(exc)
            )
            await self._emit(
                session, "response.done", response_id=response_id, status="failed", message=str(exc)
            )
            return
        if utterance.strip(" .,!?"):
            await dialog.respond(response_id, utterance, audio=audio)
        else:  # whisper heard nothing: OVOS would only fall back, say so at once
            await dialog.say_locally(response_id, NOTHING_HEARD_REPLY, audio=audio)

    async def _utterance(self, session: _Session, item_id: Any, input_text: Any) -> str:
        if input_text is not None:
            return str(input_text)
        future = session.transcripts.get(str(item_id)) if item_id else None
        if future is None:
            raise LookupError(f"no committed input item {item_id!r}")
        transcript = await asyncio.shield(future)
        return transcript.text

    # -- helpers -------------------------------------------------------------------------------------------

    async def _in_thread(self, function: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    async def _emit(self, session: _Session, event_type: str, **fields: Any) -> None:
        payload, headers = event_payload(event_type, **fields)
        await self._bus.publish(session.reply_to, session.session_id, payload, headers)

    def _spawn(self, session: _Session, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(work)
        session.tasks.add(task)
        task.add_done_callback(session.tasks.discard)
        task.add_done_callback(_log_crash)
        return task

    async def _close_session(self, session_id: str) -> None:
        self._closed[session_id] = None
        if len(self._closed) > _KEPT_CLOSED:
            self._closed.popitem(last=False)
        session = self._sessions.pop(session_id, None)
        if session is None:
            return
        tasks = list(session.tasks)
        for task in tasks:
            task.cancel()
        for future in session.transcripts.values():
            future.cancel()
        if tasks:
            await asyncio.wait(tasks)
        if session.dialog is not None:
            await session.dialog.close()


def _configure(session: _Session, data: Mapping[str, Any]) -> None:
    session.settings = SessionSettings.from_fields(data)


class TranscriptionFailed(RuntimeError):
    pass


def _log_crash(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("pipeline_task_crashed", error=repr(task.exception()))
