"""A local OpenVoiceOS: ovos-messagebus and ovos-core started from their own virtualenv, headless.

`LocalOvos` is what the embedded default runs (and the tests): it writes an isolated configuration, starts
the bus, connects a supervisor client to it, starts ovos-core, and returns once every installed skill is
loaded and the intent engines are trained. Facts it is built on (ovos-core 2.1.1):

* Without a GUI and PHAL, ovos-core waits 3 s for each of `gui.status.request` and `ovos.PHAL.internet_check`
  at start-up; the supervisor answers both ("no GUI", "online"), so a warm start takes about 4 s, not 16.
* `mycroft.skills.initialized` is sent before skills without runtime requirements have loaded, so "ready"
  is: initialized, a `mycroft.skill.loaded` for every installed skill, and every `mycroft.skills.train`
  answered by `mycroft.skills.trained`.
* Each skill gets its own bus connection (`shared_connection: false`): with one shared connection, skills
  blocked in `wait=True` fill its handler pool and the messages that would release them cannot run.
* Everything OVOS writes goes under `home` (HOME, every XDG directory, TMPDIR: skills write lock files in
  /tmp otherwise, shared with any other OVOS on the machine); the system-wide configuration files are
  pointed at a path that does not exist, and the network checks at loopback, so nothing is probed off the
  machine. The padatious intent cache under `home` makes the next start warm (training the stock skills
  cold takes 25-45 s on 2 cores, a warm start about 5 s). A fresh `home` can start warm from `seed_cache`,
  a copy of an earlier start's intent cache for the same skills, kept up to date after each start.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from media_gateway.observability.logging import get_logger
from media_gateway.ovos.bus import OvosBusClient
from media_gateway.ovos.message import OvosMessage

log = get_logger(__name__)

# The intent pipeline of the embedded OVOS: converse (so get_response works), padatious, adapt, fallbacks.
# OCP and common_qa are not installed.
PIPELINE: Final = (
    "stop_high",
    "converse",
    "padatious_high",
    "adapt_high",
    "fallback_high",
    "stop_medium",
    "padatious_medium",
    "adapt_medium",
    "adapt_low",
    "fallback_medium",
    "fallback_low",
)
_STOP_SECONDS: Final = 5.0
_SETTLE_SECONDS: Final = 0.25
# Started through this prelude, an OVOS process gets SIGTERM when the process that started it dies, even
# by SIGKILL (Linux's PR_SET_PDEATHSIG = 1, kept across exec): a killed gateway leaves no OVOS behind
# holding the bus port. Elsewhere the prelude just execs the program.
_EXEC_WITH_PARENT: Final = (
    "import ctypes, os, signal, sys\n"
    "if sys.platform.startswith('linux'):\n"
    "    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)\n"
    "os.execv(sys.executable, [sys.executable, sys.argv[1]])\n"
)
_LOG_TAIL: Final = 2000


class OvosStartError(RuntimeError):
    pass


@dataclass(frozen=True)
class LocalOvosConfig:
    venv: Path  # the OVOS virtualenv: bin/ovos-messagebus, bin/ovos-core
    home: Path  # where OVOS keeps its configuration, data, caches and logs
    host: str = "127.0.0.1"
    port: int = 8181
    lang: str = "en-US"
    start_timeout_seconds: float = 180.0
    seed_cache: Path | None = None  # a padatious intent cache to start warm from (see the module docstring)

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}/core"


def core_configuration(config: LocalOvosConfig) -> dict[str, Any]:
    """The user-level mycroft.conf: merged by ovos-config over its packaged defaults."""
    loopback = f"http://{config.host}:9/"
    return {
        "lang": config.lang,
        "websocket": {
            "host": config.host,
            "port": config.port,
            "route": "/core",
            "ssl": False,
            "shared_connection": False,
        },
        "skills": {"installer": {"allow_pip": False, "allow_alphas": False}},
        "intents": {"pipeline": list(PIPELINE)},
        "network_tests": {
            "ip_url": loopback,
            "dns_primary": "127.0.0.1",
            "dns_secondary": "127.0.0.1",
            "web_url": loopback,
            "web_url_secondary": loopback,
            "captive_portal_url": loopback,
            "captive_portal_text": "",
        },
    }


@dataclass
class _Progress:
    """What the supervisor has seen of ovos-core's start-up."""

    initialized: bool = False
    loaded: set[str] = field(default_factory=set)
    trains: int = 0
    trained: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)


