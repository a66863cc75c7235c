"""Typed keys for the objects the composition root stores on the aiohttp application.

Handlers read their dependencies through these keys instead of importing globals; `app.build_app`
is the only place that sets them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from media_gateway.drain import Drain
    from media_gateway.observability.metrics import Metrics
    from media_gateway.ovos.runtime import OvosRuntime
    from media_gateway.persistence.database import Database
    from media_gateway.persistence.repositories import Repositories
    from media_gateway.pipeline.bus import Bus
    from media_gateway.policy.engine import PolicyEngine
    from media_gateway.realtime.registry import LiveSessions
    from media_gateway.realtime.session import EngineServices
    from media_gateway.settings import Settings
    from media_gateway.signaling.instance import GatewayInstance
    from media_gateway.transports.registry import LiveConnections
    from media_gateway.transports.sip.gateway import SipGateway
    from media_gateway.transports.webrtc.registry import LiveCalls

SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")
DATABASE: web.AppKey[Database] = web.AppKey("database")
REPOSITORIES: web.AppKey[Repositories] = web.AppKey("repositories")
POLICY: web.AppKey[PolicyEngine] = web.AppKey("policy")
BUS: web.AppKey[Bus] = web.AppKey("bus")
ENGINE: web.AppKey[EngineServices] = web.AppKey("engine")
INSTANCE: web.AppKey[GatewayInstance] = web.AppKey("instance")
LIVE_CONNECTIONS: web.AppKey[LiveConnections] = web.AppKey("live_connections")
SESSIONS: web.AppKey[LiveSessions] = web.AppKey("sessions")
CALLS: web.AppKey[LiveCalls] = web.AppKey("calls")
OVOS: web.AppKey[OvosRuntime] = web.AppKey("ovos")
SIP: web.AppKey[SipGateway] = web.AppKey("sip")  # set only when the SIP endpoint is enabled
METRICS_PORT: web.AppKey[int] = web.AppKey("metrics_port")  # the /metrics listener's port, when separate
DRAIN: web.AppKey[Drain] = web.AppKey("drain")
