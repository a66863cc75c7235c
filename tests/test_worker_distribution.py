"""The speech worker's own distribution (worker/: ovos-media-gateway-worker), installed as an operator
installs it (`pip install ./worker` in a fresh virtualenv: scripts/install-worker.sh, cached): it holds the
OpenVoiceOS plugin manager and its plugins, and no aiortc (the two need incompatible pyee versions), so the
worker's speech goes through OVOS plugins. The OPM tests (tests/speech/test_opm.py) run in it here."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from tests.support.processes import REPO_ROOT


def run(venv: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIA_GATEWAY_")}
    return subprocess.run(
        [str(venv / "bin" / args[0]), *args[1:]],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_the_worker_environment_has_opm_and_no_aiortc(worker_venv: Path) -> None:
    assert run(worker_venv, "python", "-m", "pip", "check").returncode == 0
    probe = "import importlib.util as u, sys; print(*(bool(u.find_spec(m)) for m in sys.argv[1:]))"
    found = run(worker_venv, "python", "-c", probe, "ovos_plugin_manager", "aiortc")
    assert found.stdout.split() == ["True", "False"], found.stderr
    assert run(worker_venv, "media-gateway", "worker", "--help").returncode == 0
    # The gateway's commands need the gateway's installation, and say so.
    serve = run(worker_venv, "media-gateway", "serve")
    assert serve.returncode == 2
    assert "needs the gateway's installation" in serve.stderr


def test_opm_plugins_in_the_worker_environment(worker_venv: Path) -> None:
    """tests/speech/test_opm.py with the worker's Python and this checkout's code first on its path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIA_GATEWAY_")}
    env["PYTHONPATH"] = str(REPO_ROOT)
    result = subprocess.run(
        [
            str(worker_venv / "bin" / "python"),
            "-m",
            "pytest",
            "--noconftest",
            "-p",
            "no:cacheprovider",
            "-q",
            "-rs",
            "tests/speech/test_opm.py",
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    tail = "\n".join(result.stdout.splitlines()[-30:])
    assert result.returncode == 0, tail
    summary = result.stdout.strip().splitlines()[-1]
    passed = re.search(r"(\d+) passed", summary)
    assert passed is not None, tail
    assert int(passed.group(1)) >= 20, tail
    assert "skipped" not in summary, tail
