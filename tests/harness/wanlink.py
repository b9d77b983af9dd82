#!/usr/bin/env python3
"""Drives the WAN-link relay (build/tests/wanlink/wanlink) for tests, benchmarks
and the quickstart: a TCP relay on loopback that adds a one-way delay per
direction and can drop, blackhole or reset connections on command.

    with WanLink(target_port=5432, delay_ms=40) as link:
        psycopg.connect(f"host=127.0.0.1 port={link.port} ...")   # about 80 ms RTT
        link.set_delay(10, 90)     # client->target 10 ms, target->client 90 ms
        link.blackhole()           # accepts, never answers; open connections stall
        link.heal()
        link.reset()               # RST every open connection
        link.drop()                # RST open and new connections until heal()

"up" is client -> target, "down" is target -> client. The binary is `binary`,
else $WANLINK_BIN, else build/tests/wanlink/wanlink under the repo root. Ports
are picked by the relay itself (port 0) unless given, so there is no race for a
free port. `stop()` sends SIGTERM (SIGKILL after a bound) and raises
WanLinkError if the relay died on its own or exited badly; it also runs from
atexit so no relay outlives the test process.

CLI (for shell scripts; runs until SIGTERM/SIGINT):

    /usr/bin/python3 tests/harness/wanlink.py --target-port T --delay-ms 40 [--listen-port P]
"""

from __future__ import annotations

import argparse
import atexit
import os
import selectors
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Optional

REPO_ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
START_TIMEOUT_S = 10
STOP_TIMEOUT_S = 10
COMMAND_TIMEOUT_S = 5


class WanLinkError(RuntimeError):
    pass


def default_binary() -> Path:
    env = os.environ.get("WANLINK_BIN")
    if env:
        return Path(env).resolve()
    return REPO_ROOT / "build" / "tests" / "wanlink" / "wanlink"


_live: "list[WanLink]" = []
_live_lock = threading.Lock()


def _stop_all() -> None:
    with _live_lock:
        links = list(_live)
    for link in links:
        try:
            link.stop(check=False)
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


atexit.register(_stop_all)


