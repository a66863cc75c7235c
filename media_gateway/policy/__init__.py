"""Policy decisions: engine interface, OPA over HTTP, in-process Rego, and the Rego policies."""

from media_gateway.policy.engine import (
    DECISION_POINTS,
    DEFAULT_POLICY_DIR,
    OVOS_FIELDS,
    POLICY_PACKAGE,
    RATE_LIMITED_PREFIX,
    Decision,
    DecisionPoint,
    InstrumentedPolicyEngine,
    Limit,
    LimitName,
    PolicyEngine,
    PolicyMetrics,
    PolicyUnavailable,
    create_policy_engine,
)

__all__ = [
    "DECISION_POINTS",
    "DEFAULT_POLICY_DIR",
    "OVOS_FIELDS",
    "POLICY_PACKAGE",
    "RATE_LIMITED_PREFIX",
    "Decision",
    "DecisionPoint",
    "InstrumentedPolicyEngine",
    "Limit",
    "LimitName",
    "PolicyEngine",
    "PolicyMetrics",
    "PolicyUnavailable",
    "create_policy_engine",
]
