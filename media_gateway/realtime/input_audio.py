"""The input audio buffer of one session: decode, detect turns, and feed the pipeline.

Appended audio (base64 in the session's input format, or 16 kHz frames from a WebRTC track) becomes
16 kHz mono 20 ms frames. With server VAD on, frames reach the bus only around speech (a ring buffer
keeps `prefix_padding_ms` of audio before the start), so silence costs no bus traffic; with turn
detection off (manual commit) every frame goes to the bus. `buffered_ms` counts all audio appended
since the last commit or clear, which is what OpenAI's commit rule measures.

The buffer holds everything appended since the last commit or clear, as upstream's does: with server
VAD on, the audio the detector has not (yet) heard as speech is kept here, and a manual
`input_audio_buffer.commit` publishes it before committing. That unspoken audio is bounded by
`MAX_UNSPOKEN_SECONDS`; at the bound the oldest of it is dropped, so a manual commit holds at most the
last `MAX_UNSPOKEN_SECONDS` of audio that was never speech. When speech starts, audio older than the
prefix padding is dropped: the turn the detector commits is prefix + speech, as upstream's.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from media_gateway.codecs import AudioFormatError, InputAudioDecoder
from media_gateway.pipeline.messages import FRAME_MS
from media_gateway.realtime.errors import RealtimeError
from media_gateway.realtime.ids import item_id as new_item_id
from media_gateway.realtime.pipeline_channel import PipelineChannel
from media_gateway.speech.vad import SpeechStarted, SpeechStopped, TurnDetector, VadModel, semantic_silence_ms

TurnEvent = SpeechStarted | SpeechStopped

MAX_UNSPOKEN_SECONDS = 30
_MAX_UNSPOKEN_FRAMES = MAX_UNSPOKEN_SECONDS * 1000 // FRAME_MS


@dataclass(frozen=True)
class TurnDetection:
    """The effective turn-detection settings (server_vad, or semantic_vad mapped onto it)."""

    threshold: float
    prefix_padding_ms: int
    silence_duration_ms: int
    create_response: bool
    interrupt_response: bool

    @classmethod
    def from_config(cls, value: Mapping[str, Any] | None, *, responds: bool = True) -> TurnDetection | None:
        """`responds=False` (a transcription session) turns the response and barge-in flags off: such
        a session transcribes turns and never responds."""
        detection = cls._parse(value)
        if detection is None or responds:
            return detection
        return dataclasses.replace(detection, create_response=False, interrupt_response=False)

    @classmethod
    def _parse(cls, value: Mapping[str, Any] | None) -> TurnDetection | None:
        if value is None:
            return None
        if value.get("type") == "semantic_vad":
            # semantic_vad has no acoustic parameters: map its eagerness onto server VAD silence.
            return cls(
                threshold=0.5,
                prefix_padding_ms=300,
                silence_duration_ms=semantic_silence_ms(str(value.get("eagerness") or "auto")),
                create_response=bool(value.get("create_response", True)),
                interrupt_response=bool(value.get("interrupt_response", True)),
            )
        return cls(
            threshold=float(value.get("threshold", 0.5)),
            prefix_padding_ms=int(value.get("prefix_padding_ms", 300)),
            silence_duration_ms=int(value.get("silence_duration_ms", 500)),
            create_response=bool(value.get("create_response", True)),
            interrupt_response=bool(value.get("interrupt_response", True)),
        )


class InputAudio:
    def __init__(
        self,
        channel: PipelineChannel,
        *,
        input_format: Mapping[str, Any],
        turn_detection: TurnDetection | None,
        vad_model: VadModel,
    ) -> None:
        self._channel = channel
        self._vad_model = vad_model
        self._decoder = InputAudioDecoder(input_format)
        self._format = dict(input_format)
        self.turn_detection = turn_detection
        self._detector: TurnDetector | None = None
        self._prefix: collections.deque[bytes] = collections.deque()
        self._unspoken: collections.deque[bytes] = collections.deque(maxlen=_MAX_UNSPOKEN_FRAMES)
        self._in_speech = False
        # The item id of the speech turn in progress (from speech_started to its commit).
        self.speech_item_id: str | None = None
        self._seq = 0
        self.buffered_ms = 0
        self.total_ms = 0
        self._detector_offset_ms = 0
        self._configure_detector()

    @property
    def in_speech(self) -> bool:
        """True between a detected speech start and its stop (server VAD only)."""
        return self._in_speech

    def _configure_detector(self) -> None:
        settings = self.turn_detection
        if settings is None:
            self._detector = None
        else:
            self._detector = TurnDetector(
                threshold=settings.threshold,
                prefix_padding_ms=settings.prefix_padding_ms,
                silence_duration_ms=settings.silence_duration_ms,
                model=self._vad_model,
            )
            # Audio the old detector held back stays in the buffer, as unspoken audio.
            self._unspoken.extend(self._prefix)
            self._prefix = collections.deque(maxlen=max(1, settings.prefix_padding_ms // FRAME_MS))
        # A new detector counts from zero; events report positions in the session's whole input stream.
        self._detector_offset_ms = self.total_ms
        self._in_speech = False

    async def reconfigure(
        self, input_format: Mapping[str, Any], turn_detection: TurnDetection | None
    ) -> None:
        if dict(input_format) != self._format:
            self._decoder = InputAudioDecoder(input_format)
            self._format = dict(input_format)
        if turn_detection != self.turn_detection:
            if turn_detection is None and not self._in_speech:
                # Manual commits from now on: every buffered frame must be on the bus before the next.
                for buffered in (*self._unspoken, *self._prefix):
                    await self._publish(buffered)
                self._unspoken.clear()
                self._prefix.clear()
            self.turn_detection = turn_detection
            self._configure_detector()

    async def append_encoded(self, data: bytes, event_id: str | None) -> list[TurnEvent]:
        try:
            frames = self._decoder.decode(data)
        except AudioFormatError as exc:
            raise RealtimeError(exc.message, code=exc.code, param="audio", event_id=event_id) from None
        return await self.push_frames(frames)

    async def push_frames(self, frames: list[bytes]) -> list[TurnEvent]:
        events: list[TurnEvent] = []
        for frame in frames:
            self.total_ms += FRAME_MS
            self.buffered_ms += FRAME_MS
            if self._detector is None:
                await self._publish(frame)
                continue
            detected = [self._shift(event) for event in self._detector.process(frame)]
            for event in detected:
                if isinstance(event, SpeechStarted):
                    self._in_speech = True
                    self.speech_item_id = new_item_id()
                    self._unspoken.clear()
                    for buffered in self._prefix:
                        await self._publish(buffered)
                    self._prefix.clear()
                else:
                    self._in_speech = False
            if self._in_speech or any(isinstance(e, SpeechStopped) for e in detected):
                await self._publish(frame)
            else:
                if len(self._prefix) == self._prefix.maxlen:
                    self._unspoken.append(self._prefix[0])
                self._prefix.append(frame)
            events.extend(detected)
        return events

    def _shift(self, event: TurnEvent) -> TurnEvent:
        if not self._detector_offset_ms:
            return event
        if isinstance(event, SpeechStarted):
            return dataclasses.replace(event, audio_start_ms=event.audio_start_ms + self._detector_offset_ms)
        return dataclasses.replace(event, audio_end_ms=event.audio_end_ms + self._detector_offset_ms)

    async def _publish(self, frame: bytes) -> None:
        self._seq += 1
        await self._channel.audio(frame, seq=str(self._seq))

    async def commit(self, item_id: str) -> None:
        """Everything in the buffer since the last commit/clear becomes utterance `item_id`."""
        if not self._in_speech:
            for buffered in (*self._unspoken, *self._prefix):
                await self._publish(buffered)
            self._unspoken.clear()
            self._prefix.clear()
        await self._channel.event("input.commit", item_id=item_id)
        self.buffered_ms = 0
        self.speech_item_id = None

    async def clear(self) -> None:
        await self._channel.event("input.clear")
        self._unspoken.clear()
        self._prefix.clear()
        self.buffered_ms = 0
        self.speech_item_id = None
