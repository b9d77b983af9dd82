"""Issue 16, classes 3, 4 and 9: memory and loop time under hostile volume.

A client that pipelines proxy-answered statements and never reads must not grow
pgregion's memory; huge statements and long pipelined batches must not stall the
other clients nor leave their memory in the process; server statement names
must not be shared by different texts. Every test asserts its bound and prints
what it measured (run with -s to see the figures).
"""

from __future__ import annotations

import socket
import struct
import threading
import time

import pytest

from conftest import assert_serves, connect
from pgwire import RawConn, query_message, tagged

# A small pool: the tests need only a few server connections.
PROXY_KW = {"proxy": {"max_message_bytes": 16 << 20}, "pool": {"size": 4}}

MiB = 1 << 20


def rss(p) -> int:
    """pgregion's resident set size in bytes."""
    with open(f"/proc/{p.proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def sanitized(p) -> bool:
    """An ASan build: its quarantine keeps freed memory, so RSS bounds do not apply."""
    with open(f"/proc/{p.proc.pid}/maps") as f:
        return any("libasan" in line for line in f)


def assert_rss_bound(p, grown: int, bound: int, what: str) -> None:
    if not sanitized(p):
        assert grown < bound, f"{what}: RSS grew by {grown / MiB:.0f} MiB (bound {bound / MiB:.0f})"


def settled_rss(p, below: int, timeout: float = 10.0) -> int:
    """RSS once it is below `below` (memory is given back asynchronously: the
    last writes drain, connections close), or its last value at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        r = rss(p)
        if r < below or time.monotonic() > deadline:
            return r
        time.sleep(0.1)


def logged_in(p) -> RawConn:
    c = RawConn(p.host, p.port, timeout=30)
    msgs = c.startup("app", "appdb", "secret")
    assert msgs and msgs[-1].type == "Z", msgs
    return c


class LatencyProbe:
    """Another client running a simple read in a loop: the longest it waited."""

    def __init__(self, p):
        self.conn = connect(p)
        self.conn.execute("select 1")
        self.stop = threading.Event()
        self.worst = 0.0
        self.count = 0
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        try:
            while not self.stop.is_set():
                t0 = time.monotonic()
                assert self.conn.execute("select 1").fetchone()[0] == 1
                self.worst = max(self.worst, time.monotonic() - t0)
                self.count += 1
                time.sleep(0.02)
        except BaseException as e:  # noqa: BLE001
            self.error = e

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(30)
        self.conn.close()
        assert self.error is None, self.error


def warm_up(p):
    for _ in range(3):
        assert_serves(p)


# ---------------------------------------------------------------- class 3

def test_unread_proxy_replies_stay_bounded(proxy):
    """32 MiB of pipelined SHOW pgregion.route from a client that does not read:
    the proxy stops reading it instead of queueing the replies (the baseline grew
    by 386 MB for 128 MiB), then answers everything once the client reads."""
    warm_up(proxy)
    before = rss(proxy)
    c = logged_in(proxy)
    one = query_message("SHOW pgregion.route")
    reply = c.query("SHOW pgregion.route")
    assert reply[-1].type == "Z" and not any(m.type == "E" for m in reply), reply
    reply_size = sum(5 + len(m.body) for m in reply)
    n = (32 * MiB) // len(one)
    chunk = one * 4096
    sent = [0]

    def sender():
        try:
            c.sock.settimeout(60)
            left = n
            while left > 0:
                k = min(left, 4096)
                c.sock.sendall(chunk if k == 4096 else one * k)
                left -= k
                sent[0] += k
        except OSError:
            pass

    t = threading.Thread(target=sender, daemon=True)
    t.start()
    # Wait until the sender is stuck (the proxy stopped reading) or done.
    last, still_since, peak = -1, time.monotonic(), 0
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline and t.is_alive():
        peak = max(peak, rss(proxy))
        if sent[0] != last:
            last, still_since = sent[0], time.monotonic()
        elif time.monotonic() - still_since > 1.5:
            break
        time.sleep(0.05)
    peak = max(peak, rss(proxy))
    stuck = t.is_alive()
    print(f"\nunread replies: sent {sent[0]}/{n} queries, stuck={stuck}, "
          f"rss before {before / MiB:.1f} MiB, peak {peak / MiB:.1f} MiB")
    assert stuck, "the proxy read all 32 MiB without the client reading its replies"
    assert_rss_bound(proxy, peak - before, 48 * MiB, "unread replies, peak")
    # The client reads now: every query is answered, in order, and the proxy
    # is back near its idle size.
    want = n * reply_size
    got = len(c.buf)
    c.buf = b""
    c.sock.settimeout(60)
    t_end = time.monotonic() + 90
    tail = b""
    while got < want and time.monotonic() < t_end:
        data = c.sock.recv(1 << 20)
        assert data, f"closed after {got}/{want} bytes"
        got += len(data)
        tail = (tail + data)[-64:]
    t.join(10)
    assert got == want, (got, want)
    assert tail.endswith(b"Z\x00\x00\x00\x05I"), tail
    c.send(tagged("X"))
    c.close()
    after = settled_rss(proxy, before + 16 * MiB)
    print(f"unread replies: rss after {after / MiB:.1f} MiB")
    assert_rss_bound(proxy, after - before, 16 * MiB, "unread replies, after")


def test_client_closing_with_unread_replies_is_closed(proxy):
    """A client stuck on its unread replies that goes away frees its session."""
    warm_up(proxy)
    before = rss(proxy)
    c = logged_in(proxy)
    c.sock.settimeout(3)
    one = query_message("SHOW pgregion.route") * 4096
    try:
        for _ in range(2000):  # at most ~200 MiB; stops when the proxy stops reading
            c.sock.sendall(one)
    except (socket.timeout, TimeoutError):
        pass
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()
    assert_serves(proxy)
    after = settled_rss(proxy, before + 16 * MiB)
    print(f"\nclosed stuck client: rss before {before / MiB:.1f}, after {after / MiB:.1f} MiB")
    assert_rss_bound(proxy, after - before, 16 * MiB, "closed stuck client")


# ---------------------------------------------------------------- class 4

def run_big_statement(proxy, sql: str, expect_rows_tag: bytes) -> tuple[float, float, int, int]:
    warm_up(proxy)
    before = rss(proxy)
    c = logged_in(proxy)
    with LatencyProbe(proxy) as probe:
        t0 = time.monotonic()
        c.send(query_message(sql))
        msgs = c.read_until_ready(timeout=120)
        took = time.monotonic() - t0
    assert msgs and msgs[-1].type == "Z", msgs[-3:]
    errors = [m for m in msgs if m.type == "E"]
    assert not errors, errors[0].error_fields()
    assert any(m.type == "C" and m.body.startswith(expect_rows_tag) for m in msgs)
    c.send(tagged("X"))
    c.close()
    after = settled_rss(proxy, before + 32 * MiB)
    return took, probe.worst, before, after


def test_huge_multi_statement_query(proxy):
    """A 9 MB Query of `SELECT 1;` x 1M: PostgreSQL answers it, the other
    clients keep being served, and the memory it took is given back
    (baseline: 27.7 s, others stalled 16.9 s, RSS 114 -> 838 MB for good)."""
    n = 1_000_000
    took, worst, before, after = run_big_statement(proxy, "SELECT 1;" * n, b"SELECT 1")
    print(f"\n9 MB query: {took:.1f} s, others waited at most {worst:.2f} s, "
          f"rss {before / MiB:.1f} -> {after / MiB:.1f} MiB")
    assert worst < 2.0, f"another client waited {worst:.1f} s"
    assert_rss_bound(proxy, after - before, 32 * MiB, "huge statement, after")


def test_huge_in_list(proxy):
    """A 1M-element IN list (~7 MB): answered, without stalling the others
    (baseline: 3.5 s) and without keeping the memory."""
    items = ",".join(str(i) for i in range(1_000_000))
    sql = f"SELECT count(*) FROM (SELECT 1) s(x) WHERE x IN ({items})"
    took, worst, before, after = run_big_statement(proxy, sql, b"SELECT 1")
    print(f"\nIN list: {took:.1f} s, others waited at most {worst:.2f} s, "
          f"rss {before / MiB:.1f} -> {after / MiB:.1f} MiB")
    assert worst < 2.0, f"another client waited {worst:.1f} s"
    assert_rss_bound(proxy, after - before, 32 * MiB, "huge IN list, after")


def test_many_pipelined_small_messages(proxy):
    """200k pipelined messages (proxy-answered SHOWs), read as they come: the
    other clients keep being served and the memory stays bounded."""
    warm_up(proxy)
    before = rss(proxy)
    c = logged_in(proxy)
    reply = c.query("SHOW pgregion.route")
    reply_size = sum(5 + len(m.body) for m in reply)
    n = 200_000
    one = query_message("SHOW pgregion.route")
    want = n * reply_size
    got = [0]
    peak = [before]

    def reader():
        c.sock.settimeout(60)
        while got[0] < want:
            data = c.sock.recv(1 << 20)
            if not data:
                return
            got[0] += len(data)

    r = threading.Thread(target=reader, daemon=True)
    with LatencyProbe(proxy) as probe:
        r.start()
        t0 = time.monotonic()
        for _ in range(n // 1000):
            c.sock.sendall(one * 1000)
            peak[0] = max(peak[0], rss(proxy))
        r.join(90)
        took = time.monotonic() - t0
    assert got[0] == want, (got[0], want)
    c.send(tagged("X"))
    c.close()
    print(f"\n200k pipelined: {took:.1f} s, others waited at most {probe.worst:.2f} s, "
          f"rss {before / MiB:.1f}, peak {peak[0] / MiB:.1f} MiB")
    assert probe.worst < 2.0
    assert_rss_bound(proxy, peak[0] - before, 48 * MiB, "pipelined messages, peak")


# ---------------------------------------------------------------- class 9

def _parse(name: str, sql: str) -> bytes:
    return tagged("P", name.encode() + b"\0" + sql.encode() + b"\0" + struct.pack("!h", 0))


def _bind_execute(stmt: str) -> bytes:
    bind = b"\0" + stmt.encode() + b"\0" + struct.pack("!hhh", 0, 0, 0)
    return tagged("B", bind) + tagged("E", b"\0" + struct.pack("!i", 0))


def test_server_statement_names_are_distinct_per_text(proxy):
    """Named statements live on the server under names derived from their text:
    equal texts share one, different texts never do, and the names fit
    PostgreSQL's 63 significant bytes."""
    c = logged_in(proxy)
    texts = {"a": "SELECT 1", "b": "SELECT 2", "c": "SELECT 1", "d": "SELECT 1::int8"}
    batch = b"".join(_parse(k, v) for k, v in texts.items())
    batch += b"".join(_bind_execute(k) for k in texts)
    batch += _parse("", "SELECT name, statement FROM pg_prepared_statements "
                        "WHERE statement IN ('SELECT 1', 'SELECT 2', 'SELECT 1::int8')")
    batch += _bind_execute("") + tagged("S")
    c.send(batch)
    msgs = c.read_until_ready(timeout=20)
    assert not any(m.type == "E" for m in msgs), [m.error_fields() for m in msgs if m.type == "E"]
    rows = {}
    for m in msgs:
        if m.type != "D":
            continue
        (ncols,) = struct.unpack("!h", m.body[:2])
        vals, off = [], 2
        for _ in range(ncols):
            (ln,) = struct.unpack("!i", m.body[off:off + 4])
            vals.append(m.body[off + 4:off + 4 + ln].decode())
            off += 4 + ln
        if len(vals) == 2:
            rows[vals[1]] = vals[0]
    print(f"\nserver statement names: {rows}")
    assert set(rows) == {"SELECT 1", "SELECT 2", "SELECT 1::int8"}, rows
    assert len(set(rows.values())) == 3
    for name in rows.values():
        assert name.startswith("pgr_") and len(name.encode()) <= 63, name
    c.send(tagged("X"))
    c.close()
