"""One realtime session's conversation with OVOS: turns mapped to the realtime protocol.

A turn starts when the pipeline has a response to give for an utterance (`respond`): the utterance goes to
ovos-core with the session's OVOS session dict, and what OVOS says about that session comes back through
`deliver`, handled one message at a time by the dialog's task:

| OVOS | response |
|---|---|
| `speak` during the turn | its text and audio (by sentence) |
| `speak` with `expect_response` | the response ends after its audio; the next utterance answers the skill |
| `complete_intent_failure` | a spoken apology (never silence); `handled` follows |
| `ovos.utterance.handled` | `response.done` completed, after the turn's audio |
| `ovos.utterance.cancelled` | `response.done` cancelled |
| nothing for `turn_timeout` | `response.done` failed |
| `speak` with no turn open (timers, reminders) | a new, server-initiated response |
| `mycroft.audio.speech.stop` / `mycroft.stop` | the session's speech stops |

Speech state goes back to OVOS as ovos-audio would send it: `recognizer_loop:audio_output_start` with the
first audio after silence, and `recognizer_loop:audio_output_end` once the client has *played* everything
(the gateway reports each spoken `say`'s mark as played; a text-only reply counts as played a moment after
its text went out). A skill that spoke with `wait=True` is released by that message.

Cancelling a response (the client's `response.cancel`, or barge-in) drops its queued speech, tells OVOS to
stop this session's speech (`mycroft.audio.speech.stop`) and reports the output ended; what OVOS still says
for the cancelled turn is dropped, not turned into a new response.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from media_gateway.observability.logging import get_logger
from media_gateway.ovos.admission import AdmissionRefused
from media_gateway.ovos.assistant import CONNECTION_LOST, OvosAssistant
from media_gateway.ovos.bus import OvosUnavailable
from media_gateway.ovos.message import OvosMessage, for_session, utterance
from media_gateway.ovos.sessions import OvosSessionState, SessionPreferences
from media_gateway.pipeline.speaker import Speaker
from media_gateway.realtime.ids import response_id as new_response_id

log = get_logger(__name__)

INTENT_FAILURE_REPLY: Final = "Sorry, I don't know how to help with that."
# A skill registers its wait for `audio_output_end` right after it sends `speak`: an end sent at once can
# arrive first and be missed (the skill then waits its full 15 s). Text-only output waits this long.
TEXT_PLAYED_DELAY: Final = 0.25
_INBOX_BOUND: Final = 1024
_OVER_KEPT: Final = 64
# The session dict changes with nearly every message of a turn; the gateway needs it when a turn or a
# dialog step is over (a speak expecting an answer), not at every message.
_STATE_POINTS: Final = frozenset({"ovos.utterance.handled", "ovos.utterance.cancelled", CONNECTION_LOST})
# Our key in the context of the utterance: OVOS copies the context into everything the turn causes (replies,
# forwards, a skill's speak), so it says which turn a message belongs to. A `get_response` answer's messages
# carry the id of the turn that asked the question.
TURN_KEY: Final = "gateway_turn"

EmitEvent = Callable[..., Awaitable[None]]


@dataclass
class _Turn:
    """The turn in flight."""

    response_id: str
    audio: bool
    answers: str | None = None  # the turn whose question this one answers (its skill is in get_response)
    spoke: bool = False
    answered: bool = False  # a speak expected an answer: the response ended, OVOS's turn has not
    cancelled: bool = False

    @property
    def speaking_for(self) -> bool:
        return not (self.answered or self.cancelled)


class SessionDialog:
    def __init__(
        self,
        session_id: str,
        *,
        assistant: OvosAssistant,
        speaker: Callable[[SessionDialog], Speaker],
        emit: EmitEvent,
        preferences: Callable[[], SessionPreferences],
        audio_default: Callable[[], bool],
    ) -> None:
        self.session_id = session_id
        self._assistant = assistant
        self._emit = emit
        self._preferences = preferences
        self._audio_default = audio_default
        self.state = OvosSessionState(session_id)
        self._published_version = 0
        self._turn: _Turn | None = None
        # Turns that are over, and how: "cancelled" (what OVOS still says of it is dropped), "done" or
        # "timeout" (what it says later is a response of its own).
        self._over: OrderedDict[str, str] = OrderedDict()
        self._timeout: asyncio.TimerHandle | None = None
        self._finished: dict[str, asyncio.Future[str]] = {}
        self._marks: dict[str, str] = {}  # mark → response id, spoken and not yet played
        self._speaking = False
        self._inbox: asyncio.Queue[OvosMessage] = asyncio.Queue(_INBOX_BOUND)
        self._later: set[asyncio.Task[None]] = set()
        self.speaker = speaker(self)
        self._task = asyncio.create_task(self._run(), name=f"ovos-dialog:{session_id}")
        assistant.attach(session_id, self.deliver)

    # --- from the pipeline --------------------------------------------------------------------------------

    async def respond(self, response_id: str, text: str, *, audio: bool) -> str:
        """Ask OVOS about `text` as response `response_id`; returns the response's final status once its
        `response.done` is out."""
        finished = self._expect(response_id)
        try:
            await self._assistant.admission.enter(self.session_id)
            session = self.state.outgoing(self._preferences())
            previous = self._turn
            answers = previous.response_id if previous is not None and previous.answered else None
            self._turn = _Turn(response_id, audio, answers)
            self._arm_timeout()
            message = utterance(text, session["lang"], session)
            message.context[TURN_KEY] = response_id
            await self._assistant.send(message)
        except (AdmissionRefused, OvosUnavailable) as exc:
            self._turn = None
            self._disarm_timeout()
            self.speaker.end(response_id, "failed", str(exc))
        try:
            return await finished
        finally:
            self._finished.pop(response_id, None)

    async def say_locally(self, response_id: str, text: str, *, audio: bool) -> str:
        """A reply that needs no OVOS (nothing was heard): spoken and ended like any other."""
        finished = self._expect(response_id)
        self.speaker.say(response_id, text, audio=audio)
        self.speaker.end(response_id, "completed")
        try:
            return await finished
        finally:
            self._finished.pop(response_id, None)

    def _expect(self, response_id: str) -> asyncio.Future[str]:
        finished: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._finished[response_id] = finished
        return finished

    async def cancel(self, response_id: str) -> bool:
        """Stop this response (client cancel, barge-in). False when it already ended."""
        finished = self._finished.get(response_id)
        if finished is None or finished.done():
            return False
        self.speaker.drop(response_id)
        turn = self._turn
        if turn is not None and turn.response_id == response_id:
            turn.cancelled = True
            self._disarm_timeout()
            self._end(response_id, "cancelled")
        for mark in [m for m, rid in self._marks.items() if rid == response_id]:
            del self._marks[mark]
        if self._speaking:
            await self._send("mycroft.audio.speech.stop")
        await self._output_maybe_ended()
        finished.set_result("cancelled")
        return True

    async def played(self, mark: str) -> None:
        """The client played everything up to `mark` (or its playout was cut there)."""
        if self._marks.pop(mark, None) is not None:
            await self._output_maybe_ended()

    async def close(self) -> None:
        self._assistant.detach(self.session_id)
        self._disarm_timeout()
        for task in [self._task, *self._later]:
            task.cancel()
        for task in [self._task, *self._later]:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.speaker.close()
        for future in self._finished.values():
            if not future.done():
                future.set_result("cancelled")

    # --- SpeakerListener ----------------------------------------------------------------------------------

    def speech_started(self) -> None:
        if not self._speaking:
            self._speaking = True
            self.state.set_speaking(True)
            self._later_task(self._send("recognizer_loop:audio_output_start"))

    def said(self, response_id: str, mark: str | None) -> None:
        if mark is not None:
            self._marks[mark] = response_id
        else:
            self._later_task(self._text_played())

    def finished(self, response_id: str, status: str) -> None:
        future = self._finished.get(response_id)
        if future is not None and not future.done():
            future.set_result(status)

    # --- from OVOS ----------------------------------------------------------------------------------------

    def deliver(self, message: OvosMessage) -> None:
        """A message for this session (called by the assistant's router; never blocks)."""
        try:
            self._inbox.put_nowait(message)
        except asyncio.QueueFull:
            log.warning("ovos.dialog_inbox_full", session_id=self.session_id, type=message.type)

    async def _run(self) -> None:
        while True:
            message = await self._inbox.get()
            try:
                await self._handle(message)
            except Exception:
                log.exception("ovos.dialog_message_failed", session_id=self.session_id, type=message.type)

    def _current(self, message: OvosMessage) -> _Turn | None:
        """The turn in flight, if `message` belongs to it: it names the turn, or a turn this dialog does
        not know to be over (the answer to a `get_response` comes with the id of the turn that asked, which
        may have been another worker's before a failover). A message naming no turn (a timer set up
        outside the gateway) or a turn that is over does not belong to it."""
        turn = self._turn
        named = message.context.get(TURN_KEY)
        if turn is None or not isinstance(named, str) or (named != turn.response_id and named in self._over):
            return None
        return turn

    def _end(self, turn_id: str, how: str) -> None:
        self._over[turn_id] = how
        while len(self._over) > _OVER_KEPT:
            self._over.popitem(last=False)

    async def _handle(self, message: OvosMessage) -> None:
        self.state.update(message.session)
        kind = message.type
        turn = self._current(message)
        if kind == "speak":
            await self._speak(message, turn)
        elif kind == "complete_intent_failure":
            if turn is not None and turn.speaking_for:
                turn.spoke = True
                self.speaker.say(turn.response_id, INTENT_FAILURE_REPLY, audio=turn.audio)
        elif kind in ("ovos.utterance.handled", "ovos.utterance.cancelled"):
            if turn is not None:
                if turn.speaking_for:
                    status = "completed" if kind == "ovos.utterance.handled" else "cancelled"
                    self.speaker.end(turn.response_id, status)
                self._turn_over("done")
            elif self._turn is None:  # a dialog that ended on its own (the skill stopped waiting)
                self._assistant.admission.leave(self.session_id)
        elif kind in ("mycroft.audio.speech.stop", "mycroft.stop"):
            if self.speaker.drop_all():
                log.info("ovos.speech_stopped", session_id=self.session_id)
        elif kind == CONNECTION_LOST:
            if self._turn is not None and self._turn.speaking_for:
                self.speaker.end(self._turn.response_id, "failed", "the OVOS messagebus connection was lost")
            self._turn_over("done")
        if kind in _STATE_POINTS or (kind == "speak" and message.data.get("expect_response")):
            await self._publish_state()

    async def _speak(self, message: OvosMessage, turn: _Turn | None) -> None:
        text = str(message.data.get("utterance") or "")
        expects = bool(message.data.get("expect_response"))
        if turn is not None and turn.speaking_for:
            turn.spoke = True
            self.speaker.say(turn.response_id, text, audio=turn.audio)
            if expects:
                turn.answered = True
                self._disarm_timeout()
                self.speaker.end(turn.response_id, "completed")
            else:
                self._arm_timeout()  # OVOS is still at it
            return
        named = message.context.get(TURN_KEY)
        if (turn is not None and turn.cancelled) or (
            isinstance(named, str) and self._over.get(named) == "cancelled"
        ):
            log.debug("ovos.speak_of_cancelled_turn", session_id=self.session_id)
            return
        # Nobody asked: a timer, a reminder, a skill that speaks again later. A response of its own.
        response_id = new_response_id()
        await self._emit("response.started", response_id=response_id)
        self.speaker.say(response_id, text, audio=self._audio_default())
        self.speaker.end(response_id, "completed")

    # --- helpers ------------------------------------------------------------------------------------------

    def _turn_over(self, how: str) -> None:
        """OVOS finished the session's turn (or its dialog): the session's admission slot is free."""
        if self._turn is not None and not self._turn.cancelled:
            self._end(self._turn.response_id, how)
            if self._turn.answers is not None:
                self._end(self._turn.answers, how)
        self._turn = None
        self._disarm_timeout()
        self._assistant.admission.leave(self.session_id)

    def _arm_timeout(self) -> None:
        self._disarm_timeout()
        loop = asyncio.get_running_loop()
        self._timeout = loop.call_later(self._assistant.turn_timeout_seconds, self._timed_out)

    def _disarm_timeout(self) -> None:
        if self._timeout is not None:
            self._timeout.cancel()
            self._timeout = None

    def _timed_out(self) -> None:
        self._timeout = None
        turn = self._turn
        if turn is None or not turn.speaking_for:
            return
        seconds = self._assistant.turn_timeout_seconds
        log.warning("ovos.turn_timeout", session_id=self.session_id, response_id=turn.response_id)
        self.speaker.end(turn.response_id, "failed", f"OVOS did not finish the turn within {seconds:g} s")
        self._turn_over("timeout")

    async def _output_maybe_ended(self, *, text_only: bool = False) -> None:
        if (self._speaking or text_only) and not self._marks and not self.speaker.busy:
            self._speaking = False
            self.state.set_speaking(False)
            await self._send("recognizer_loop:audio_output_end")

    async def _text_played(self) -> None:
        await asyncio.sleep(TEXT_PLAYED_DELAY)
        await self._output_maybe_ended(text_only=True)

    async def _send(self, message_type: str) -> None:
        session = self.state.outgoing(self._preferences())
        try:
            await self._assistant.send(for_session(message_type, session))
        except OvosUnavailable as exc:
            log.warning("ovos.send_failed", session_id=self.session_id, type=message_type, error=str(exc))

    async def _publish_state(self) -> None:
        if self.state.version != self._published_version:
            self._published_version = self.state.version
            await self._emit("session.state", state=self.state.carried())

    def _later_task(self, work: Awaitable[None]) -> None:
        async def run() -> None:
            await work

        task = asyncio.create_task(run())
        self._later.add(task)
        task.add_done_callback(self._later.discard)
