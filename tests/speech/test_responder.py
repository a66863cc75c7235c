"""The minimal responder, with a fixed clock."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from media_gateway.speech.responder import (
    GREETING_REPLY,
    NOTHING_HEARD_REPLY,
    Responder,
    ResponseContext,
    number_words,
    spoken_time,
    year_words,
)

NOW = datetime(2026, 3, 3, 15, 5, tzinfo=UTC)  # a Tuesday


@pytest.fixture
def responder() -> Responder:
    return Responder(clock=lambda: NOW)


@pytest.mark.parametrize(
    ("utterance", "timezone", "reply"),
    [
        ("What time is it?", None, "It's three oh five p.m."),
        ("what's the time", "UTC", "It's three oh five p.m."),
        ("Tell me the time, please.", "Europe/Paris", "It's four oh five p.m."),
        ("What time is it?", "America/New_York", "It's ten oh five a.m."),
        ("What time is it?", "Not/AZone", "It's three oh five p.m."),
        ("What's the date?", None, "Today is Tuesday, March third, twenty twenty-six."),
        ("What day is it today?", "Pacific/Auckland", "Today is Wednesday, March fourth, twenty twenty-six."),
        ("Repeat after me: the cat sat on the mat.", None, "the cat sat on the mat."),
        ("Say hello world", None, "hello world"),
        ("Hello.", None, GREETING_REPLY),
        ("Good morning!", None, GREETING_REPLY),
        ("Hi there", None, GREETING_REPLY),
        ("Turn on the lights.", None, "I heard you say: Turn on the lights."),
        ("", None, NOTHING_HEARD_REPLY),
        (" ... ", None, NOTHING_HEARD_REPLY),
        ("Whatever you say", None, "I heard you say: Whatever you say."),
    ],
)
def test_answers(responder: Responder, utterance: str, timezone: str | None, reply: str) -> None:
    assert responder.answer(utterance, timezone=timezone) == reply


async def test_respond_uses_the_context_timezone(responder: Responder) -> None:
    reply = await responder.respond("what time is it", ResponseContext(timezone="Asia/Tokyo"))
    assert reply == "It's twelve oh five a.m."


@pytest.mark.parametrize(
    ("hour", "minute", "spoken"),
    [
        (0, 0, "It's midnight."),
        (12, 0, "It's noon."),
        (0, 30, "It's twelve thirty a.m."),
        (9, 0, "It's nine o'clock a.m."),
        (23, 59, "It's eleven fifty-nine p.m."),
        (13, 7, "It's one oh seven p.m."),
    ],
)
def test_spoken_time(hour: int, minute: int, spoken: str) -> None:
    assert spoken_time(datetime(2026, 1, 1, hour, minute, tzinfo=UTC)) == spoken


def test_number_words() -> None:
    assert [number_words(n) for n in (0, 13, 40, 99, 101, 2026)] == [
        "zero",
        "thirteen",
        "forty",
        "ninety-nine",
        "one hundred and one",
        "two thousand twenty-six",
    ]
    assert [year_words(y) for y in (1905, 2000, 2007, 2026)] == [
        "nineteen oh five",
        "two thousand",
        "two thousand seven",
        "twenty twenty-six",
    ]
