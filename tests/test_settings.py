"""Settings: defaults are the embedded ones, and `.env.example` documents every one of them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from media_gateway.settings import ENV_PREFIX, Settings, SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_are_embedded(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(__import__("os").environ):
        if name.startswith(ENV_PREFIX):
            monkeypatch.delenv(name)
    settings = load_settings(_env_file=None)
    assert settings.host == "127.0.0.1"
    assert settings.port == 8000
    assert settings.database_url == "sqlite+aiosqlite:///var/gateway.db"
    assert settings.bus == "inprocess"
    assert settings.policy_engine == "inprocess"


def test_env_example_documents_every_setting_with_its_default() -> None:
    text = (ROOT / ".env.example").read_text()
    documented = dict(re.findall(r"^#?\s*(MEDIA_GATEWAY_[A-Z0-9_]+)=(.*)$", text, re.MULTILINE))
    expected = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    assert set(documented) == expected
    for name, field in Settings.model_fields.items():
        default = field.default
        shown = "" if default is None else str(default)
        assert documented[ENV_PREFIX + name.upper()] == shown, name


def test_every_error_names_its_variable() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(_env_file=None, port=-1, policy_engine="opa", log_level="loud")
    message = str(caught.value)
    assert "MEDIA_GATEWAY_PORT" in message
    assert "MEDIA_GATEWAY_LOG_LEVEL" in message


def test_opa_engine_requires_url() -> None:
    with pytest.raises(SettingsError, match="MEDIA_GATEWAY_OPA_URL"):
        load_settings(_env_file=None, policy_engine="opa")
