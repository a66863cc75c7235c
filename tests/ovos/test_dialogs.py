"""OVOS turns mapped to the realtime protocol, at the pipeline's bus boundary: a SpeechPipeline on the
in-process bus talking to the test session's real ovos-core (stock skills and the example skill of
deploy/ovos), driven with the messages a gateway sends."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from media_gateway.ovos.message import OvosMessage, utterance
from media_gateway.pipeline.messages import PipelineAudio, SessionSettings
from tests.fixtures.ovos import OvosServer, skill_dialog
from tests.pipeline.harness import audio, events, final, is_done, is_event, running, text_of

FALLBACK = ("ovos_skill_fallback_unknown", "unknown")
TEXT = SessionSettings(output_modalities=("text",))


def bus_messages(ovos: OvosServer, session_id: str, message_type: str) -> list[OvosMessage]:
    return [m for m in ovos.heard if m.type == message_type and m.session_id == session_id]


async def test_get_response_dialog_and_its_state_survive_a_new_worker(ovos: OvosServer) -> None:
    """ "ask me my name" asks back; the next utterance is the answer. The session dict OVOS returned goes to
    the gateway (`session.state`), which carries it with the next turn: a pipeline that never saw the
    session (another worker after a failover) continues the dialog with it."""
    async with running(ovos.url) as first:
        await first.open("dlg", output_modalities=("text",))
        out = await first.ask("dlg", "r1", "ask me my name")
        assert text_of(out, "r1") == "What is your name?"
        assert final(out)["status"] == "completed"  # the response ends with the question
        (state,) = events(out, "session.state")
        carried = state.data["state"]
        states = carried["session"]["utterance_states"]
        assert states == {"ovos-skill-gateway-examples.openvoiceos": "response"}
    async with running(ovos.url) as second:  # the first worker is gone
        out = await second.ask("dlg", "r2", "bob", session=TEXT.as_fields(), state=carried)
        assert text_of(out, "r2") == "Nice to meet you, bob."
        assert final(out)["status"] == "completed"


async def test_without_the_carried_state_the_answer_falls_to_the_fallback(
    ovos: OvosServer, ovos_venv: Path
) -> None:
    """The control for the test above: the state is what continues the dialog."""
    async with running(ovos.url) as first:
        await first.open("lost", output_modalities=("text",))
        await first.ask("lost", "r1", "ask me my name")
    async with running(ovos.url) as second:
        out = await second.ask("lost", "r2", "bob", session=TEXT.as_fields())
        assert text_of(out, "r2") in skill_dialog(ovos_venv, *FALLBACK)


async def test_converse_asks_only_the_skills_waiting_for_an_answer(ovos: OvosServer) -> None:
    """Once a skill was active, converse would ask it about every utterance and wait ~0.5 s: the utterance
    carries only the skills in `get_response`, so later turns do not wait."""
    async with running(ovos.url) as harness:
        await harness.open("conv", output_modalities=("text",))
        await harness.ask("conv", "r1", "repeat after me hello")  # the example skill is now active
        began = time.perf_counter()
        await harness.ask("conv", "r2", "repeat after me again")
        later_turn = time.perf_counter() - began
    sent = bus_messages(ovos, "conv", "recognizer_loop:utterance")
    assert len(sent) == 2
    assert sent[1].session is not None
    assert sent[1].session["active_skills"] == []
    # The control, on the same ovos-core: the same utterance with the session as OVOS returned it (the
    # example skill still active), straight on the bus.
    (handled,) = bus_messages(ovos, "conv", "ovos.utterance.handled")[-1:]
    assert handled.session is not None
    assert handled.session["active_skills"], "the skill should be active in OVOS's own session dict"
    began = time.perf_counter()
    await ovos.inject(utterance("repeat after me again", "en-US", {**handled.session, "session_id": "conv2"}))
    await ovos.wait_until(lambda: bool(bus_messages(ovos, "conv2", "speak")))
    unfiltered = time.perf_counter() - began
    print(f"later turn: {later_turn * 1000:.0f} ms; every active skill conversed: {unfiltered * 1000:.0f} ms")
    assert later_turn < 0.45 < unfiltered


async def test_wait_true_skill_is_released_when_the_client_has_played_the_reply(ovos: OvosServer) -> None:
    """ "hello world" speaks with wait=True: ovos-core sends `handled` only after
    `recognizer_loop:audio_output_end`, which goes out when the gateway reports the reply played."""
    async with running(ovos.url) as harness:
        await harness.open("wait")
        await harness.send("wait", "response.create", response_id="r", input_text="hello world")
        out = await harness.until(is_event("response.mark", "r"))
        assert audio(out)
        await asyncio.sleep(1.0)  # the client is still playing
        assert not events(harness.received, "response.done")
        played_at = time.perf_counter()
        await harness.send("wait", "output_audio.played", response_id="r", mark=final(out)["mark"])
        done = await harness.until(is_done("r"))
        released = time.perf_counter() - played_at
    assert final(done)["status"] == "completed"
    print(f"played → response.done: {released * 1000:.0f} ms")
    assert released < 1.0
    assert bus_messages(ovos, "wait", "recognizer_loop:audio_output_start")
    assert bus_messages(ovos, "wait", "recognizer_loop:audio_output_end")


async def test_a_speak_nobody_asked_for_is_a_server_initiated_response(ovos: OvosServer) -> None:
    """A timer or a reminder speaks for a session with no turn open: the pipeline starts a response."""
    async with running(ovos.url) as harness:
        await harness.open("timer")
        await harness.ask("timer", "r1", "repeat after me set")  # the session exists in OVOS
        await ovos.inject(
            OvosMessage(
                "speak",
                {"utterance": "Your timer is done.", "expect_response": False, "lang": "en-US"},
                {"destination": "gateway:timer", "session": {"session_id": "timer"}},
            )
        )
        (started,) = [
            m for m in await harness.until(is_event("response.started")) if m.type == "response.started"
        ]
        response_id = started.data["response_id"]
        out = await harness.until(is_done(response_id))
    assert text_of(out, response_id) == "Your timer is done."
    assert audio(out)
    assert final(out)["status"] == "completed"


async def test_cancel_stops_the_session_speech_in_ovos(ovos: OvosServer) -> None:
    """Barge-in or response.cancel: the pipeline drops the reply, asks OVOS to stop this session's speech
    and says the output ended (a skill waiting on it is released)."""
    async with running(ovos.url) as harness:
        await harness.open("stop")
        await harness.send("stop", "response.create", response_id="r", input_text="hello world")
        await harness.until(lambda m: isinstance(m, PipelineAudio))
        await harness.send("stop", "response.cancel", response_id="r")
        out = await harness.until(is_done("r"))
        assert final(out)["status"] == "cancelled"
        await harness.quiet(0.5)
    assert bus_messages(ovos, "stop", "mycroft.audio.speech.stop")
    assert bus_messages(ovos, "stop", "recognizer_loop:audio_output_end")
    # What OVOS said afterwards for the cancelled turn did not become a new response.
    assert not events(harness.received, "response.started")


async def test_no_skill_at_all_is_still_an_answer(ovos: OvosServer) -> None:
    """With the fallback skill blacklisted for the key, nothing handles the utterance: ovos-core sends
    `complete_intent_failure`, and the reply is a spoken apology, never silence."""
    blacklist = {"blacklisted_skills": ["ovos-skill-fallback-unknown.openvoiceos"]}
    async with running(ovos.url) as harness:
        await harness.open("none", ovos=blacklist)
        out = await harness.ask("none", "r", "blorp the wuzzle")
    assert text_of(out, "r") == "Sorry, I don't know how to help with that."
    assert audio(out)
    assert final(out)["status"] == "completed"
    assert bus_messages(ovos, "none", "complete_intent_failure")


async def test_forget_it_cancels_the_turn(ovos: OvosServer) -> None:
    """ovos-core's cancel transformer drops an utterance ending in "forget it": the response is cancelled."""
    async with running(ovos.url) as harness:
        await harness.open("nm", output_modalities=("text",))
        out = await harness.ask("nm", "r", "what time is it forget it")
    assert final(out)["status"] == "cancelled"
    assert text_of(out, "r") == ""


async def test_a_stuck_turn_fails_after_the_turn_timeout(ovos: OvosServer) -> None:
    """A skill that never finishes ("hello world" waits 15 s for the speech to end; here nobody reports it
    played) fails the response at the turn timeout instead of holding it."""
    async with running(ovos.url, turn_timeout=1.0) as harness:
        await harness.open("stuck")
        began = time.perf_counter()
        await harness.send("stuck", "response.create", response_id="r", input_text="hello world")
        out = await harness.until(is_done("r"))
        failed_after = time.perf_counter() - began
    assert final(out)["status"] == "failed"
    assert "did not finish the turn within 1 s" in final(out)["message"]
    assert 1.0 <= failed_after < 3.0
