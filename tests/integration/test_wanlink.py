"""The WAN-link relay: delays per direction, blackhole/heal, reset, drop, flow
control and half-close, against a TCP echo server on loopback. Needs no
PostgreSQL; every wait is bounded."""

from __future__ import annotations

import socket
import socketserver
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))
from wanlink import WanLink, WanLinkError, default_binary  # noqa: E402

HOST = "127.0.0.1"
IO_TIMEOUT_S = 5


class _EchoHandler(socketserver.BaseRequestHandler):
    def handle(self):
        self.request.settimeout(30)
        try:
            while True:
                data = self.request.recv(65536)
                if not data:
                    break
                self.request.sendall(data)
        except OSError:
            pass


class _EchoServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@pytest.fixture(scope="module")
def echo_port():
    server = _EchoServer((HOST, 0), _EchoHandler)
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    t.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()
    t.join(5)


@pytest.fixture(scope="module", autouse=True)
def _binary_present():
    if not default_binary().exists():
        pytest.fail(f"wanlink binary not found at {default_binary()}: ninja -C build "
                    "(or set WANLINK_BIN)", pytrace=False)


def connect(link: WanLink) -> socket.socket:
    s = socket.create_connection((HOST, link.port), timeout=IO_TIMEOUT_S)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def recv_exactly(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise EOFError(f"connection closed after {len(buf)} of {n} bytes")
        buf += chunk
    return buf


def round_trip_ms(s: socket.socket, payload: bytes = b"ping") -> float:
    t0 = time.monotonic()
    s.sendall(payload)
    assert recv_exactly(s, len(payload)) == payload
    return (time.monotonic() - t0) * 1000


def assert_silent(s: socket.socket, seconds: float) -> None:
    """Nothing arrives on `s` for `seconds` (and the connection is not closed)."""
    s.settimeout(seconds)
    try:
        data = s.recv(100)
    except socket.timeout:
        return
    finally:
        s.settimeout(IO_TIMEOUT_S)
    pytest.fail(f"expected silence, got {data!r}")


def assert_reset(s: socket.socket) -> None:
    """The connection was reset (or at least closed) by the relay."""
    s.settimeout(IO_TIMEOUT_S)
    try:
        for _ in range(3):
            s.sendall(b"x")
            time.sleep(0.05)
        data = s.recv(100)
    except (ConnectionResetError, BrokenPipeError):
        return
    assert data == b"", f"expected a reset connection, got {data!r}"


def assert_new_connection_reset(link: WanLink) -> None:
    """A new connection is reset by the relay (possibly already during connect())."""
    try:
        s = connect(link)
    except ConnectionResetError:
        return
    with s:
        assert_reset(s)


def test_delay_round_trip(echo_port):
    with WanLink(echo_port, delay_ms=40) as link, connect(link) as s:
        samples = [round_trip_ms(s) for _ in range(5)]
        assert min(samples) >= 80, samples
        assert max(samples) < 80 + 400, samples
        assert link.status()["connections"] == 1


def test_asymmetric_and_changed_delay(echo_port):
    with WanLink(echo_port, delay_up_ms=10, delay_down_ms=60) as link, connect(link) as s:
        assert link.status()["delay_down_ms"] == 60
        assert min(round_trip_ms(s) for _ in range(3)) >= 70
        link.set_delay(0)
        assert min(round_trip_ms(s) for _ in range(3)) < 40
        link.set_delay(50, 0)
        assert min(round_trip_ms(s) for _ in range(3)) >= 50


def test_delay_keeps_order_when_it_shrinks(echo_port):
    with WanLink(echo_port, delay_ms=200) as link, connect(link) as s:
        s.sendall(b"first-")
        time.sleep(0.02)
        link.set_delay(0)
        s.sendall(b"second")
        assert recv_exactly(s, 12) == b"first-second"


def test_blackhole_and_heal(echo_port):
    with WanLink(echo_port, delay_ms=5) as link, connect(link) as old:
        assert round_trip_ms(old) < 1000
        link.blackhole()
        assert link.status()["mode"] == "blackhole"
        old.sendall(b"stalled")
        assert_silent(old, 0.5)
        # A new connection is accepted but never answered.
        new = connect(link)
        new.sendall(b"unheard")
        assert_silent(new, 0.5)
        link.heal()
        assert link.status()["mode"] == "normal"
        # What was held is delivered; both connections work again.
        assert recv_exactly(old, 7) == b"stalled"
        assert recv_exactly(new, 7) == b"unheard"
        assert round_trip_ms(old) < 1000
        assert round_trip_ms(new) < 1000
        new.close()


def test_reset(echo_port):
    with WanLink(echo_port, delay_ms=5) as link:
        a, b = connect(link), connect(link)
        assert round_trip_ms(a) < 1000 and round_trip_ms(b) < 1000
        link.reset()
        for s in (a, b):
            with pytest.raises(ConnectionResetError):
                s.settimeout(IO_TIMEOUT_S)
                s.recv(100)
            s.close()
        assert link.status()["connections"] == 0
        # Only the connections of that moment: new ones work.
        with connect(link) as c:
            assert round_trip_ms(c) < 1000


def test_drop_and_heal(echo_port):
    with WanLink(echo_port, delay_ms=5) as link:
        old = connect(link)
        assert round_trip_ms(old) < 1000
        link.drop()
        assert_reset(old)
        old.close()
        assert_new_connection_reset(link)  # accepted by the kernel, then reset
        link.heal()
        with connect(link) as s:
            assert round_trip_ms(s) < 1000


def test_target_refusing_resets_the_client(echo_port):
    with socket.socket() as placeholder:
        placeholder.bind((HOST, 0))
        dead_port = placeholder.getsockname()[1]  # bound, not listening: refused
        with WanLink(dead_port, delay_ms=0) as link:
            assert_new_connection_reset(link)


def test_large_transfer_in_order_with_flow_control(echo_port):
    data = bytes(range(256)) * (8 * 4096)  # 8 MiB, through a 256 KiB in-flight cap
    with WanLink(echo_port, delay_ms=2, max_buffer_bytes=256 * 1024) as link, \
            connect(link) as s:
        s.settimeout(30)
        received = bytearray()
        errors: list[BaseException] = []

        def reader():
            try:
                while len(received) < len(data):
                    chunk = s.recv(1 << 20)
                    if not chunk:
                        break
                    received.extend(chunk)
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)

        t = threading.Thread(target=reader, daemon=True)
        t.start()
        s.sendall(data)
        t.join(30)
        assert not t.is_alive(), "transfer did not finish"
        assert not errors, errors
        assert bytes(received) == data


def test_half_close_is_relayed(echo_port):
    with WanLink(echo_port, delay_ms=20) as link, connect(link) as s:
        s.sendall(b"last words")
        s.shutdown(socket.SHUT_WR)
        assert recv_exactly(s, 10) == b"last words"
        assert s.recv(100) == b""  # the echo server closed after our EOF
        deadline = time.monotonic() + IO_TIMEOUT_S
        while link.status()["connections"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert link.status()["connections"] == 0


def test_control_errors_and_stop(echo_port):
    link = WanLink(echo_port, delay_ms=1)
    with pytest.raises(WanLinkError):
        link.command("bogus")
    with pytest.raises(WanLinkError):
        link.command("delay -5")
    with pytest.raises(WanLinkError):
        link.command("heal now")
    st = link.status()
    assert st["mode"] == "normal" and st["delay_up_ms"] == 1
    link.stop()  # exits 0 on SIGTERM
    assert not link.alive()
