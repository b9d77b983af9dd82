"""Admission under hostile input (issue 16, classes 2, 7 and 8): what an attacker who
can reach the ports but has no password can make pgregion do. Each test asserts the
bound it protects: memory held by unauthenticated connections, logins that still get
through (or PostgreSQL's 53300 answer, never a silent close), the delay before a
failed login is answered, log lines per flood, and /health answering under an admin
port flood."""

from __future__ import annotations

import http.client
import os
import random
import socket
import struct
import time

import psycopg
import pytest

from cluster import free_port
from conftest import connect
from pgwire import RawConn, cancel_request, startup_message

TOO_MANY = "sorry, too many clients already"


def rss_kib(p) -> int:
    with open(f"/proc/{p.proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def timed_login(p, **kw) -> float:
    t0 = time.monotonic()
    with connect(p, connect_timeout=10, **kw) as conn:
        assert conn.execute("select 1").fetchone()[0] == 1
    return time.monotonic() - t0


def start_sasl(p) -> RawConn:
    """A connection that sent its StartupMessage and was asked for SCRAM."""
    c = RawConn(p.host, p.port, timeout=10)
    c.send(startup_message({"user": "app", "database": "appdb"}))
    m = c.read_message()
    assert m is not None and m.type == "R" and m.auth_code == 10, m
    return c


def test_huge_auth_messages_refused_before_buffering(start_proxy, cluster):
    """30 connections each declaring a 48 MiB SASL message (and sending 2 MiB of it):
    each is refused with 08P01 from the header alone, RSS stays flat, and a
    legitimate login meanwhile is not slowed down."""
    p = start_proxy(cluster)
    timed_login(p)  # pools and caches warm: RSS is measured from here
    before = rss_kib(p)
    conns = [start_sasl(p) for _ in range(30)]
    chunk = b"x" * (64 * 1024)
    for c in conns:
        c.send(b"p" + struct.pack("!I", 48 << 20) + b"SCRAM-SHA-256\0")
    login_s = timed_login(p)
    refused = 0
    for c in conns:
        try:
            for _ in range(32):  # up to 2 MiB each; the proxy has closed by then
                c.sock.sendall(chunk)
        except OSError:
            pass
        msgs, closed = c.messages_until_closed(timeout=5)
        errors = [m for m in msgs if m.type == "E"]
        if errors and errors[0].sqlstate == "08P01" and closed:
            refused += 1
        c.close()
    after = rss_kib(p)
    assert refused == 30
    assert after - before < 20 * 1024, f"RSS grew {before} -> {after} KiB"
    assert login_s < 3.0, login_s
    # PostgreSQL's own limit (65535 bytes including the length) is still accepted
    # as a message: a SASL message of 65535 bytes is parsed (and fails as SCRAM).
    with start_sasl(p) as c:
        body = b"SCRAM-SHA-256\0" + struct.pack("!i", 65535 - 4 - 14 - 4)
        body += b"n" * (65535 - 4 - len(body))
        c.send(b"p" + struct.pack("!I", 65535) + body)
        msgs, closed = c.messages_until_closed(timeout=5)
        assert closed and msgs and msgs[-1].type == "E"
        assert msgs[-1].sqlstate != "08P01" or "length" not in msgs[-1].error_fields().get("M", "")


def test_idle_socket_flood_evicted_for_new_logins(start_proxy, cluster):
    """More idle sockets than the pre-auth budget: the oldest give way (with 53300)
    and a legitimate client logs in at once."""
    # More idle sockets than max_client_connections too: they must not use it up.
    p = start_proxy(cluster, proxy={"max_unauthenticated_connections": 20,
                                    "max_client_connections": 50})
    idle = []
    for _ in range(100):
        idle.append(RawConn(p.host, p.port, timeout=5))
    try:
        time.sleep(0.2)
        assert timed_login(p) < 3.0
        # The oldest idle socket was evicted with PostgreSQL's answer, not a silent close.
        msgs, closed = idle[0].messages_until_closed(timeout=5)
        assert closed
        assert msgs and msgs[0].type == "E" and msgs[0].sqlstate == "53300"
        assert msgs[0].error_fields()["M"] == TOO_MANY
        # The operator hears of it, rate-limited (80 evictions, a burst of 10 lines).
        assert 1 <= p.log_text().count("pre_auth_full") <= 10 + 2
    finally:
        for s in idle:
            s.close()


def test_full_budget_of_logins_in_progress_answers_53300(start_proxy, cluster):
    """When every pre-auth slot is a login in progress (nothing to evict), a new
    client gets 53300 with PostgreSQL's text after its StartupMessage."""
    stale_ms = 2000
    p = start_proxy(cluster, proxy={"max_unauthenticated_connections": 5,
                                    "startup_packet_timeout_ms": stale_ms})
    busy = [start_sasl(p) for _ in range(5)]
    t0 = time.monotonic()
    try:
        with pytest.raises(psycopg.OperationalError) as e:
            connect(p, connect_timeout=5)
        assert TOO_MANY in str(e.value)
        with RawConn(p.host, p.port, timeout=5) as c:
            msgs = c.startup("app", "appdb", password="secret", timeout=5)
            assert msgs and msgs[-1].type == "E" and msgs[-1].sqlstate == "53300"
        assert time.monotonic() - t0 < stale_ms / 1000, "too slow to test the refusal"
        # Logins stalled longer than startup_packet_timeout_ms give way to new ones.
        time.sleep(stale_ms / 1000 + 0.2)
        assert timed_login(p) < 3.0
        msgs, closed = busy[0].messages_until_closed(timeout=5)
        assert closed and msgs and msgs[-1].sqlstate == "53300"
    finally:
        for c in busy:
            c.close()
    # Slots freed: logins work again.
    deadline = time.monotonic() + 5
    while True:
        try:
            timed_login(p)
            break
        except psycopg.OperationalError:
            assert time.monotonic() < deadline
            time.sleep(0.1)


def test_max_client_connections_answers_53300(start_proxy, cluster):
    p = start_proxy(cluster, proxy={"max_client_connections": 3})
    held = [connect(p) for _ in range(3)]
    try:
        with pytest.raises(psycopg.OperationalError) as e:
            connect(p, connect_timeout=5)
        assert TOO_MANY in str(e.value)
    finally:
        for c in held:
            c.close()


def test_failed_login_answered_after_the_delay(start_proxy, cluster):
    delay_ms = 400
    p = start_proxy(cluster, proxy={"auth_failure_delay_ms": delay_ms})
    t0 = time.monotonic()
    with RawConn(p.host, p.port, timeout=10) as c:
        msgs = c.startup("app", "appdb", password="wrong", timeout=10)
    elapsed = time.monotonic() - t0
    assert msgs and msgs[-1].type == "E" and msgs[-1].sqlstate == "28P01"
    assert elapsed >= delay_ms / 1000, elapsed
    assert elapsed < delay_ms / 1000 + 3, elapsed
    # A correct password is not delayed.
    assert timed_login(p) < delay_ms / 1000 + 1


def test_cancel_flood_logs_a_bounded_number_of_lines(start_proxy, cluster):
    p = start_proxy(cluster)
    t0 = time.monotonic()
    for _ in range(2000):
        with socket.create_connection((p.host, p.port), timeout=5) as s:
            s.sendall(cancel_request(random.randrange(1, 1 << 31), random.randrange(1 << 32)))
    elapsed = time.monotonic() - t0
    time.sleep(1.5)  # the periodic log_suppressed line
    text = p.log_text()
    ignored = text.count("cancel_ignored")
    # A burst of 10 and 1 a second, plus the "log_suppressed event=cancel_ignored" lines.
    assert ignored <= 10 + int(elapsed) + 2 + int(elapsed) + 3, (ignored, elapsed)
    assert "log_suppressed" in text
    assert timed_login(p) < 3.0


def test_admin_port_answers_probes_under_a_flood(start_proxy, cluster):
    admin_port = free_port()
    p = start_proxy(cluster, admin={"listen": f"127.0.0.1:{admin_port}"})
    flood = []
    try:
        for _ in range(200):
            s = socket.create_connection(("127.0.0.1", admin_port), timeout=5)
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # never finished
            flood.append(s)
        time.sleep(0.2)
        for _ in range(3):
            t0 = time.monotonic()
            conn = http.client.HTTPConnection("127.0.0.1", admin_port, timeout=2)
            conn.request("GET", "/health")
            r = conn.getresponse()
            r.read()
            conn.close()
            assert r.status == 200
            assert time.monotonic() - t0 < 2.0
    finally:
        for s in flood:
            s.close()


def test_admin_request_sent_a_byte_at_a_time(start_proxy, cluster):
    """Heads split anywhere (between CR and LF too) are still parsed, and a head
    dribbled a byte at a time up to the 8 KiB limit is answered 431 promptly."""
    admin_port = free_port()
    p = start_proxy(cluster, admin={"listen": f"127.0.0.1:{admin_port}"})
    with socket.create_connection(("127.0.0.1", admin_port), timeout=5) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for b in b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n":
            s.sendall(bytes([b]))
        assert s.recv(100).startswith(b"HTTP/1.1 200")
    with socket.create_connection(("127.0.0.1", admin_port), timeout=5) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        t0 = time.monotonic()
        head = b"GET /health HTTP/1.1\r\nX-Pad: " + b"a" * 8200
        try:
            for i in range(0, len(head), 4):
                s.sendall(head[i:i + 4])
        except OSError:
            pass
        assert s.recv(100).startswith(b"HTTP/1.1 431")
        assert time.monotonic() - t0 < 5
