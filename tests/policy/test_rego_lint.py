"""Policy lint in CI: `opa check --strict`, `opa fmt`, and the Rego unit tests (`opa test`)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from media_gateway.policy import DEFAULT_POLICY_DIR

REGO_TESTS = Path(__file__).resolve().parent / "rego"


def run(opa_binary: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(opa_binary), *args], capture_output=True, text=True, timeout=120, check=False)


def test_opa_check_strict(opa_binary: Path) -> None:
    proc = run(opa_binary, "check", "--strict", str(DEFAULT_POLICY_DIR), str(REGO_TESTS))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_policies_are_opa_fmt_formatted(opa_binary: Path) -> None:
    proc = run(opa_binary, "fmt", "--list", str(DEFAULT_POLICY_DIR), str(REGO_TESTS))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "", f"run `opa fmt -w` on: {proc.stdout}"


def test_opa_unit_tests_pass(opa_binary: Path) -> None:
    proc = run(opa_binary, "test", "--format", "json", str(DEFAULT_POLICY_DIR), str(REGO_TESTS))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr
    results = json.loads(proc.stdout)
    assert len(results) >= 5
    assert all(r.get("fail") is not True and "error" not in r for r in results)


def test_data_document_defines_every_limit_for_every_scope() -> None:
    config = json.loads((DEFAULT_POLICY_DIR / "data.json").read_text())["ovos_gateway"]["config"]
    required = {
        "models",
        "transcription_models",
        "mints_per_minute",
        "concurrent_sessions",
        "max_ttl_seconds",
        "max_output_tokens",
        "max_tools",
        "max_instructions_length",
        "allow_direct_connect",
    }
    assert set(config["scope_precedence"]) == set(config["scopes"])
    for name, limits in config["scopes"].items():
        assert set(limits) == required, name
        assert "ovos-local" in limits["models"]
        assert all(model.startswith(("gpt-realtime", "gpt-4o-", "ovos-")) for model in limits["models"])


def test_data_document_ships_no_ovos_session_fields() -> None:
    """By default no scope or key sets OVOS session fields: the connect decision's `ovos` is {}."""
    config = json.loads((DEFAULT_POLICY_DIR / "data.json").read_text())["ovos_gateway"]["config"]
    assert config["keys"] == {}
    assert not any("ovos" in limits for limits in config["scopes"].values())
