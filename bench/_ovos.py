"""A local OVOS for the benches: ovos-messagebus and ovos-core from the OVOS virtualenv that
`scripts/install-ovos.sh` builds (and caches), supervised by `media_gateway.ovos.local.LocalOvos` on an event
loop of its own thread, so the synchronous bench code can start gateways against its bus."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from media_gateway.ovos.local import LocalOvos, LocalOvosConfig

ROOT = Path(__file__).resolve().parent.parent
CACHE_ROOT = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ovos-media-gateway"


def ovos_venv() -> Path:
    """The OVOS virtualenv (built on first use, about 30 s; then instant)."""
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "install-ovos.sh")], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"scripts/install-ovos.sh failed:\n{done.stderr[-2000:]}")
    return Path(done.stdout.strip().splitlines()[-1])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def local_ovos() -> Iterator[LocalOvos]:
    """A started local OVOS (warm from the intent cache the tests and earlier runs keep), stopped on exit."""
    venv = ovos_venv()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="bench-ovos", daemon=True)
    thread.start()
    with tempfile.TemporaryDirectory(prefix="bench-ovos-") as home:
        config = LocalOvosConfig(
            venv=venv,
            home=Path(home),
            port=_free_port(),
            seed_cache=CACHE_ROOT / "ovos-intent-cache" / venv.name,
        )
        ovos = LocalOvos(config)
        asyncio.run_coroutine_threadsafe(ovos.start(), loop).result()
        try:
            yield ovos
        finally:
            asyncio.run_coroutine_threadsafe(ovos.stop(), loop).result()
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            loop.close()