class WanLink:
    """One relay process in front of 127.0.0.1:target_port (or target_host)."""

    def __init__(self, target_port: int, delay_ms: int = 0, *,
                 delay_up_ms: Optional[int] = None, delay_down_ms: Optional[int] = None,
                 target_host: str = HOST, listen_port: int = 0, control_port: int = 0,
                 max_buffer_bytes: Optional[int] = None,
                 binary: Optional[str | os.PathLike] = None, start: bool = True):
        self.target_host = target_host
        self.target_port = int(target_port)
        self.delay_up_ms = int(delay_ms if delay_up_ms is None else delay_up_ms)
        self.delay_down_ms = int(delay_ms if delay_down_ms is None else delay_down_ms)
        self.host = HOST
        self.port = int(listen_port)
        self.control_port = int(control_port)
        self.max_buffer_bytes = max_buffer_bytes
        self.binary = Path(binary) if binary else default_binary()
        self.proc: Optional[subprocess.Popen] = None
        self._log = tempfile.TemporaryFile(prefix="wanlink-", suffix=".log")
        if start:
            self.start()

    def __repr__(self) -> str:
        return (f"WanLink({self.host}:{self.port} -> {self.target_host}:{self.target_port}, "
                f"up {self.delay_up_ms} ms, down {self.delay_down_ms} ms)")

    # ---- lifecycle ----
    def start(self, timeout: float = START_TIMEOUT_S) -> "WanLink":
        if self.proc is not None:
            return self
        if not self.binary.exists():
            raise FileNotFoundError(f"wanlink binary not found at {self.binary} "
                                    "(ninja -C build, or set WANLINK_BIN)")
        cmd = [str(self.binary),
               "--listen", f"{self.host}:{self.port}",
               "--target", f"{self.target_host}:{self.target_port}",
               "--control", f"{self.host}:{self.control_port}",
               "--delay-up-ms", str(self.delay_up_ms),
               "--delay-down-ms", str(self.delay_down_ms)]
        if self.max_buffer_bytes is not None:
            cmd += ["--max-buffer-bytes", str(self.max_buffer_bytes)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=self._log)
        with _live_lock:
            _live.append(self)
        line = self._read_ready_line(timeout)
        fields = dict(f.split("=", 1) for f in line.split()[1:] if "=" in f)
        try:
            self.port = int(fields["listen"].rsplit(":", 1)[1])
            self.control_port = int(fields["control"].rsplit(":", 1)[1])
        except (KeyError, ValueError) as e:
            self.stop(check=False)
            raise WanLinkError(f"unexpected ready line from wanlink: {line!r}") from e
        return self

    def _read_ready_line(self, timeout: float) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        buf = b""
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            while b"\n" not in buf:
                left = deadline - time.monotonic()
                if left <= 0:
                    self.stop(check=False)
                    raise WanLinkError(f"wanlink not ready within {timeout}s: {self.log_text()}")
                if not sel.select(left):
                    continue
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                if not chunk:
                    rc = self.proc.wait(timeout=5)
                    self._forget()
                    self.proc = None
                    raise WanLinkError(f"wanlink exited during startup (rc={rc}): "
                                       f"{self.log_text()}")
                buf += chunk
        line = buf.split(b"\n", 1)[0].decode()
        if not line.startswith("ready"):
            self.stop(check=False)
            raise WanLinkError(f"unexpected output from wanlink: {line!r}")
        return line

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, check: bool = True, timeout: float = STOP_TIMEOUT_S) -> None:
        if self.proc is None:
            return
        proc = self.proc
        problems = []
        if proc.poll() is not None:
            problems.append(f"wanlink was no longer running (rc={proc.returncode})")
        else:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                problems.append(f"wanlink did not exit within {timeout}s of SIGTERM")
                proc.kill()
                proc.wait(timeout=10)
            if proc.returncode not in (0, None) and not problems:
                problems.append(f"wanlink exited with status {proc.returncode}")
        if proc.stdout is not None:
            proc.stdout.close()
        self.proc = None
        self._forget()
        if problems and check:
            raise WanLinkError("; ".join(problems) + "\n" + self.log_text())

    def _forget(self) -> None:
        with _live_lock:
            if self in _live:
                _live.remove(self)

    def __enter__(self) -> "WanLink":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop(check=exc[0] is None)

    def log_text(self) -> str:
        try:
            self._log.seek(0)
            return self._log.read().decode(errors="replace")
        except (OSError, ValueError):
            return ""

    # ---- control ----
    def command(self, line: str, timeout: float = COMMAND_TIMEOUT_S) -> str:
        """Sends one control command; returns what follows "ok" (raises on "error ...")."""
        if not self.alive():
            raise WanLinkError(f"{self} is not running")
        with socket.create_connection((self.host, self.control_port), timeout=timeout) as s:
            s.sendall(line.encode() + b"\n")
            reply = b""
            deadline = time.monotonic() + timeout
            while b"\n" not in reply:
                if time.monotonic() > deadline:
                    raise WanLinkError(f"no reply to {line!r} within {timeout}s")
                chunk = s.recv(4096)
                if not chunk:
                    break
                reply += chunk
        text = reply.decode().strip()
        if text == "ok" or text.startswith("ok "):
            return text[3:]
        raise WanLinkError(f"wanlink refused {line!r}: {text!r}")

    def set_delay(self, up_ms: int, down_ms: Optional[int] = None) -> None:
        """One-way delays for data read from now on (up: client -> target)."""
        down_ms = up_ms if down_ms is None else down_ms
        self.command(f"delay {int(up_ms)} {int(down_ms)}")
        self.delay_up_ms, self.delay_down_ms = int(up_ms), int(down_ms)

    def blackhole(self) -> None:
        self.command("blackhole")

    def drop(self) -> None:
        self.command("drop")

    def reset(self) -> None:
        self.command("reset")

    def heal(self) -> None:
        self.command("heal")

    def status(self) -> dict:
        """{"mode": "normal", "delay_up_ms": 40, "delay_down_ms": 40, "connections": 1, ...}"""
        out: dict = {}
        for field in self.command("status").split():
            key, _, value = field.partition("=")
            out[key] = int(value) if value.isdigit() else value
        return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--target-port", type=int, required=True)
    ap.add_argument("--target-host", default=HOST)
    ap.add_argument("--delay-ms", type=int, default=0)
    ap.add_argument("--delay-up-ms", type=int)
    ap.add_argument("--delay-down-ms", type=int)
    ap.add_argument("--listen-port", type=int, default=0)
    ap.add_argument("--control-port", type=int, default=0)
    args = ap.parse_args()
    link = WanLink(args.target_port, args.delay_ms, delay_up_ms=args.delay_up_ms,
                   delay_down_ms=args.delay_down_ms, target_host=args.target_host,
                   listen_port=args.listen_port, control_port=args.control_port)
    print(f"listen={link.host}:{link.port} control={link.host}:{link.control_port}", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.is_set() and link.alive():
        stop.wait(0.5)
    link.stop(check=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
