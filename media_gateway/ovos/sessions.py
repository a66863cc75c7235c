"""The OVOS session dict of one realtime session.

OVOS keeps no state for a session other than "default": every message carries the whole session dict in
`context.session`, and ovos-core rebuilds the session from it (active skills, which skill waits for an
answer, language, location...). So the gateway keeps the last dict OVOS returned and sends it back with the
next utterance; a `get_response` dialog continues only if it does.

Two kinds of fields meet here:

* what the realtime session decides, set on every utterance (`SessionPreferences`): `lang` (the
  transcription language), `location.timezone`, and what the key's policy sets (`pipeline`, `system_unit`,
  `time_format`, `date_format`, `blacklisted_skills`, `blacklisted_intents`);
* what OVOS maintains (`active_skills`, `utterance_states`, `context`...), taken from its last reply.

`OvosSessionState` is also what travels to the gateway and back (`state` of the turn events), with a
version, so a worker that takes a session over after a rebalance continues its dialog.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

# Session fields a key's policy may set (the `ovos` object of the connect decision).
POLICY_FIELDS: Final = (
    "pipeline",
    "system_unit",
    "time_format",
    "date_format",
    "blacklisted_skills",
    "blacklisted_intents",
)
# The region OVOS assumes for a bare language code (its resources are per locale: en-us, pt-pt...).
_DEFAULT_REGIONS: Final = {
    "en": "US",
    "pt": "PT",
    "de": "DE",
    "fr": "FR",
    "es": "ES",
    "it": "IT",
    "nl": "NL",
    "ca": "ES",
    "da": "DK",
    "sv": "SE",
    "pl": "PL",
    "uk": "UA",
    "ja": "JP",
    "zh": "CN",
}
RESPONSE_MODE: Final = "response"


def ovos_lang(language: str | None) -> str:
    """A transcription language ("en", "pt-BR") as the locale OVOS expects ("en-US", "pt-BR")."""
    code = (language or "en").strip().replace("_", "-") or "en"
    base, _, region = code.partition("-")
    base = base.lower()
    if region:
        return f"{base}-{region.upper()}"
    return f"{base}-{_DEFAULT_REGIONS.get(base, base.upper())}"


@dataclass(frozen=True)
class SessionPreferences:
    """What the realtime session and its key decide about the OVOS session."""

    lang: str = "en-US"
    timezone: str | None = None
    policy: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_fields(cls, data: Mapping[str, Any]) -> SessionPreferences:
        ovos = data.get("ovos")
        policy = {k: v for k, v in ovos.items() if k in POLICY_FIELDS} if isinstance(ovos, Mapping) else {}
        timezone = data.get("timezone")
        return cls(
            lang=ovos_lang(str(data.get("language") or "en")),
            timezone=str(timezone) if timezone else None,
            policy=policy,
        )


@dataclass
class OvosSessionState:
    """The last OVOS session dict of one realtime session, and how many times it changed."""

    session_id: str
    session: dict[str, Any] = field(default_factory=dict)
    version: int = 0

    def outgoing(self, preferences: SessionPreferences) -> dict[str, Any]:
        """The dict to send with the next utterance: OVOS's last one, with the session's preferences on
        top, and `active_skills` cut down to the skills waiting for an answer.

        Converse costs about half a second per turn once any skill is active: ovos-core asks every active
        skill whether it wants the utterance and waits for the slowest. Only a skill in `get_response`
        needs it, and such a skill is marked `"response"` in `utterance_states`; keeping just those skills
        active took later turns from ~520 ms to 20-45 ms and keeps `get_response` working (dropping
        converse from the pipeline instead breaks it: the answer falls to the fallback skills)."""
        session = dict(self.session)
        session["session_id"] = self.session_id
        session["lang"] = preferences.lang
        if preferences.timezone:
            location = dict(session.get("location") or {})
            location["timezone"] = {"code": preferences.timezone, "name": preferences.timezone}
            session["location"] = location
        for name, value in preferences.policy.items():
            session[name] = value
        states = session.get("utterance_states")
        waiting = (
            {s for s, mode in states.items() if mode == RESPONSE_MODE} if isinstance(states, dict) else set()
        )
        active = session.get("active_skills")
        if isinstance(active, list):
            session["active_skills"] = [
                entry for entry in active if isinstance(entry, list) and entry and entry[0] in waiting
            ]
        return session

    def update(self, session: Mapping[str, Any] | None) -> bool:
        """Adopt the dict of a reply for this session; True when it changed."""
        if not isinstance(session, Mapping) or session.get("session_id") != self.session_id:
            return False
        fresh = dict(session)
        if fresh == self.session:
            return False
        self.session = fresh
        self.version += 1
        return True

    def set_speaking(self, speaking: bool) -> None:
        """ovos-core's stop pipeline only asks to stop speech of a session marked as speaking."""
        if self.session.get("is_speaking") != speaking:
            self.session = {**self.session, "is_speaking": speaking}

    @property
    def awaiting_answer(self) -> bool:
        """A skill of this session is in `get_response`: the next utterance is its answer."""
        states = self.session.get("utterance_states")
        return isinstance(states, dict) and RESPONSE_MODE in states.values()

    def carried(self) -> dict[str, Any]:
        """What travels to the gateway and comes back with the session's turn events."""
        return {"version": self.version, "session": self.session}

    def adopt(self, carried: Any) -> bool:
        """Take a carried state that is newer than this one (a worker taking the session over)."""
        if not isinstance(carried, Mapping):
            return False
        version, session = carried.get("version"), carried.get("session")
        if not isinstance(version, int) or not isinstance(session, Mapping) or version <= self.version:
            return False
        if session and session.get("session_id") != self.session_id:
            return False
        self.session = dict(session)
        self.version = version
        return True
