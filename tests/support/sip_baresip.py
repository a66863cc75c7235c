"""baresip (Debian `baresip-core` 1.0.0) as a headless softphone for tests: it plays a WAV into its calls
(`aufile`), records what it decodes (`sndfile`: `dump-<time>-dec.wav`), and is driven through `ctrl_tcp`
(netstring JSON commands `dial`, `sndcode`, `hangup`, `quit`; it reports call events on the same socket).

The stdio UI needs a terminal, so only `ctrl_tcp` drives it. baresip hangs up when its WAV ends: the WAV is
padded with silence. Opus needs a 48 kHz stereo source, G.711 an 8 kHz mono one: the WAV is prepared for
the first codec of `codecs`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tests.support.sip_audio import prepare_wav, read_wav_mono, write_wav
from tests.support.sip_peers import free_udp_port, require, stop_process

OPUS = "opus/48000/2"
PCMU = "PCMU/8000/1"
PCMA = "PCMA/8000/1"
# Where Debian's package puts the modules (baresip looks in the working directory without `module_path`).
MODULE_DIRS = (
    "/usr/lib/baresip/modules",
    "/usr/lib/x86_64-linux-gnu/baresip/modules",
    "/usr/local/lib/baresip/modules",
)
_STATUS = re.compile(r"^\s*\[\d+:\d\d:\d\d\] audio=")


def module_dir() -> Path:
    for candidate in map(Path, MODULE_DIRS):
        if (candidate / "ctrl_tcp.so").exists():
            return candidate
    raise RuntimeError("baresip's modules are missing (Debian: baresip-core)")


def _free_tcp_udp_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (baresip listens for SIP on both)."""
    for _ in range(100):
        port = free_udp_port()
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port on 127.0.0.1")


def _free_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def netstring(message: dict[str, Any]) -> bytes:
    data = json.dumps(message).encode()
    return b"%d:%s," % (len(data), data)


async def read_netstring(reader: asyncio.StreamReader) -> dict[str, Any]:
    length = int((await reader.readuntil(b":"))[:-1])
    data = await reader.readexactly(length + 1)
    if data[-1:] != b",":
        raise ValueError(f"not a netstring: {data[-20:]!r}")
    decoded: dict[str, Any] = json.loads(data[:-1])
    return decoded


@dataclass(frozen=True)
class BaresipEvent:
    """A `ctrl_tcp` event: its type (CALL_INCOMING, CALL_RINGING, CALL_ESTABLISHED, CALL_CLOSED, …), the
    monotonic time it arrived and everything baresip sent (`param` holds a close reason)."""

    type: str
    time: float
    data: dict[str, Any]