class LocalOvos:
    def __init__(self, config: LocalOvosConfig) -> None:
        self.config = config
        self._processes: dict[str, asyncio.subprocess.Process] = {}
        self._progress = _Progress()
        self._supervisor: OvosBusClient | None = None
        self._watcher: asyncio.Task[None] | None = None
        self.skills: tuple[str, ...] = ()
        self.ready = False
        self.start_seconds = 0.0

    @property
    def url(self) -> str:
        return self.config.url

    def _bin(self, name: str) -> Path:
        return self.config.venv / "bin" / name

    def _environment(self) -> dict[str, str]:
        home = self.config.home
        env = {
            "PATH": f"{self.config.venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / "config"),
            "XDG_DATA_HOME": str(home / "data"),
            "XDG_CACHE_HOME": str(home / "cache"),
            "XDG_STATE_HOME": str(home / "state"),
            "TMPDIR": str(home / "tmp"),
            "MYCROFT_SYSTEM_CONFIG": str(home / "absent" / "mycroft.conf"),
            "OVOS_DISTRIBUTION_CONFIG": str(home / "absent" / "distribution.conf"),
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            "PYTHONUNBUFFERED": "1",
        }
        return env

    def _write_configuration(self) -> None:
        home = self.config.home
        for part in ("config/mycroft", "data", "cache", "state", "tmp", "logs"):
            (home / part).mkdir(parents=True, exist_ok=True)
        path = home / "config" / "mycroft" / "mycroft.conf"
        path.write_text(json.dumps(core_configuration(self.config), indent=2))

    @property
    def _intent_cache(self) -> Path:
        return self.config.home / "data" / "mycroft" / "intent_cache"

    def _seed_intent_cache(self) -> None:
        seed = self.config.seed_cache
        if seed is not None and seed.is_dir() and not self._intent_cache.exists():
            shutil.copytree(seed, self._intent_cache)

    def _save_intent_cache(self) -> None:
        """Replace the seed with this start's cache (written beside it, then renamed: starts in other
        processes may read the seed meanwhile)."""
        seed = self.config.seed_cache
        if seed is None or not self._intent_cache.is_dir():
            return
        seed.parent.mkdir(parents=True, exist_ok=True)
        fresh = seed.with_name(f"{seed.name}.{os.getpid()}.new")
        shutil.rmtree(fresh, ignore_errors=True)
        shutil.copytree(self._intent_cache, fresh)
        stale = seed.with_name(f"{seed.name}.{os.getpid()}.old")
        with contextlib.suppress(FileNotFoundError):
            seed.rename(stale)
        fresh.rename(seed)
        shutil.rmtree(stale, ignore_errors=True)

    async def _installed_skills(self) -> tuple[str, ...]:
        """The skill ids ovos-core will load: the `ovos.plugin.skill` entry points of its environment."""
        script = (
            "from importlib.metadata import entry_points\n"
            "print('\\n'.join(sorted(e.name for e in entry_points(group='ovos.plugin.skill'))))\n"
        )
        process = await asyncio.create_subprocess_exec(
            str(self._bin("python")),
            "-c",
            script,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self._environment(),
        )
        out, err = await process.communicate()
        if process.returncode != 0:
            raise OvosStartError(f"cannot list the OVOS skills: {err.decode(errors='replace')[-_LOG_TAIL:]}")
        return tuple(line for line in out.decode().splitlines() if line.strip())

    async def start(self) -> None:
        for name in ("ovos-messagebus", "ovos-core", "python"):
            if not self._bin(name).exists():
                raise OvosStartError(
                    f"{self._bin(name)} not found: is {self.config.venv} an OVOS virtualenv?"
                )
        began = time.monotonic()
        self._write_configuration()
        await asyncio.to_thread(self._seed_intent_cache)
        self.skills = await self._installed_skills()
        try:
            async with asyncio.timeout(self.config.start_timeout_seconds):
                await self._spawn("messagebus", "ovos-messagebus")
                self._supervisor = OvosBusClient(
                    self.url, on_message=self._on_message, name="ovos-supervisor"
                )
                await self._supervisor.start()
                await self._until_connected()
                await self._spawn("core", "ovos-core")
                await self._until_ready()
        except BaseException as exc:
            await self.stop()
            if isinstance(exc, TimeoutError):
                raise OvosStartError(
                    f"OVOS was not ready after {self.config.start_timeout_seconds:g} s "
                    f"(loaded {sorted(self._progress.loaded)} of {list(self.skills)}; "
                    f"trained {self._progress.trained}/{self._progress.trains}); core log:\n"
                    f"{self.log_tail('core')}"
                ) from None
            raise
        self.ready = True
        self.start_seconds = time.monotonic() - began
        await asyncio.to_thread(self._save_intent_cache)
        self._watcher = asyncio.create_task(self._watch(), name="ovos-watch")
        log.info("ovos.ready", seconds=round(self.start_seconds, 2), skills=len(self.skills), url=self.url)

    async def _spawn(self, name: str, program: str) -> None:
        logfile = self.config.home / "logs" / f"{name}.log"
        with logfile.open("ab") as out:
            self._processes[name] = await asyncio.create_subprocess_exec(
                str(self._bin("python")),
                "-c",
                _EXEC_WITH_PARENT,
                str(self._bin(program)),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                env=self._environment(),
                cwd=str(self.config.home),
                start_new_session=True,
            )

    def log_tail(self, name: str) -> str:
        path = self.config.home / "logs" / f"{name}.log"
        with contextlib.suppress(OSError):
            return path.read_text(errors="replace")[-_LOG_TAIL:]
        return ""

    def _check_alive(self) -> None:
        for name, process in self._processes.items():
            if process.returncode is not None:
                raise OvosStartError(
                    f"ovos {name} exited with {process.returncode} while starting:\n{self.log_tail(name)}"
                )

    async def _until_connected(self) -> None:
        assert self._supervisor is not None
        while not self._supervisor.connected:
            self._check_alive()
            await asyncio.sleep(0.05)

    async def _until_ready(self) -> None:
        progress = self._progress

        def done() -> bool:
            return (
                progress.initialized
                and progress.loaded.issuperset(self.skills)
                and progress.trained >= progress.trains
            )

        while True:
            while not done():
                self._check_alive()
                progress.changed.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.2):
                        await progress.changed.wait()
            # The core asks for training right after it loads a batch of skills: give that request a
            # moment to arrive before calling the last load the end.
            await asyncio.sleep(_SETTLE_SECONDS)
            if done():
                return

    def _on_message(self, message: OvosMessage) -> None:
        """Answer the probes a device's GUI and PHAL would answer, and follow the start-up."""
        kind = message.type
        progress = self._progress
        if kind == "gui.status.request":
            self._answer(message, "gui.status.request.response", {"connected": False})
        elif kind == "ovos.PHAL.internet_check":
            self._answer(
                message,
                "ovos.PHAL.internet_check.response",
                {"internet_connected": True, "network_connected": True},
            )
        elif kind == "mycroft.skills.initialized":
            progress.initialized = True
        elif kind == "mycroft.skill.loaded":
            progress.loaded.add(str(message.data.get("skill_id", "")))
        elif kind == "mycroft.skills.train":
            progress.trains += 1
        elif kind == "mycroft.skills.trained":
            progress.trained += 1
        else:
            return
        progress.changed.set()

    def _answer(self, request: OvosMessage, reply_type: str, data: dict[str, Any]) -> None:
        context = dict(request.context)
        source, destination = context.get("source"), context.get("destination")
        context["source"], context["destination"] = destination, source
        supervisor = self._supervisor
        if supervisor is not None:
            task = asyncio.get_running_loop().create_task(
                supervisor.send(OvosMessage(reply_type, data, context))
            )
            task.add_done_callback(_ignore_result)

    async def _watch(self) -> None:
        """A process that dies after start-up makes this OVOS not ready (the gateway's /ready says so)."""
        waits = {asyncio.ensure_future(p.wait()): name for name, p in self._processes.items()}
        done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for future in waits:
            future.cancel()
        self.ready = False
        for future in done:
            name = waits[future]
            log.error("ovos.process_exited", process=name, code=self._processes[name].returncode)

    async def stop(self) -> None:
        self.ready = False
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
        for name in ("core", "messagebus"):  # the core first: it would log reconnect attempts otherwise
            process = self._processes.pop(name, None)
            if process is not None:
                await _terminate(process)
        if self._supervisor is not None:
            await self._supervisor.stop()
            self._supervisor = None


async def _terminate(process: asyncio.subprocess.Process) -> None:
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        async with asyncio.timeout(_STOP_SECONDS):
            await process.wait()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()


def _ignore_result(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.debug("ovos.probe_answer_failed", error=str(task.exception()))
