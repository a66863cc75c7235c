"""A minimal built-in responder, until the OVOS worker replaces it.

It answers, in English and in words a synthesizer speaks well:

* "what time is it" / "what's the time" → "It's three oh five p.m." (the session's time zone, else UTC)
* "what's the date" / "what day is it" → "Today is Tuesday, March third, twenty twenty-six."
* "repeat after me X" / "say X" → "X"
* greetings ("hello", "hi", "good morning", …) → "Hello! How can I help you?"
* anything else → "I heard you say: <text>." (nothing heard → "Sorry, I didn't catch that.")

Deterministic: the clock is injectable.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_ONES: Final = _words(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen"
)
_TENS: Final = dict(enumerate(_words("twenty thirty forty fifty sixty seventy eighty ninety"), start=2))
_ORDINAL_ONES: Final = _words(
    "zeroth first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth thirteenth "
    "fourteenth fifteenth sixteenth seventeenth eighteenth nineteenth"
)
_ORDINAL_TENS: Final = {2: "twentieth", 3: "thirtieth"}

_TIME = re.compile(
    r"\b(what(?:'s| is)? (?:the )?time|what time is it|time is it|tell me the time|current time|"
    r"got the time)\b"
)
_DATE = re.compile(
    r"\b(what(?:'s| is)? (?:the |today's )?date|what day is (?:it|today)|today's date|what(?:'s| is) today)\b"
)
_REPEAT = re.compile(r"^\s*(?:please\s+)?(?:repeat after me|say)[\s,:]+(?P<rest>.+)$", re.IGNORECASE)
_GREETING = re.compile(r"^(hello|hi|hey|hiya|howdy|greetings|good (morning|afternoon|evening|day))\b")

GREETING_REPLY: Final = "Hello! How can I help you?"
NOTHING_HEARD_REPLY: Final = "Sorry, I didn't catch that."


@dataclass(frozen=True)
class ResponseContext:
    language: str = "en"
    timezone: str | None = None
    instructions: str = ""


class SpeechResponder(Protocol):
    async def respond(self, utterance: str, context: ResponseContext) -> str:
        """The reply to speak for one utterance."""
        ...


def number_words(n: int) -> str:
    """0..9999 in words ("twenty twenty-six" style for years is `year_words`)."""
    if n < 0:
        return "minus " + number_words(-n)
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        name = _TENS[tens]
        return name if ones == 0 else f"{name}-{_ONES[ones]}"
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return f"{_ONES[hundreds]} hundred" + (f" and {number_words(rest)}" if rest else "")
    thousands, rest = divmod(n, 1000)
    return f"{number_words(thousands)} thousand" + (f" {number_words(rest)}" if rest else "")


def ordinal_words(n: int) -> str:
    """1..31 (days of the month) as ordinals."""
    if n < 20:
        return _ORDINAL_ONES[n]
    tens, ones = divmod(n, 10)
    return _ORDINAL_TENS[tens] if ones == 0 else f"{_TENS[tens]}-{_ORDINAL_ONES[ones]}"


def year_words(year: int) -> str:
    if 2000 <= year < 2010:
        return number_words(year)
    high, low = divmod(year, 100)
    if low == 0:
        return f"{number_words(high)} hundred"
    return f"{number_words(high)} {'oh ' + _ONES[low] if low < 10 else number_words(low)}"


def spoken_time(moment: datetime) -> str:
    hour = moment.hour % 12 or 12
    if moment.hour == 0 and moment.minute == 0:
        return "It's midnight."
    if moment.hour == 12 and moment.minute == 0:
        return "It's noon."
    suffix = "a.m." if moment.hour < 12 else "p.m."
    minute = moment.minute
    if minute == 0:
        return f"It's {number_words(hour)} o'clock {suffix}"
    minutes = f"oh {_ONES[minute]}" if minute < 10 else number_words(minute)
    return f"It's {number_words(hour)} {minutes} {suffix}"


def spoken_date(moment: datetime) -> str:
    return (
        f"Today is {moment.strftime('%A')}, {moment.strftime('%B')} {ordinal_words(moment.day)}, "
        f"{year_words(moment.year)}."
    )


def _zone(name: str | None) -> ZoneInfo | None:
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


class Responder:
    """`SpeechResponder` with a handful of built-in answers (see the module docstring)."""

    def __init__(self, *, clock: Callable[[], datetime] | None = None, default_timezone: str = "UTC") -> None:
        self._clock = clock or (lambda: datetime.now(UTC))
        self._default_timezone = default_timezone

    async def respond(self, utterance: str, context: ResponseContext) -> str:
        return self.answer(utterance, timezone=context.timezone)

    def answer(self, utterance: str, *, timezone: str | None = None) -> str:
        text = " ".join(utterance.split())
        if not text.strip(" .,!?"):
            return NOTHING_HEARD_REPLY
        repeat = _REPEAT.match(text)
        if repeat:
            return repeat.group("rest").strip()
        normalized = re.sub(r"[^\w' ]+", " ", text.lower().replace("\u2019", "'"))
        normalized = " ".join(normalized.split())
        if _TIME.search(normalized):
            return spoken_time(self._now(timezone))
        if _DATE.search(normalized):
            return spoken_date(self._now(timezone))
        if _GREETING.match(normalized):
            return GREETING_REPLY
        return f"I heard you say: {text.rstrip(' .!?')}."

    def _now(self, timezone: str | None) -> datetime:
        now = self._clock()
        if now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
        zone = _zone(timezone) or _zone(self._default_timezone) or ZoneInfo("UTC")
        return now.astimezone(zone)
