"""One session's speech output in the pipeline: what the assistant says, spoken in order.

The session's dialog queues text (`say`) and ends (`end`) per response; the speaker turns them into the
messages of the bus contract, strictly in the order they were queued:

* each sentence of a `say`: `response.text.delta`, then (unless the response is text only) its audio,
  synthesised in the thread pool and published in chunks of at most `chunk_ms` as soon as it is ready
  (sentence by sentence, so the first audio goes out after one short synthesis, not the whole reply);
* after the last chunk of a `say`: `response.mark{response_id, mark}`; the gateway answers
  `output_audio.played{mark}` once its client has played everything up to it;
* `end`: `response.done{status}` after everything queued before it, so a response is done only once its
  audio is out.

`drop(response_id)` forgets what is queued for a response and abandons a synthesis in flight (its result is
discarded, it is not awaited). The listener hears when audio starts after silence and when a `say` is out.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Final, Protocol

from media_gateway.observability.logging import get_logger
from media_gateway.speech.tts import SpeechSynthesizer, split_sentences

log = get_logger(__name__)

# Responses dropped lately whose late `say`/`end` must still be ignored.
_DROPPED_KEPT: Final = 64

EmitEvent = Callable[..., Awaitable[None]]
EmitAudio = Callable[[str, bytes, int, int], Awaitable[None]]


class SpeakerListener(Protocol):
    def speech_started(self) -> None:
        """The first audio after silence went out."""
        ...

    def said(self, response_id: str, mark: str | None) -> None:
        """Everything of one `say` went out; `mark` names its end, None when it had no audio."""
        ...

    def finished(self, response_id: str, status: str) -> None:
        """`response.done` went out for this response."""
        ...


@dataclass(frozen=True)
class _Say:
    response_id: str
    text: str
    audio: bool


@dataclass(frozen=True)
class _End:
    response_id: str
    status: str
    message: str


class Speaker:
    def __init__(
        self,
        *,
        emit: EmitEvent,
        emit_audio: EmitAudio,
        synthesizer: Callable[[], SpeechSynthesizer],
        executor: Executor | None,
        listener: SpeakerListener,
        chunk_ms: int = 200,
    ) -> None:
        self._emit = emit
        self._emit_audio = emit_audio
        self._synthesizer = synthesizer
        self._executor = executor
        self._listener = listener
        self._chunk_ms = chunk_ms
        self._queue: deque[_Say | _End] = deque()
        self._wake = asyncio.Event()
        self._dropped: OrderedDict[str, None] = OrderedDict()
        self._texts: dict[str, int] = {}  # response id → text deltas sent (for spacing)
        self._seq: dict[str, int] = {}
        self._marks = itertools.count(1)
        self._current: _Say | _End | None = None
        self._speaking = False
        self._task = asyncio.create_task(self._run(), name="speaker")

    @property
    def busy(self) -> bool:
        return bool(self._queue) or self._current is not None

    def say(self, response_id: str, text: str, *, audio: bool) -> None:
        if text.strip() and response_id not in self._dropped:
            self._put(_Say(response_id, text, audio))

    def end(self, response_id: str, status: str, message: str = "") -> None:
        if response_id not in self._dropped:
            self._put(_End(response_id, status, message))

    def drop(self, response_id: str) -> None:
        """Speak nothing more of this response; its `end` is dropped too (the caller reports it)."""
        self._forget(response_id)
        self._queue = deque(item for item in self._queue if item.response_id != response_id)

    def drop_all(self) -> list[str]:
        """Stop speaking everything (OVOS asked to stop this session's speech): the responses whose
        speech was cut keep their `end`, so they complete with the audio that went out."""
        cut = {item.response_id for item in self._queue if isinstance(item, _Say)}
        if isinstance(self._current, _Say):
            cut.add(self._current.response_id)
            self._forget(self._current.response_id)  # abandon the sentence in flight
        self._queue = deque(item for item in self._queue if isinstance(item, _End))
        return sorted(cut)

    def _forget(self, response_id: str) -> None:
        self._dropped[response_id] = None
        while len(self._dropped) > _DROPPED_KEPT:
            self._dropped.popitem(last=False)

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    def _put(self, item: _Say | _End) -> None:
        self._queue.append(item)
        self._wake.set()

    async def _run(self) -> None:
        while True:
            while not self._queue:
                self._wake.clear()
                self._speaking = False
                await self._wake.wait()
            item = self._queue.popleft()
            self._current = item
            try:
                if isinstance(item, _Say):
                    await self._say(item)
                else:
                    await self._end(item)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("speaker.failed", response_id=item.response_id, error=str(exc))
                self.drop(item.response_id)
                await self._emit(
                    "response.done", response_id=item.response_id, status="failed", message=str(exc)
                )
                self._listener.finished(item.response_id, "failed")
            finally:
                self._current = None

    async def _say(self, item: _Say) -> None:
        rid = item.response_id
        spoke = False
        for sentence in split_sentences(item.text):
            if rid in self._dropped:
                return
            count = self._texts.get(rid, 0)
            self._texts[rid] = count + 1
            await self._emit(
                "response.text.delta", response_id=rid, delta=sentence if count == 0 else " " + sentence
            )
            if not item.audio:
                continue
            synthesizer = self._synthesizer()
            pcm = await asyncio.get_running_loop().run_in_executor(
                self._executor, synthesizer.synthesize, sentence
            )
            if rid in self._dropped:
                return
            if pcm and not self._speaking:
                self._speaking = True
                self._listener.speech_started()
            spoke = spoke or bool(pcm)
            await self._chunks(rid, pcm, synthesizer.sample_rate)
        mark = None
        if spoke:
            mark = str(next(self._marks))
            await self._emit("response.mark", response_id=rid, mark=mark)
        self._listener.said(rid, mark)

    async def _chunks(self, response_id: str, pcm: bytes, rate: int) -> None:
        step = rate * self._chunk_ms // 1000 * 2
        for offset in range(0, len(pcm), step):
            if response_id in self._dropped:
                return
            seq = self._seq.get(response_id, 0)
            self._seq[response_id] = seq + 1
            await self._emit_audio(response_id, pcm[offset : offset + step], rate, seq)

    async def _end(self, item: _End) -> None:
        rid = item.response_id
        self._texts.pop(rid, None)
        self._seq.pop(rid, None)
        await self._emit("response.done", response_id=rid, status=item.status, message=item.message)
        self._listener.finished(rid, item.status)