@dataclass(kw_only=True)
class Baresip:
    """One baresip listening on 127.0.0.1:`sip_port` as `sip:<user>@127.0.0.1:<sip_port>`, offering/accepting
    `codecs` (baresip names: `opus/48000/2`, `PCMU/8000/1`, `PCMA/8000/1`), playing `audio` (a WAV; silence
    when None) after `lead_ms` of silence, `answer="auto"` to answer calls at once."""

    workdir: Path
    user: str = "phone"
    codecs: Sequence[str] = (PCMU,)
    audio: Path | None = None
    lead_ms: int = 0
    pad_ms: int = 30_000
    answer: Literal["auto", "manual"] = "manual"
    sip_port: int = field(default_factory=_free_tcp_udp_port)
    ctrl_port: int = field(default_factory=_free_tcp_port)
    rtp_port: int = field(default_factory=lambda: free_udp_port(10, even=True))
    events: list[BaresipEvent] = field(default_factory=list, init=False)
    _process: asyncio.subprocess.Process | None = field(default=None, init=False, repr=False)
    _writer: asyncio.StreamWriter | None = field(default=None, init=False, repr=False)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list, init=False, repr=False)
    _responses: dict[str, asyncio.Future[dict[str, Any]]] = field(
        default_factory=dict, init=False, repr=False
    )
    _event_added: asyncio.Event = field(default_factory=asyncio.Event, init=False, repr=False)
    _output: bytearray = field(default_factory=bytearray, init=False, repr=False)
    _token: int = field(default=0, init=False, repr=False)

    @property
    def uri(self) -> str:
        return f"sip:{self.user}@127.0.0.1:{self.sip_port}"

    @property
    def config_dir(self) -> Path:
        return self.workdir / "config"

    @property
    def recordings_dir(self) -> Path:
        return self.workdir / "recordings"

    @property
    def output(self) -> str:
        """What baresip printed, without the call status line it repeats (`[0:00:01] audio=…`)."""
        text = self._output.decode(errors="replace").replace("\r", "\n")
        return "\n".join(line for line in text.splitlines() if line.strip() and not _STATUS.match(line))

    @property
    def audio_codec(self) -> str | None:
        """The codec of the last call's received audio, as baresip logs it (`opus 48000Hz 2ch`), or None."""
        found = re.findall(r"audio: Set audio decoder: (.+)", self.output)
        return found[-1].strip() if found else None

    def dtmf_received(self) -> str:
        """The keys pressed by the far end (RFC 4733 events baresip reported), in order."""
        return "".join(str(e.data.get("param", "")) for e in self.events if e.type == "CALL_DTMF_START")

    def _configure(self) -> None:
        self.config_dir.mkdir(parents=True, exist_ok=True)
        self.recordings_dir.mkdir(parents=True, exist_ok=True)
        opus = self.codecs[0].lower().startswith("opus")
        rate, channels = (48_000, 2) if opus else (8_000, 1)
        source = self.workdir / "source.wav"
        if self.audio is not None:
            prepare_wav(
                self.audio, source, rate=rate, channels=channels, before_ms=self.lead_ms, after_ms=self.pad_ms
            )
        else:
            write_wav(
                source, bytes(2 * channels * rate * (self.lead_ms + self.pad_ms) // 1000), rate, channels
            )
        modules = ["g711", "opus", "sndfile", "alsa", "aufile"]
        config = {
            "poll_method": "epoll",
            "module_path": str(module_dir()),
            "sip_listen": f"127.0.0.1:{self.sip_port}",
            "net_interface": "127.0.0.1",  # not `lo`: an interface name binds nothing usable here
            "audio_source": f"aufile,{source.resolve()}",
            "audio_player": "alsa,null",
            "audio_alert": "alsa,null",
            "rtp_ports": f"{self.rtp_port}-{self.rtp_port + 9}",
            "ctrl_tcp_listen": f"127.0.0.1:{self.ctrl_port}",
            "snd_path": str(self.recordings_dir.resolve()),
        }
        lines = [f"{key:24}{value}" for key, value in config.items()]
        lines += [f"{'module':24}{name}.so" for name in modules]
        lines += [
            f"{'module_tmp':24}account.so",
            f"{'module_app':24}menu.so",
            f"{'module_app':24}ctrl_tcp.so",
        ]
        (self.config_dir / "config").write_text("\n".join(lines) + "\n")
        account = (
            f"<sip:{self.user}@127.0.0.1:{self.sip_port};transport=udp>;regint=0;"
            f"answermode={self.answer};audio_codecs={','.join(self.codecs)}\n"
        )
        (self.config_dir / "accounts").write_text(account)
        (self.config_dir / "contacts").write_text("")

    async def start(self, timeout_s: float = 10) -> None:
        """Start baresip and connect to its control socket."""
        self._configure()
        self._process = await asyncio.create_subprocess_exec(
            require("baresip"), "-f", str(self.config_dir.resolve()),
            cwd=self.workdir, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        self._tasks.append(asyncio.create_task(self._drain(self._process)))
        deadline = time.monotonic() + timeout_s
        while True:
            if self._process.returncode is not None:
                raise RuntimeError(f"baresip exited ({self._process.returncode}):\n{self.output}")
            try:
                reader, self._writer = await asyncio.open_connection("127.0.0.1", self.ctrl_port)
                break
            except OSError:
                if time.monotonic() > deadline:
                    await self.stop()
                    raise RuntimeError(f"baresip's ctrl_tcp did not listen:\n{self.output}") from None
                await asyncio.sleep(0.05)
        self._tasks.append(asyncio.create_task(self._receive(reader)))

    async def _drain(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        while chunk := await process.stdout.read(65536):
            self._output += chunk
            del self._output[: max(0, len(self._output) - 1_000_000)]

    async def _receive(self, reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                message = await read_netstring(reader)
                if message.get("event"):
                    self.events.append(BaresipEvent(str(message.get("type")), time.monotonic(), message))
                    self._event_added.set()
                elif (future := self._responses.pop(str(message.get("token")), None)) and not future.done():
                    future.set_result(message)

    async def command(self, name: str, params: str = "", timeout_s: float = 5) -> dict[str, Any]:
        """Run a baresip command; returns its response (`ok`, `data`). Raises when it is not ok."""
        assert self._writer is not None, "start() first"
        self._token += 1
        token = str(self._token)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._responses[token] = future
        self._writer.write(netstring({"command": name, "params": params, "token": token}))
        await self._writer.drain()
        response = await asyncio.wait_for(future, timeout_s)
        if not response.get("ok"):
            raise RuntimeError(f"baresip {name} {params}: {response.get('data')}")
        return response

    async def dial(self, uri: str) -> None:
        await self.command("dial", uri)

    async def hangup(self) -> None:
        await self.command("hangup")

    async def send_dtmf(self, digits: str, gap_s: float = 0.25) -> None:
        """Press keys in the current call (RFC 4733 telephone events), `gap_s` apart."""
        for n, digit in enumerate(digits):
            if n:
                await asyncio.sleep(gap_s)
            await self.command("sndcode", digit)

    async def wait_event(self, kind: str, timeout_s: float = 10, after: int = 0) -> BaresipEvent:
        """The first event of type `kind` (from `events[after:]`), waiting up to `timeout_s` for it."""
        async with asyncio.timeout(timeout_s):
            while True:
                found = next((e for e in self.events[after:] if e.type == kind), None)
                if found is not None:
                    return found
                self._event_added.clear()
                await self._event_added.wait()

    def recordings(self, kind: Literal["dec", "enc"] = "dec") -> list[Path]:
        """sndfile's WAVs: `dec` what baresip heard (decoded), `enc` what it sent; oldest first."""
        return sorted(self.recordings_dir.glob(f"dump-*-{kind}.wav"))

    def recorded_audio(self, kind: Literal["dec", "enc"] = "dec") -> tuple[bytes, int]:
        """The last call's recording as mono s16le and its sample rate (complete once the call closed)."""
        found = self.recordings(kind)
        if not found:
            raise FileNotFoundError(f"no {kind} recording in {self.recordings_dir}:\n{self.output[-3000:]}")
        return read_wav_mono(found[-1])

    async def stop(self, timeout_s: float = 5) -> int | None:
        """Quit baresip (hanging up its calls, closing its recordings) and wait for it."""
        process, self._process = self._process, None
        if process is None:
            return None
        if self._writer is not None and process.returncode is None:
            with contextlib.suppress(Exception):
                self._writer.write(netstring({"command": "quit", "params": "", "token": "quit"}))
                await self._writer.drain()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), timeout_s)
        code = await stop_process(process)
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        return code
