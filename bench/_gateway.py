"""Process helpers for the WebSocket benches: a gateway (`python -m media_gateway serve`) or an aiohttp echo
server in a separate process, pinned to chosen cores, and the CPU time of a process from `/proc`."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench._ovos import local_ovos

_TICKS = os.sysconf("SC_CLK_TCK")
ROOT = Path(__file__).resolve().parent.parent


def cpu_seconds(pid: int) -> float:
    """utime + stime of every thread of `pid` (from /proc/<pid>/stat), in seconds."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before it was ready")
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(url, timeout=2) as response,  # noqa: S310 - a local http:// URL built here
        ):
            if response.status == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{url} not ready within {timeout:g} s")


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    keys: list[str] = field(default_factory=list)
    stages_file: Path | None = None
    cli_env: dict[str, str] | None = None  # to create more API keys with the CLI (gateways only)
    _stages_seq: int = 0

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/realtime?model=gpt-realtime"

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def ensure_keys(self, count: int) -> None:
        """At least `count` admin API keys (created with `media-gateway keys create`, in parallel)."""
        if self.cli_env is not None and len(self.keys) < count:
            self.keys += _create_keys(self.cli_env, len(self.keys), count - len(self.keys))

    def stages(self) -> dict[str, list[int]] | None:
        """Cumulative per-stage [calls, CPU ns] of an instrumented gateway (`bench._gwstages`), else None."""
        if self.stages_file is None:
            return None
        deadline = time.monotonic() + 3.0
        resend = 0.0
        while time.monotonic() < deadline:
            if time.monotonic() >= resend:
                self.process.send_signal(signal.SIGUSR1)
                resend = time.monotonic() + 0.5
            with contextlib.suppress(FileNotFoundError, ValueError):
                data = json.loads(self.stages_file.read_text(encoding="utf-8"))
                if data["seq"] > self._stages_seq:
                    self._stages_seq = data["seq"]
                    return {name: list(v) for name, v in data["counters"].items()}
            time.sleep(0.002)
        raise RuntimeError("the instrumented gateway did not dump its stage counters")


def _create_keys(env: dict[str, str], first: int, count: int) -> list[str]:
    creating = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "media_gateway",
                "keys",
                "create",
                "--name",
                f"bench-{i}",
                "--scopes",
                "admin",
            ],
            env=env,
            cwd=env["BENCH_DIR"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        for i in range(first, first + count)
    ]
    values = []
    for process in creating:
        out, _ = process.communicate()
        if process.returncode:
            raise RuntimeError("media-gateway keys create failed")
        values.append(out.decode().strip().splitlines()[0])
    return values


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


SERVER_NICE = -15  # other users' jobs share this machine: let the server have the core it is measured on


def _pinned(cores: Sequence[int] | None) -> list[str]:
    """Pin to `cores` and raise the priority (`nice` runs the command anyway when it may not)."""
    return ["nice", "-n", str(SERVER_NICE), *(["taskset", "-c", ",".join(map(str, cores))] if cores else [])]


@contextlib.contextmanager
def gateway(
    speech_pipeline: str,
    *,
    keys: int = 1,
    cores: Sequence[int] | None = None,
    instrumented: bool = False,
    python_args: Sequence[str] = (),
    extra_env: Mapping[str, str] | None = None,
    workers: int = 0,
) -> Iterator[Server]:
    """A migrated gateway on a fresh SQLite file with `keys` admin API keys (created with the CLI).

    `instrumented` runs it as `python -m bench._gwstages serve` (per-stage CPU counters, see there).
    `extra_env` adds settings; `workers` starts that many `media-gateway worker` processes first, ready
    before the gateway starts (they need `MEDIA_GATEWAY_BUS=kafka` in `extra_env`). A gateway or worker
    that answers (the in-process pipeline, or workers) gets a local OVOS of its own unless `extra_env`
    names one (`MEDIA_GATEWAY_OVOS_BUS_URL`)."""
    answers = speech_pipeline == "inprocess" or workers > 0
    with contextlib.ExitStack() as stack:
        if answers and "MEDIA_GATEWAY_OVOS_BUS_URL" not in (extra_env or {}):
            ovos = stack.enter_context(local_ovos())
            extra_env = {**(extra_env or {}), "MEDIA_GATEWAY_OVOS_BUS_URL": ovos.url}
        yield stack.enter_context(
            _gateway(speech_pipeline, keys, cores, instrumented, python_args, extra_env, workers)
        )


