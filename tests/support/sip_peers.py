"""Real SIP peers for tests of a SIP server on 127.0.0.1 (UDP): `SippCaller` (sipp as the caller, from a
scenario written per call), `SippAnswerer` (sipp as the callee, echoing RTP), and `RtpCapture` (tcpdump on
`lo`, read back into RTP packets). Beside it: `sip_pcap.py` writes the RTP sipp plays and reads captures,
`sip_audio.py` makes payloads from WAVs and decodes what was captured, `sip_messages.py` parses the SIP
messages sipp logged, `sip_baresip.py` is a softphone.

sipp's pcap replay sends through raw sockets, and tcpdump captures: both need root (which CI has)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Literal
from xml.sax.saxutils import quoteattr

from tests.support.sip_messages import SippResult, parse_sipp_messages
from tests.support.sip_pcap import RtpPacket, read_rtp_pcap

# `m=` payload types and their rtpmap, in offer order (fmtp 0-16 is added for telephone-event).
PCMU_OFFER: tuple[tuple[int, str], ...] = ((0, "PCMU/8000"), (101, "telephone-event/8000"))
PCMA_OFFER: tuple[tuple[int, str], ...] = ((8, "PCMA/8000"), (101, "telephone-event/8000"))
G729_OFFER: tuple[tuple[int, str], ...] = ((18, "G729/8000"),)  # nothing a G.711/Opus gateway can take


def free_udp_port(count: int = 1, *, even: bool = False) -> int:
    """A UDP port on 127.0.0.1 that is free together with the `count - 1` ports after it (RTP wants an even
    port, its RTCP the next one; sipp also binds `-mp` + 2 for video)."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port: int = probe.getsockname()[1]
        if even and port % 2:
            port -= 1
        if port + count > 65535 or port < 1024:
            continue
        sockets: list[socket.socket] = []
        try:
            for offset in range(count):
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sockets.append(sock)
                sock.bind(("127.0.0.1", port + offset))
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
        return port
    raise RuntimeError("no free UDP port range on 127.0.0.1")


def _udp_bound(port: int) -> bool:
    """Whether something listens on UDP 127.0.0.1:`port` (a bind without SO_REUSEADDR then fails)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
        return False


def require(binary: str) -> str:
    path = shutil.which(binary)
    if path is None:
        raise RuntimeError(f"{binary} is not installed (Debian: sip-tester, baresip-core, tcpdump)")
    return path


async def stop_process(
    process: asyncio.subprocess.Process, sig: int = signal.SIGTERM, timeout_s: float = 5
) -> int:
    """Signal a process and wait for it; SIGKILL when it does not exit within `timeout_s`."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(sig)
        try:
            await asyncio.wait_for(process.wait(), timeout_s)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode


# --- sipp ---------------------------------------------------------------------------------------------------


def _sdp(offer: Sequence[tuple[int, str]]) -> str:
    lines = [
        "v=0",
        "o=- 1 1 IN IP[local_ip_type] [local_ip]",
        "s=-",
        "c=IN IP[media_ip_type] [media_ip]",
        "t=0 0",
        f"m=audio [media_port] RTP/AVP {' '.join(str(pt) for pt, _ in offer)}",
    ]
    for pt, rtpmap in offer:
        lines.append(f"a=rtpmap:{pt} {rtpmap}")
        if rtpmap.lower().startswith("telephone-event/"):
            lines.append(f"a=fmtp:{pt} 0-16")
    return "\n".join([*lines, "a=ptime:20", "a=sendrecv"])


def _message(text: str, retrans: bool = False) -> str:
    attrs = ' retrans="500"' if retrans else ""
    return f"<send{attrs}><![CDATA[\n{text.strip()}\n\n]]></send>"


def _reply_200(extra: str = "") -> str:
    """A 200 (or other) response to the last request received, in its dialog."""
    return _message(
        (extra or "SIP/2.0 200 OK")
        + "\n[last_Via:]\n[last_From:]\n[last_To:]\n[last_Call-ID:]\n[last_CSeq:]\n"
        "Contact: <sip:[local_ip]:[local_port];transport=[transport]>\nContent-Length: 0"
    )


