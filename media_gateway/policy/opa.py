"""Policy decisions from an OPA sidecar over its REST Data API.

``POST {opa_url}/v1/data/ovos_gateway/realtime/<point>`` with ``{"input": ...}``; OPA answers 200
``{"result": {...}, "decision_id": ...}`` (the id only with decision logging on). One
:class:`httpx.AsyncClient` is reused (keep-alive) and every call has a short total deadline.

Fail closed: a transport error, the deadline, any status but 200, a body that is not JSON, a missing
``result`` (the document is undefined, e.g. a wrong package path or policies not loaded) or a malformed
result raises :class:`PolicyUnavailable`. Nothing here ever allows by default.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

import httpx

from media_gateway.policy.engine import (
    POLICY_PACKAGE,
    Decision,
    DecisionPoint,
    PolicyUnavailable,
    new_decision_id,
    parse_decision,
)

__all__ = ["OpaPolicyEngine"]

_MAX_ERROR_TEXT = 200


class OpaPolicyEngine:
    """A :class:`~media_gateway.policy.engine.PolicyEngine` asking an OPA server."""

    def __init__(
        self,
        opa_url: str,
        *,
        timeout_seconds: float = 0.5,
        package: str = POLICY_PACKAGE,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        if timeout_seconds <= 0:
            raise ValueError("timeout_seconds must be positive")
        self._base_url = opa_url.rstrip("/")
        self._timeout = timeout_seconds
        self._package_path = package.replace(".", "/")
        self._owns_client = client is None
        # trust_env=False: the sidecar is local; a proxy from the environment must not sit in between.
        self._client = client or httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_seconds),
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=16, keepalive_expiry=30.0),
            trust_env=False,
            headers={"Content-Type": "application/json"},
        )
        self._package_loaded = False

    @property
    def url(self) -> str:
        return self._base_url

    def decision_url(self, point: DecisionPoint) -> str:
        return f"{self._base_url}/v1/data/{self._package_path}/{point}"

    async def decide(self, point: DecisionPoint, input: Mapping[str, Any]) -> Decision:
        body = self._encode(point, input)
        try:
            async with asyncio.timeout(self._timeout):
                response = await self._client.post(self.decision_url(point), content=body)
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise PolicyUnavailable(f"OPA did not answer within {self._timeout:g} s") from exc
        except httpx.HTTPError as exc:
            raise PolicyUnavailable(f"OPA unreachable: {type(exc).__name__}: {exc}") from exc
        if response.status_code != 200:
            raise PolicyUnavailable(f"OPA answered {response.status_code}: {_error_summary(response)}")
        try:
            payload = response.json()
        except ValueError as exc:
            raise PolicyUnavailable("OPA answered a body that is not JSON") from exc
        if not isinstance(payload, dict):
            raise PolicyUnavailable("OPA answered JSON that is not an object")
        decision_id = payload.get("decision_id")
        if not isinstance(decision_id, str) or not decision_id:
            decision_id = new_decision_id()
        if "result" not in payload:
            raise PolicyUnavailable(
                f"OPA answered undefined for {self._package_path}/{point} (policy not loaded?)",
                decision_id=decision_id,
            )
        return parse_decision(payload["result"], point, decision_id)

    def _encode(self, point: DecisionPoint, input: Mapping[str, Any]) -> bytes:
        try:
            return json.dumps({"input": input}, allow_nan=False, separators=(",", ":")).encode()
        except (TypeError, ValueError) as exc:
            raise PolicyUnavailable(f"{point} input is not JSON-serialisable: {exc}") from exc

    async def ready(self) -> bool:
        """OPA answers ``GET /health`` with 200 and (checked until first seen) serves the policy package."""
        try:
            async with asyncio.timeout(self._timeout):
                health = await self._client.get(f"{self._base_url}/health")
                if health.status_code != 200:
                    return False
                if not self._package_loaded:
                    probe = await self._client.post(self.decision_url("connect"), content=b'{"input":{}}')
                    self._package_loaded = probe.status_code == 200 and "result" in probe.json()
        except (TimeoutError, httpx.HTTPError, ValueError):
            return False
        return self._package_loaded

    async def close(self) -> None:
        if self._owns_client:
            await self._client.aclose()


def _error_summary(response: httpx.Response) -> str:
    try:
        payload = response.json()
    except ValueError:
        return response.text[:_MAX_ERROR_TEXT] or "(empty body)"
    if isinstance(payload, dict):
        code = payload.get("code", "")
        message = payload.get("message", "")
        return f"{code} {message}".strip()[:_MAX_ERROR_TEXT] or "(no error message)"
    return "(unexpected error body)"
