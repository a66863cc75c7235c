"""The policy engine interface, the decision object, and the metered/logged wrapper every engine runs in.

Both engines evaluate the same Rego v1 policy (``media_gateway/policy/rego/``, package
:data:`POLICY_PACKAGE`), whose decision points ``mint``, ``session_update`` and ``connect`` each produce
``{"allow": bool, "reasons": [str], "retry_after_seconds": number | null, "limits": {name: Limit}}``.

``limits`` are the counted limits that apply to the request, each
``{"max": int, "retry_after_seconds": number, "reason": str}``. The policy decides on the usage the gateway
counted before asking; the gateway then enforces ``max`` itself, atomically with the write that uses the
slot (another gateway process may have taken it meanwhile), and refuses with ``reason`` and
``retry_after_seconds`` (429) when it is reached. An allowing ``mint`` must carry ``concurrent_sessions``
and ``mints_per_minute``, an allowing ``connect`` ``concurrent_sessions``: without them the gateway could
not enforce them, so such a decision is malformed (fail closed).

``connect`` also carries ``ovos``: what the key's OVOS sessions look like (:data:`OVOS_FIELDS`, all
optional: ``timezone``, ``pipeline``, ``system_unit``, ``time_format``, ``date_format``,
``blacklisted_skills``, ``blacklisted_intents``), which the gateway hands to the session it opens. An
allowing ``connect`` must carry it (``{}`` when the policy sets nothing), so a policy that forgot it
cannot silently lift a key's restrictions (a skill blacklist, say); ``mint`` and ``session_update`` must
not. It is validated as strictly as the rest: an unknown field, a wrong type or an unknown time zone is a
malformed decision.

Fail closed: an engine that cannot produce a well-formed decision raises :class:`PolicyUnavailable`
(the HTTP layer answers 503 ``policy_unavailable``); nothing but an explicit ``allow: true`` allows.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Literal, Protocol, get_args

import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram

from media_gateway.ovos.sessions import POLICY_FIELDS
from media_gateway.timezones import valid_zone

__all__ = [
    "DECISION_POINTS",
    "DEFAULT_POLICY_DIR",
    "LIMIT_NAMES",
    "OVOS_FIELDS",
    "POLICY_PACKAGE",
    "RATE_LIMITED_PREFIX",
    "REQUIRED_LIMITS",
    "Decision",
    "DecisionPoint",
    "InstrumentedPolicyEngine",
    "Limit",
    "LimitName",
    "PolicyEngine",
    "PolicyMetrics",
    "PolicyUnavailable",
    "create_policy_engine",
    "new_decision_id",
    "parse_decision",
]

DecisionPoint = Literal["mint", "session_update", "connect"]
DECISION_POINTS: Final[tuple[DecisionPoint, ...]] = get_args(DecisionPoint)

LimitName = Literal["concurrent_sessions", "mints_per_minute"]
LIMIT_NAMES: Final[tuple[LimitName, ...]] = get_args(LimitName)
#: The limits an allowing decision must carry, by decision point.
REQUIRED_LIMITS: Final[Mapping[DecisionPoint, tuple[LimitName, ...]]] = MappingProxyType(
    {
        "mint": ("concurrent_sessions", "mints_per_minute"),
        "connect": ("concurrent_sessions",),
        "session_update": (),
    }
)
_LIMIT_FIELDS: Final = frozenset({"max", "retry_after_seconds", "reason"})

#: The fields of a connect decision's ``ovos`` object (every one optional): the session's time zone and the
#: OVOS session fields a key's policy may set.
OVOS_FIELDS: Final = ("timezone", *POLICY_FIELDS)
_OVOS_CHOICES: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {
        "system_unit": ("metric", "imperial"),
        "time_format": ("half", "full"),
        "date_format": ("MDY", "DMY", "YMD"),
    }
)
_OVOS_STRING_LISTS: Final = ("pipeline", "blacklisted_skills", "blacklisted_intents")

#: The Rego package of the decision rules; OPA serves them at ``/v1/data/ovos_gateway/realtime/<point>``.
POLICY_PACKAGE: Final = "ovos_gateway.realtime"
#: The policies and data document shipped with the package.
DEFAULT_POLICY_DIR: Final = Path(__file__).resolve().parent / "rego"
#: Deny reasons starting with this are rate limits (429 + Retry-After rather than 403).
RATE_LIMITED_PREFIX: Final = "rate_limited:"

_LOG = structlog.get_logger("media_gateway.policy")

DECISION_LATENCY_BUCKETS = (
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.5,
)


class PolicyUnavailable(Exception):
    """No decision could be made (engine down, timing out, undefined or malformed result): deny with 503."""

    def __init__(self, message: str, *, decision_id: str | None = None) -> None:
        super().__init__(message)
        self.decision_id = decision_id or new_decision_id()


@dataclass(frozen=True)
class Limit:
    """A counted limit the gateway enforces on the policy's behalf."""

    max: int
    #: The Retry-After of a refusal at this limit.
    retry_after_seconds: float
    #: Why a refusal at this limit is refused (goes into the 429 error message).
    reason: str