@contextlib.contextmanager
def _gateway(
    speech_pipeline: str,
    keys: int,
    cores: Sequence[int] | None,
    instrumented: bool,
    python_args: Sequence[str],
    extra_env: Mapping[str, str] | None,
    workers: int,
) -> Iterator[Server]:
    with tempfile.TemporaryDirectory(prefix="bench-gw-") as tmp:
        port = free_port()
        env = {
            **os.environ,
            "MEDIA_GATEWAY_DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/bench.db",
            "MEDIA_GATEWAY_PORT": str(port),
            "MEDIA_GATEWAY_SPEECH_PIPELINE": speech_pipeline,
            "MEDIA_GATEWAY_LOG_LEVEL": "warning",
            "MEDIA_GATEWAY_DEV_KEY_FILE": f"{tmp}/dev-key",
            "BENCH_STAGES_FILE": f"{tmp}/stages.json",
            "BENCH_DIR": tmp,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
            **(extra_env or {}),
        }
        subprocess.run(
            [sys.executable, "-m", "media_gateway", "migrate"],
            env=env,
            cwd=tmp,
            check=True,
            capture_output=True,
        )
        helpers = [_start_worker(env, tmp, n) for n in range(workers)]
        log = open(f"{tmp}/gateway.log", "wb")  # noqa: SIM115 - closed below
        process = subprocess.Popen(
            [
                *_pinned(cores),
                sys.executable,
                *python_args,
                "-m",
                "bench._gwstages" if instrumented else "media_gateway",
                "serve",
            ],
            env=env,
            cwd=tmp,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            values = _create_keys(env, 0, keys)  # while the server starts (on its own core when pinned)
            _wait_ready(f"http://127.0.0.1:{port}/ready", process)
            yield Server(process, port, values, Path(f"{tmp}/stages.json") if instrumented else None, env)
        except BaseException:
            log.flush()
            sys.stderr.write(Path(f"{tmp}/gateway.log").read_text(errors="replace")[-4000:])
            raise
        finally:
            _stop(process)
            log.close()
            for helper in helpers:
                _stop(helper)


def _start_worker(env: dict[str, str], tmp: str, index: int) -> subprocess.Popen[bytes]:
    port = free_port()
    with open(f"{tmp}/worker-{index}.log", "wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "media_gateway", "worker"],
            env={**env, "MEDIA_GATEWAY_WORKER_PORT": str(port)},
            cwd=tmp,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_ready(f"http://127.0.0.1:{port}/ready", worker, timeout=120)
    except BaseException:
        _stop(worker)
        sys.stderr.write(Path(f"{tmp}/worker-{index}.log").read_text(errors="replace")[-4000:])
        raise
    return worker


@contextlib.contextmanager
def echo_server(*, reply: bool = True, cores: Sequence[int] | None = None) -> Iterator[Server]:
    """The floor: an aiohttp WebSocket server that echoes every text frame (`reply`), or only receives
    and `json.loads` it."""
    port = free_port()
    process = subprocess.Popen(
        [*_pinned(cores), sys.executable, "-m", "bench._gateway", str(port), "echo" if reply else "parse"],
        cwd=ROOT,
    )
    try:
        _wait_ready(f"http://127.0.0.1:{port}/health", process)
        yield Server(process, port, ["unused"])
    finally:
        _stop(process)


def _serve_echo(port: int, mode: str) -> None:
    import json

    from aiohttp import WSMsgType, web

    async def realtime(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=32 * 1024 * 1024, heartbeat=30.0)
        await ws.prepare(request)
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                if mode == "echo":
                    await ws.send_str(message.data)
                else:
                    event = json.loads(message.data)
                    if event.get("type") != "input_audio_buffer.append":  # the probe: answer it
                        await ws.send_str(message.data)
        return ws

    async def health(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/v1/realtime", realtime)
    app.router.add_get("/health", health)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


if __name__ == "__main__":
    _serve_echo(int(sys.argv[1]), sys.argv[2])
