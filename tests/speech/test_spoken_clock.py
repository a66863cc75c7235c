"""The tests' reader of spoken times understands every way OVOS's date-time skill says one."""

from __future__ import annotations

import pytest

from tests.speech.audio import spoken_clock


@pytest.mark.parametrize(
    ("said", "clock"),
    [
        ("It is ten oh one", (10, 1)),
        ("It's seven forty-five", (7, 45)),
        ("twelve o'clock", (12, 0)),
        ("Currently quarter past eight", (8, 15)),
        ("ten to nine", (8, 50)),
        ("It's noon", (12, 0)),
        ("It's midnight", (12, 0)),
        ("quarter past noon", (12, 15)),
        ("five to midnight", (11, 55)),
        ("Sorry, I don't understand", None),
    ],
)
def test_spoken_times(said: str, clock: tuple[int, int] | None) -> None:
    assert spoken_clock(said) == clock