def _no_limits() -> Mapping[LimitName, Limit]:
    return MappingProxyType({})


def _no_ovos() -> Mapping[str, Any]:
    return MappingProxyType({})


@dataclass(frozen=True)
class Decision:
    """One policy decision.

    ``reasons`` are human-readable (they go into the 403 error message) and empty when allowed.
    ``retry_after_seconds`` is set only on a deny whose every reason is a rate limit: answer 429 with
    ``Retry-After`` then, 403 otherwise. ``ovos`` (connect only) holds the validated OVOS session fields
    for the key's sessions (see :data:`OVOS_FIELDS`); empty when the policy sets none.
    """

    allow: bool
    reasons: tuple[str, ...]
    decision_id: str
    point: DecisionPoint
    retry_after_seconds: float | None = None
    limits: Mapping[LimitName, Limit] = field(default_factory=_no_limits)
    ovos: Mapping[str, Any] = field(default_factory=_no_ovos)

    @property
    def rate_limited(self) -> bool:
        return not self.allow and self.retry_after_seconds is not None

    @property
    def message(self) -> str:
        """The deny reasons as one sentence-like string for an error message."""
        return "; ".join(self.reasons)


class PolicyEngine(Protocol):
    async def decide(self, point: DecisionPoint, input: Mapping[str, Any]) -> Decision:
        """Evaluate ``point`` on ``input``; raises :class:`PolicyUnavailable` rather than guess."""
        ...

    async def ready(self) -> bool: ...

    async def close(self) -> None: ...


def new_decision_id() -> str:
    return str(uuid.uuid4())


def parse_decision(result: Any, point: DecisionPoint, decision_id: str) -> Decision:
    """Validate a policy result object strictly; anything unexpected is :class:`PolicyUnavailable`."""
    if not isinstance(result, Mapping):
        raise PolicyUnavailable(
            f"policy result for {point} is {type(result).__name__}, not an object", decision_id=decision_id
        )
    allow = result.get("allow")
    if not isinstance(allow, bool):
        raise PolicyUnavailable(f"policy result for {point} has no boolean 'allow'", decision_id=decision_id)
    reasons = result.get("reasons", [])
    if not isinstance(reasons, list) or not all(isinstance(r, str) for r in reasons):
        raise PolicyUnavailable(
            f"policy result for {point} has 'reasons' that are not a list of strings", decision_id=decision_id
        )
    if allow and reasons:
        raise PolicyUnavailable(
            f"policy result for {point} allows with deny reasons {reasons!r}", decision_id=decision_id
        )
    retry_after = result.get("retry_after_seconds")
    retry_after_seconds: float | None = None
    if retry_after is not None:
        if (
            isinstance(retry_after, bool)
            or not isinstance(retry_after, int | float)
            or not math.isfinite(retry_after)
            or retry_after < 0
        ):
            raise PolicyUnavailable(
                f"policy result for {point} has an invalid 'retry_after_seconds'", decision_id=decision_id
            )
        retry_after_seconds = None if allow else float(retry_after)
    limits = _parse_limits(result.get("limits", {}), point, decision_id)
    missing = [name for name in REQUIRED_LIMITS[point] if name not in limits]
    if allow and missing:
        raise PolicyUnavailable(
            f"policy result for {point} allows without the limits the gateway enforces: {', '.join(missing)}",
            decision_id=decision_id,
        )
    ovos = _parse_ovos(result, allow, point, decision_id)
    if not allow and not reasons:
        reasons = ["denied by policy"]
    return Decision(
        allow=allow,
        reasons=tuple(reasons),
        decision_id=decision_id,
        point=point,
        retry_after_seconds=retry_after_seconds,
        limits=limits,
        ovos=ovos,
    )


