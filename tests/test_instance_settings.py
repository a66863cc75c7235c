"""The gateway instance id and heartbeat settings."""

from __future__ import annotations

import socket

import pytest

from media_gateway.settings import INSTANCE_ID_MAX_LENGTH, SettingsError, load_settings


def test_default_instance_id_is_host_address_and_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "gethostname", lambda: "gw-host.example")
    settings = load_settings(_env_file=None, host="0.0.0.0", port=8443)
    assert settings.instance_id is None
    assert settings.resolved_instance_id() == "gw-host.example:0.0.0.0:8443"
    # The same gateway restarted keeps its id, so it can release what its previous run left behind.
    assert load_settings(_env_file=None, host="0.0.0.0", port=8443).resolved_instance_id() == (
        settings.resolved_instance_id()
    )
    ipv6 = load_settings(_env_file=None, host="::1", port=8000).resolved_instance_id()
    assert ipv6 == "gw-host.example:[::1]:8000"


def test_port_zero_gets_a_random_instance_id(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "gethostname", lambda: "gw-host")
    settings = load_settings(_env_file=None, port=0)
    first, second = settings.resolved_instance_id(), settings.resolved_instance_id()
    assert first != second
    assert first.startswith("gw-host:127.0.0.1:0-")


def test_long_host_names_stay_within_the_column_and_distinct(monkeypatch: pytest.MonkeyPatch) -> None:
    ids = set()
    for name in ("a" * 70, "a" * 69 + "b"):
        monkeypatch.setattr(socket, "gethostname", lambda name=name: name)
        value = load_settings(_env_file=None, port=8000).resolved_instance_id()
        assert len(value) <= INSTANCE_ID_MAX_LENGTH
        ids.add(value)
    assert len(ids) == 2


def test_explicit_instance_id_is_used_and_checked() -> None:
    assert load_settings(_env_file=None, instance_id="pod-7").resolved_instance_id() == "pod-7"
    assert load_settings(_env_file=None, instance_id="").instance_id is None  # as if unset
    for bad in ("has space", "x" * 65, "-leading", "a/b"):
        with pytest.raises(SettingsError, match="MEDIA_GATEWAY_INSTANCE_ID"):
            load_settings(_env_file=None, instance_id=bad)


def test_ttl_must_cover_three_heartbeats() -> None:
    with pytest.raises(SettingsError, match="at least three times"):
        load_settings(_env_file=None, instance_heartbeat_seconds=10, instance_ttl_seconds=15)
    settings = load_settings(_env_file=None)
    assert (settings.instance_heartbeat_seconds, settings.instance_ttl_seconds) == (2.0, 15.0)
