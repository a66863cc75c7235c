"""Word error rate for `bench.stt_models`: transcripts and reference sentences normalised to the same words
(lower case, no punctuation, numbers, ordinals and clock times spelled out, contractions expanded), then
compared word by word."""

from __future__ import annotations

import re
from typing import Final

_ONES: Final = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS: Final = dict(
    enumerate(["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"], start=2)
)
_ORDINALS: Final = {
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}


def number_words(n: int) -> str:
    """0..9999 in words ("twenty-one", "three hundred and thirty")."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] if ones == 0 else f"{_TENS[tens]}-{_ONES[ones]}"
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return f"{_ONES[hundreds]} hundred" + (f" and {number_words(rest)}" if rest else "")
    thousands, rest = divmod(n, 1000)
    return f"{number_words(thousands)} thousand" + (f" {number_words(rest)}" if rest else "")


def ordinal_words(n: int) -> str:
    """1..99 as an ordinal ("twenty-first", "thirtieth")."""
    head, _, last = number_words(n).rpartition("-")
    if last in _ORDINALS:
        last = _ORDINALS[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return f"{head}-{last}" if head else last


_CONTRACTIONS: Final = {
    "what's": "what is",
    "it's": "it is",
    "that's": "that is",
    "i'm": "i am",
    "you're": "you are",
    "don't": "do not",
    "can't": "can not",
    "cannot": "can not",
    "ok": "okay",
}
_SYMBOLS: Final = {"%": " percent ", "+": " plus ", "&": " and "}


def words(text: str) -> list[str]:
    """Lower-case words without punctuation, numbers spelled out: "10" = "ten", "20%" = "twenty percent",
    "5th" = "fifth", "what's" = "what is", and clock times after "at" as said: "at 7:30", "at 7.30" and
    "at 730" = "at seven thirty"."""
    text = re.sub(r"\b([ap])\.m\.", r"\1m", text.lower())
    text = re.sub(r"(?<=\d),(?=\d{3})", "", text)
    text = re.sub(r"\bat (\d{1,2})[:.]?([0-5]\d)\b", lambda m: f"at {clock(int(m[1]), int(m[2]))}", text)
    for symbol, spoken in _SYMBOLS.items():
        text = text.replace(symbol, spoken)
    out: list[str] = []
    for token in re.sub(r"[^a-z0-9']+", " ", text).split():
        token = token.strip("'")
        ordinal = re.fullmatch(r"(\d+)(st|nd|rd|th)", token)
        if ordinal and 0 < int(ordinal[1]) < 100:
            token = ordinal_words(int(ordinal[1]))
        elif token.isdigit() and len(token) <= 4:
            token = number_words(int(token))
        out += _CONTRACTIONS.get(token, token).replace("-", " ").split()
    return out


def clock(hour: int, minute: int) -> str:
    if minute == 0:
        return f"{number_words(hour)} o'clock"
    return f"{number_words(hour)} {'oh ' if minute < 10 else ''}{number_words(minute)}"


def word_errors(reference: str, hypothesis: str) -> int:
    """Levenshtein distance between the normalised word sequences."""
    ref, hyp = words(reference), words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, start=1):
        previous, row[0] = row[0], i
        for j, h in enumerate(hyp, start=1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (r != h))
    return row[-1]