def _check_value(value: str) -> str:
    if any(c in value for c in "\r\n[]") or "]]>" in value:
        raise ValueError(f"{value!r}: sipp scenario text cannot hold line breaks or brackets")
    return value


@dataclass(kw_only=True)
class _Sipp:
    """What runs a sipp scenario: the common options, ports picked when constructed."""

    workdir: Path
    timeout_s: float = 30
    sip_port: int = field(default_factory=free_udp_port)
    media_port: int = field(default_factory=lambda: free_udp_port(4, even=True))
    name: str = "sipp"
    _process: asyncio.subprocess.Process | None = field(default=None, init=False, repr=False)

    def _command(self, scenario: str, extra: list[str]) -> tuple[list[str], Path, Path]:
        self.workdir.mkdir(parents=True, exist_ok=True)
        xml = self.workdir / f"{self.name}.xml"
        head = f'<?xml version="1.0" encoding="UTF-8"?>\n<scenario name="{self.name}">\n'
        xml.write_text(f"{head}{scenario}\n</scenario>\n")
        messages = self.workdir / f"{self.name}-messages.log"
        errors = self.workdir / f"{self.name}-errors.log"
        for path in (messages, errors):
            path.unlink(missing_ok=True)
        command = [
            require("sipp"), "-sf", str(xml), *extra,
            "-i", "127.0.0.1", "-p", str(self.sip_port), "-t", "u1",
            "-mi", "127.0.0.1", "-mp", str(self.media_port),
            "-m", "1", "-nostdin", "-timeout", f"{int(self.timeout_s)}s", "-timeout_error",
            "-trace_msg", "-message_file", str(messages), "-trace_err", "-error_file", str(errors),
        ]  # fmt: skip
        return command, messages, errors

    async def _run(self, scenario: str, extra: list[str]) -> SippResult:
        command, messages, errors = self._command(scenario, extra)
        started = time.monotonic()
        self._process = process = await asyncio.create_subprocess_exec(
            *command,
            cwd=self.workdir,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            stdout, stderr = await asyncio.wait_for(process.communicate(), self.timeout_s + 10)
        finally:
            await stop_process(process)
        logged = messages.read_text(errors="replace") if messages.exists() else ""
        error_log = errors.read_text(errors="replace") if errors.exists() else ""
        assert process.returncode is not None
        return SippResult(
            exit_code=process.returncode,
            messages=parse_sipp_messages(logged),
            errors=stderr.decode(errors="replace") + error_log,
            screen=stdout.decode(errors="replace"),
            duration_s=time.monotonic() - started,
        )


@dataclass(kw_only=True)
class SippCaller(_Sipp):
    """sipp calling `host:port` (UDP) once, from a scenario written for the call.

    The INVITE goes to `sip:<called>@host:port` from `sip:<caller>@127.0.0.1:<sip_port>` with `headers` and an
    SDP offer of `offer` on `media_port`. Then, by `expect_status` and `hangup`:

    * `expect_status` other than 200: that final response is expected (after optional 100/180/183), and ACKed;
    * `hangup="caller"`: after the ACK `pcap` plays (sipp rewrites its addresses and ports to the answer's
      media address) and the caller sends BYE `pause_ms` after the ACK;
    * `hangup="server"`: the pcap plays and a BYE from the server is expected within `wait_ms`, answered 200;
    * `hangup="refer"`: the pcap plays and a REFER is expected within `wait_ms`, answered 202 Accepted (and
      with a NOTIFY carrying `SIP/2.0 200 OK` when `notify_refer`); then `after_refer`: the server's BYE is
      awaited (answered 200), or the caller sends BYE.

    The pcap plays in the background: a call shorter than it cuts it short. Its RFC 4733 packets keep the
    payload type they were written with (101 unless told): the server must accept that one. `media_port` is
    where the caller receives, e.g. for an `RtpCapture` started before `run()`. `sip_port` and `media_port`
    are picked free when the caller is made; `workdir` gets the scenario and sipp's logs.
    """

    host: str = "127.0.0.1"
    port: int = 5060
    caller: str = "alice"
    called: str = "agent"
    headers: Mapping[str, str] | Sequence[tuple[str, str]] = ()
    offer: Sequence[tuple[int, str]] = PCMU_OFFER
    pcap: Path | None = None
    pause_ms: int = 3000
    expect_status: int = 200
    hangup: Literal["caller", "server", "refer"] = "caller"
    after_refer: Literal["server", "caller"] = "server"
    notify_refer: bool = False
    wait_ms: int = 15_000
    name: str = "caller"

    def scenario(self) -> str:
        caller = _check_value(self.caller)
        pairs = self.headers.items() if isinstance(self.headers, Mapping) else self.headers
        extra = "".join(f"{_check_value(k)}: {_check_value(v)}\n" for k, v in pairs)
        dialog = (
            f"From: <sip:{caller}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]\n"
            "To: <sip:[service]@[remote_ip]:[remote_port]>{to_tag}\n"
            "Call-ID: [call_id]\n"
        )
        contact = f"Contact: <sip:{caller}@[local_ip]:[local_port]>\nMax-Forwards: 70\n"
        via = "Via: SIP/2.0/[transport] [local_ip]:[local_port];branch={branch}\n"

        def request(method: str, cseq: int, body: str = "", content_type: str = "", head: str = "") -> str:
            uri = "sip:[service]@[remote_ip]:[remote_port]" if method == "INVITE" else "[next_url]"
            routes = "" if method == "INVITE" else "[routes]\n"
            tag = "" if method == "INVITE" else "[peer_tag_param]"
            typed = f"Content-Type: {content_type}\n" if body else ""
            return _message(
                f"{method} {uri} SIP/2.0\n{via.format(branch='[branch]')}{routes}{dialog.format(to_tag=tag)}"
                f"CSeq: {cseq} {method}\n{contact}{head}{typed}Content-Length: [len]\n\n{body}",
                retrans=method != "ACK",
            )

        steps = [
            request("INVITE", 1, _sdp(self.offer), "application/sdp", extra),
            '<recv response="100" optional="true"/>',
            '<recv response="180" optional="true"/>',
            '<recv response="183" optional="true"/>',
        ]
        if self.expect_status != 200:
            steps.append(f'<recv response="{self.expect_status}"/>')
            # The ACK of a failure is in the INVITE's transaction: its branch, the response's To tag.
            ack = "ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0\n"
            ack += (
                via.format(branch=f"[branch-{len(steps)}]")
                + dialog.format(to_tag="[peer_tag_param]")
                + f"CSeq: 1 ACK\n{contact}Content-Length: 0"
            )
            return "\n".join([*steps, _message(ack)])
        steps += ['<recv response="200" rrs="true"/>', request("ACK", 1)]
        if self.pcap is not None:
            play = quoteattr(str(self.pcap.resolve()))
            steps.append(f"<nop><action><exec play_pcap_audio={play}/></action></nop>")
        cseq = 2
        if self.hangup == "caller":
            steps.append(f'<pause milliseconds="{self.pause_ms}"/>')
        elif self.hangup == "refer":
            steps += [f'<recv request="REFER" timeout="{self.wait_ms}"/>', _reply_200("SIP/2.0 202 Accepted")]
            if self.notify_refer:
                head = "Event: refer\nSubscription-State: terminated;reason=noresource\n"
                sipfrag = "message/sipfrag;version=2.0"
                steps += [request("NOTIFY", cseq, "SIP/2.0 200 OK", sipfrag, head), '<recv response="200"/>']
                cseq += 1
        if self.hangup == "server" or (self.hangup == "refer" and self.after_refer == "server"):
            steps += [f'<recv request="BYE" timeout="{self.wait_ms}"/>', _reply_200()]
        else:
            steps += [request("BYE", cseq), '<recv response="200" crlf="true"/>']
        return "\n".join(steps)

    async def run(self) -> SippResult:
        """Place the call; returns when sipp exits (the scenario ended, failed or timed out)."""
        return await self._run(self.scenario(), [f"{self.host}:{self.port}", "-s", _check_value(self.called)])


@dataclass(kw_only=True)
class SippAnswerer(_Sipp):
    """sipp answering one call on 127.0.0.1:`sip_port`, echoing the RTP it gets on `media_port` back to its
    sender (`-rtp_echo`). It answers `status` (with an SDP answer of `answer` when 200) and then:
    `hangup="caller"` waits for the caller's BYE; `"server"` sends BYE `pause_ms` after the ACK; `"refer"`
    sends a REFER to `refer_to` `pause_ms` after the ACK, expects 202 (and a NOTIFY when `expect_notify`),
    then sends BYE (`after_refer="server"`) or waits for the caller's. `start()` it, place the call, `wait()`
    for the result."""

    status: int = 200
    answer: Sequence[tuple[int, str]] = PCMU_OFFER
    hangup: Literal["caller", "server", "refer"] = "caller"
    pause_ms: int = 1000
    refer_to: str = "<sip:desk@127.0.0.1>"
    expect_notify: bool = False
    after_refer: Literal["server", "caller"] = "server"
    name: str = "answerer"
    _task: asyncio.Task[SippResult] | None = field(default=None, init=False, repr=False)

    def scenario(self) -> str:
        saved = (
            '<action><ereg regexp="[^ \t].*" search_in="hdr" header="From:" assign_to="remote"/>'
            '<ereg regexp="[^ \t].*" search_in="hdr" header="To:" assign_to="local"/></action>'
        )
        # sipp refuses variables it sets and never uses: save the dialog's ends only for our own requests.
        own_requests = self.status == 200 and self.hangup != "caller"
        steps = [f'<recv request="INVITE" rrs="true">{saved if own_requests else ""}</recv>']
        tag = ";tag=[pid]SIPpTag01[call_number]"
        head = "[last_Via:]\n[last_From:]\n[last_To:]" + tag + "\n[last_Call-ID:]\n[last_CSeq:]\n"
        contact = "Contact: <sip:[local_ip]:[local_port];transport=[transport]>\n"
        if self.status != 200:
            steps.append(_message(f"SIP/2.0 {self.status} Failed\n{head}{contact}Content-Length: 0"))
            steps.append('<recv request="ACK"/>')
            return "\n".join(steps)
        steps.append(_message(f"SIP/2.0 180 Ringing\n{head}{contact}Content-Length: 0"))
        sdp = _sdp(self.answer)
        sdp_head = "Content-Type: application/sdp\nContent-Length: [len]"
        steps.append(_message(f"SIP/2.0 200 OK\n{head}{contact}{sdp_head}\n\n{sdp}"))
        steps.append('<recv request="ACK" crlf="true"/>')

        def request(method: str, cseq: int, extra: str = "") -> str:
            return _message(
                f"{method} [next_url] SIP/2.0\n"
                "Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]\n"
                f"From: [$local]{tag}\nTo: [$remote]\nCall-ID: [call_id]\nCSeq: {cseq} {method}\n"
                f"{contact}Max-Forwards: 70\n{extra}Content-Length: 0",
                retrans=True,
            )

        if self.hangup == "caller":
            steps += ['<recv request="BYE"/>', _reply_200()]
            return "\n".join(steps)
        steps.append(f'<pause milliseconds="{self.pause_ms}"/>')
        cseq = 1
        if self.hangup == "refer":
            refer = f"Refer-To: {_check_value(self.refer_to)}\nReferred-By: [$local]\n"
            steps += [request("REFER", cseq, refer), '<recv response="202"/>']
            cseq += 1
            if self.expect_notify:
                steps += ['<recv request="NOTIFY"/>', _reply_200()]
            if self.after_refer == "caller":
                steps += ['<recv request="BYE"/>', _reply_200()]
                return "\n".join(steps)
        steps += [request("BYE", cseq), '<recv response="200"/>']
        return "\n".join(steps)

    async def start(self, timeout_s: float = 10) -> None:
        """Start answering: returns once sipp has bound its SIP and media ports."""
        self._task = asyncio.create_task(self._run(self.scenario(), ["-rtp_echo"]))
        deadline = time.monotonic() + timeout_s
        while not (_udp_bound(self.sip_port) and _udp_bound(self.media_port)):
            if self._task.done():
                raise RuntimeError(f"sipp answerer exited at once:\n{(await self._task).log_tail}")
            if time.monotonic() > deadline:
                await self.wait(timeout_s=0)
                raise RuntimeError("sipp answerer did not bind its ports")
            await asyncio.sleep(0.02)

    async def wait(self, timeout_s: float | None = None) -> SippResult:
        """The answerer's result once its scenario ended; with `timeout_s`, sipp is stopped (SIGTERM) if it
        has not ended by then."""
        assert self._task is not None, "start() first"
        if timeout_s is not None:
            done, _ = await asyncio.wait({self._task}, timeout=timeout_s)
            if not done and self._process is not None:
                await stop_process(self._process)
        return await self._task


# --- capture ------------------------------------------------------------------------------------------------


class RtpCapture:
    """tcpdump capturing the UDP datagrams sent to 127.0.0.1:`port` on `lo`, read back as RTP packets.

    `await start()` returns once tcpdump is listening (it says so on stderr); `await stop()` lets late packets
    arrive (`settle_s`), stops tcpdump and returns the RTP packets (also kept in `packets`, the raw capture in
    `pcap_bytes` and, given `pcap_path`, in that file). Also an async context manager."""

    def __init__(self, port: int, *, pcap_path: Path | None = None, interface: str = "lo") -> None:
        self.port = port
        self.pcap_path = pcap_path
        self.interface = interface
        self.packets: list[RtpPacket] = []
        self.pcap_bytes = b""
        self.stderr = ""
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[bytes] | None = None

    async def start(self, timeout_s: float = 10) -> None:
        # `-w -`: the capture comes through a pipe as it happens (no file owned by tcpdump's own user);
        # --immediate-mode: packets are not held back in the kernel's ring buffer.
        self._process = await asyncio.create_subprocess_exec(
            require("tcpdump"), "-i", self.interface, "-n", "-s", "0", "-U", "--immediate-mode", "-w", "-",
            f"udp and dst host 127.0.0.1 and dst port {self.port}",
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert self._process.stdout is not None
        assert self._process.stderr is not None
        self._reader = asyncio.create_task(self._process.stdout.read())
        stderr = self._process.stderr
        lines: list[str] = []
        try:
            async with asyncio.timeout(timeout_s):
                while not (lines and "listening on" in lines[-1]):
                    line = await stderr.readline()
                    if not line:
                        raise RuntimeError("tcpdump exited: " + "".join(lines))
                    lines.append(line.decode(errors="replace"))
        except BaseException:
            await self.stop(settle_s=0)
            raise
        self.stderr = "".join(lines)

    async def stop(self, settle_s: float = 0.3) -> list[RtpPacket]:
        if self._process is None:
            return self.packets
        await asyncio.sleep(settle_s)
        process, self._process = self._process, None
        await stop_process(process, signal.SIGINT)
        assert self._reader is not None
        assert process.stderr is not None
        self.pcap_bytes = await self._reader
        self.stderr += (await process.stderr.read()).decode(errors="replace")
        if self.pcap_path is not None:
            self.pcap_path.write_bytes(self.pcap_bytes)
        self.packets = read_rtp_pcap(self.pcap_bytes) if self.pcap_bytes else []
        return self.packets

    async def __aenter__(self) -> RtpCapture:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.stop()