def _is_count(value: Any) -> bool:
    """A non-negative integer (JSON may deliver it as 10.0)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value) and value >= 0 and float(value).is_integer()


def _parse_limits(raw: Any, point: DecisionPoint, decision_id: str) -> Mapping[LimitName, Limit]:
    def bad(detail: str) -> PolicyUnavailable:
        return PolicyUnavailable(
            f"policy result for {point} has invalid 'limits': {detail}", decision_id=decision_id
        )

    if not isinstance(raw, Mapping):
        raise bad("not an object")
    limits: dict[LimitName, Limit] = {}
    for name, value in raw.items():
        if name not in LIMIT_NAMES:
            raise bad(f"unknown limit {str(name)[:64]!r}")
        if not isinstance(value, Mapping) or set(value) != _LIMIT_FIELDS:
            raise bad(f"{name} must be an object with exactly {', '.join(sorted(_LIMIT_FIELDS))}")
        maximum, retry_after, reason = value["max"], value["retry_after_seconds"], value["reason"]
        if not _is_count(maximum):
            raise bad(f"{name}.max must be a non-negative integer")
        if (
            isinstance(retry_after, bool)
            or not isinstance(retry_after, int | float)
            or not math.isfinite(retry_after)
            or retry_after < 0
        ):
            raise bad(f"{name}.retry_after_seconds must be a non-negative number")
        if not isinstance(reason, str) or not reason:
            raise bad(f"{name}.reason must be a non-empty string")
        limits[name] = Limit(max=int(maximum), retry_after_seconds=float(retry_after), reason=reason)
    return MappingProxyType(limits)


def _parse_ovos(
    result: Mapping[str, Any], allow: bool, point: DecisionPoint, decision_id: str
) -> Mapping[str, Any]:
    """The ``ovos`` object of a connect decision, validated field by field (see :data:`OVOS_FIELDS`)."""

    def bad(detail: str) -> PolicyUnavailable:
        return PolicyUnavailable(
            f"policy result for {point} has invalid 'ovos': {detail}", decision_id=decision_id
        )

    if point != "connect":
        if "ovos" in result:
            raise bad("only the connect decision carries it")
        return _no_ovos()
    if "ovos" not in result:
        if allow:
            raise PolicyUnavailable(
                f"policy result for {point} allows without 'ovos', the key's OVOS session fields",
                decision_id=decision_id,
            )
        return _no_ovos()
    raw = result["ovos"]
    if not isinstance(raw, Mapping):
        detail = f"not an object ({raw[:300]})" if isinstance(raw, str) else "not an object"
        raise bad(detail)
    ovos: dict[str, Any] = {}
    for name, value in raw.items():
        if name not in OVOS_FIELDS:
            raise bad(f"unknown field {str(name)[:64]!r} (known: {', '.join(OVOS_FIELDS)})")
        if name == "timezone":
            if not isinstance(value, str) or not valid_zone(value):
                raise bad(f"timezone {value!r:.64} is not an IANA time zone name")
            ovos[name] = value
        elif name in _OVOS_CHOICES:
            choices = _OVOS_CHOICES[name]
            if value not in choices:
                raise bad(f"{name} must be one of {', '.join(choices)}")
            ovos[name] = value
        elif name in _OVOS_STRING_LISTS:
            if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                raise bad(f"{name} must be an array of non-empty strings")
            if name == "pipeline" and not value:
                raise bad("pipeline must not be empty (leave it out for the OVOS default)")
            ovos[name] = list(value)
    return MappingProxyType(ovos)


@dataclass(frozen=True)
class PolicyMetrics:
    """``gateway_policy_decisions_total{decision, result}`` and a latency histogram per decision point.

    ``result`` is ``allow``, ``deny`` or ``unavailable``. Labels are bounded: nothing per key or session.
    """

    decisions: Counter
    latency: Histogram

    @classmethod
    def create(cls, registry: CollectorRegistry) -> PolicyMetrics:
        decisions = Counter(
            "gateway_policy_decisions",
            "Policy decisions, by decision point and result (allow, deny, unavailable).",
            ("decision", "result"),
            registry=registry,
        )
        latency = Histogram(
            "gateway_policy_decision_duration_seconds",
            "Time to make a policy decision, by decision point (unavailable ones included).",
            ("decision",),
            buckets=DECISION_LATENCY_BUCKETS,
            registry=registry,
        )
        for point in DECISION_POINTS:
            latency.labels(decision=point)
            for result in ("allow", "deny", "unavailable"):
                decisions.labels(decision=point, result=result)
        return cls(decisions=decisions, latency=latency)


def _key_id(input: Mapping[str, Any]) -> str | None:
    key = input.get("key")
    if isinstance(key, Mapping):
        key_id = key.get("id")
        if isinstance(key_id, str):
            return key_id[:64]
    return None


class InstrumentedPolicyEngine:
    """Wraps an engine: counts every decision in Prometheus and logs it (``policy.decision``).

    The log line carries the decision id, point, outcome, reasons and the key id; never the input itself.
    """

    def __init__(self, inner: PolicyEngine, *, metrics: PolicyMetrics, engine_name: str) -> None:
        self._inner = inner
        self._metrics = metrics
        self._engine_name = engine_name

    @property
    def inner(self) -> PolicyEngine:
        return self._inner

    async def decide(self, point: DecisionPoint, input: Mapping[str, Any]) -> Decision:
        if point not in DECISION_POINTS:
            raise ValueError(f"unknown decision point {point!r}")
        started = time.perf_counter()
        try:
            decision = await self._inner.decide(point, input)
        except PolicyUnavailable as exc:
            self._record(point, "unavailable", started)
            _LOG.warning(
                "policy.decision",
                decision_id=exc.decision_id,
                point=point,
                allow=False,
                result="unavailable",
                error=str(exc),
                engine=self._engine_name,
                key_id=_key_id(input),
                duration_ms=round((time.perf_counter() - started) * 1000, 3),
            )
            raise
        except Exception as exc:  # an engine bug must not turn into anything but a fail-closed deny
            self._record(point, "unavailable", started)
            unavailable = PolicyUnavailable(f"policy engine error: {type(exc).__name__}: {exc}")
            _LOG.exception(
                "policy.decision",
                decision_id=unavailable.decision_id,
                point=point,
                allow=False,
                result="unavailable",
                engine=self._engine_name,
                key_id=_key_id(input),
            )
            raise unavailable from exc
        result = "allow" if decision.allow else "deny"
        self._record(point, result, started)
        _LOG.info(
            "policy.decision",
            decision_id=decision.decision_id,
            point=point,
            allow=decision.allow,
            result=result,
            reasons=list(decision.reasons),
            retry_after_seconds=decision.retry_after_seconds,
            engine=self._engine_name,
            key_id=_key_id(input),
            duration_ms=round((time.perf_counter() - started) * 1000, 3),
        )
        return decision

    def _record(self, point: DecisionPoint, result: str, started: float) -> None:
        self._metrics.decisions.labels(decision=point, result=result).inc()
        self._metrics.latency.labels(decision=point).observe(time.perf_counter() - started)

    async def ready(self) -> bool:
        try:
            return await self._inner.ready()
        except Exception:
            _LOG.warning("policy.ready_failed", engine=self._engine_name, exc_info=True)
            return False

    async def close(self) -> None:
        await self._inner.close()


def create_policy_engine(
    kind: Literal["inprocess", "opa"],
    *,
    registry: CollectorRegistry,
    opa_url: str | None = None,
    timeout_seconds: float = 0.5,
    policy_dir: Path | None = None,
) -> PolicyEngine:
    """The configured engine, counted on ``registry`` and logged.

    ``inprocess`` evaluates ``policy_dir`` (default: the shipped policies) with regorus; ``opa`` asks the
    OPA server at ``opa_url`` (which must have loaded the same policies) within ``timeout_seconds``.
    Call once per registry (the metrics are registered on it).
    """
    inner: PolicyEngine
    if kind == "inprocess":
        from media_gateway.policy.inprocess import InProcessPolicyEngine

        inner = InProcessPolicyEngine(policy_dir or DEFAULT_POLICY_DIR)
    elif kind == "opa":
        if not opa_url:
            raise ValueError("the opa policy engine needs opa_url")
        from media_gateway.policy.opa import OpaPolicyEngine

        inner = OpaPolicyEngine(opa_url, timeout_seconds=timeout_seconds)
    else:
        raise ValueError(f"unknown policy engine kind {kind!r}")
    return InstrumentedPolicyEngine(inner, metrics=PolicyMetrics.create(registry), engine_name=kind)
