"""Transparent retry of autocommit reads (issue 3, item 7) and unit boundaries
behind a bound server: a read that fails on a replica before any of its result
reached the client is sent again, once to another replica, then to the primary;
writes and reads inside a transaction never are. With routing.read_deadline_ms
(issue 16), so is a read that ran that long on a replica: cancelled there, answered
elsewhere."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

import pgwire
from test_routing import _wait_topology, connect

CLUSTER_KW = {"replicas": 2}

SLEEPY_READ = "select pg_sleep(1.0), inet_server_port(), pg_is_in_recovery() /* {tag} */"


@pytest.fixture
def start_proxy(start_proxy, cluster):  # noqa: F811: wraps conftest's factory
    def start(*args, **kw):
        kw.setdefault("health", {"interval_ms": 200, "recover_hold_s": 1})
        p = start_proxy(*args, **kw)
        _wait_topology(p, cluster)
        return p
    return start


def _kill_when_running(nodes, like, deadline_s=5.0):
    """Terminates the backend (on whichever node runs it) whose query matches `like`;
    returns the node, or None if none showed up in time."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        for n in nodes:
            pids = n.backend_pids(query_like=like)
            if pids:
                time.sleep(0.2)
                assert n.terminate_backend(pids[0])
                return n
        time.sleep(0.02)
    return None


def _in_thread(fn):
    out = {}

    def run():
        try:
            out["result"] = fn()
        except Exception as e:  # noqa: BLE001
            out["error"] = e
    t = threading.Thread(target=run)
    t.start()
    return t, out


@pytest.mark.parametrize("protocol", ["simple", "extended"])
def test_terminated_read_is_retried_elsewhere(cluster, start_proxy, protocol):
    p = start_proxy(cluster)
    replicas = {r.port: r for r in cluster.replicas}
    tag = f"retry-{protocol}"
    with connect(p) as c:
        def read():
            if protocol == "simple":
                return c.execute(SLEEPY_READ.format(tag=tag)).fetchone()
            return c.execute(SLEEPY_READ.format(tag=tag) + " -- %s", [1]).fetchone()
        t, out = _in_thread(read)
        killed = _kill_when_running(cluster.replicas, f"%{tag}%")
        t.join(20)
        assert killed is not None, "the read never started on a replica"
        assert "error" not in out, f"the read was not retried: {out.get('error')!r}"
        _, port, in_recovery = out["result"]
        assert port != killed.port, "retried on the node that failed"
        assert port in replicas and in_recovery, "a second replica serves the retry"
        # The session goes on normally.
        assert c.execute("select 1").fetchone()[0] == 1


def test_write_is_never_retried(cluster, start_proxy):
    p = start_proxy(cluster)
    with connect(p) as c:
        c.execute("create table if not exists retry_w(x int)")
        c.execute("truncate retry_w")
        t, out = _in_thread(lambda: c.execute(
            "insert into retry_w select 1 from pg_sleep(1.0) /* retry-write */"))
        killed = _kill_when_running([cluster.primary], "%retry-write%")
        t.join(20)
        assert killed is not None
        assert "error" in out, "a write whose connection died must fail, not be re-sent"
        assert isinstance(out["error"], psycopg.OperationalError)
    with connect(p) as c:
        assert c.execute("select count(*) from retry_w").fetchone()[0] == 0


def test_read_in_transaction_is_never_retried(cluster, start_proxy):
    p = start_proxy(cluster)
    with connect(p) as c:
        c.execute("begin read only")
        t, out = _in_thread(lambda: c.execute(SLEEPY_READ.format(tag="retry-txn")).fetchone())
        killed = _kill_when_running(cluster.replicas, "%retry-txn%")
        t.join(20)
        assert killed is not None
        assert "error" in out, "a read inside a transaction is never retried"


def test_read_after_partial_result_is_not_retried(cluster, start_proxy):
    """Rows already reached the client: the failure is reported, not hidden."""
    p = start_proxy(cluster)
    conn = pgwire.RawConn(p.host, p.port, timeout=20)
    assert conn.startup("app", "appdb", "secret")[-1].type == "Z"
    # The first rows are flushed at once; the backend dies while it sleeps.
    conn.send(pgwire.query_message(
        "select g, case when g = 2000 then pg_sleep(5) end from generate_series(1, 4000) g "
        "/* retry-partial */"))
    killed = _kill_when_running(cluster.replicas, "%retry-partial%")
    assert killed is not None
    types = []
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            m = conn.read_message(timeout=10)
        except (TimeoutError, pgwire.WireError):
            break
        if m is None:
            break
        types.append(m.type)
        if m.type in ("E", "Z"):
            break
    assert "D" in types, types
    assert types[-1] == "E", "the failure after rows is reported"
    conn.close()


def test_stopped_replica_costs_no_failed_read(cluster, start_proxy):
    """A replica shut down while reads run: every read still succeeds (retried on
    the other replica or the primary), and the node is taken out of service."""
    p = start_proxy(cluster, pool={"mode": "transaction", "size": 4})
    victim = cluster.replicas[0]
    errors, done = [], [0]
    stop = threading.Event()

    def reader():
        with connect(p) as c:
            while not stop.is_set():
                try:
                    c.execute("select count(*) from pg_class").fetchone()
                    done[0] += 1
                except Exception as e:  # noqa: BLE001
                    errors.append(repr(e))
                    return

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)
        victim.stop(mode="fast")
        time.sleep(1.5)
    finally:
        stop.set()
        for t in threads:
            t.join(20)
        victim.start()
    assert not errors, errors[:3]
    assert done[0] > 20
    # Reads come back to the restarted replica after the hold-down.
    _wait_topology(p, cluster, timeout=30)


def test_pipelined_write_behind_replica_read_goes_to_primary(cluster, start_proxy):
    """A write pipelined behind an autocommit read is routed on its own (it must
    not follow the read to the replica and fail there with 25006)."""
    p = start_proxy(cluster)
    with connect(p) as c:
        c.execute("create table if not exists retry_pipe(x int)")
    conn = pgwire.RawConn(p.host, p.port, timeout=20)
    assert conn.startup("app", "appdb", "secret")[-1].type == "Z"
    conn.send(pgwire.query_message("select pg_sleep(0.3), pg_is_in_recovery()")
              + pgwire.query_message("insert into retry_pipe values (1)")
              + pgwire.query_message("select pg_is_in_recovery()"))
    msgs = []
    deadline = time.monotonic() + 15
    while sum(1 for m in msgs if m.type == "Z") < 3 and time.monotonic() < deadline:
        m = conn.read_message(timeout=10)
        assert m is not None
        msgs.append(m)
    errors = [m for m in msgs if m.type == "E"]
    assert not errors, [bytes(m.body) for m in errors]
    assert sum(1 for m in msgs if m.type == "C") == 3
    conn.close()


# Per-read deadline (routing.read_deadline_ms). The read sleeps only where
# pg_is_in_recovery() (every replica), so the primary answers it at once: how
# long the client waits shows how many attempts it took.
SLOW_ON_REPLICAS = ("select case when pg_is_in_recovery() then pg_sleep({s}) end, "
                    "inet_server_port(), pg_is_in_recovery() /* {tag} */")
DEADLINE_MS = 300
REPLICA_SLEEP_S = 4.0


def _deadline_retries(p):
    return [line for line in p.log_text().splitlines()
            if "event=read_retry" in line and 'reason="read deadline"' in line]


def test_read_past_deadline_is_cancelled_and_answered_by_the_primary(cluster, start_proxy):
    p = start_proxy(cluster, routing={"read_deadline_ms": DEADLINE_MS})
    tag = "deadline-on"
    with connect(p) as c:
        t0 = time.monotonic()
        _, port, in_recovery = c.execute(
            SLOW_ON_REPLICAS.format(s=REPLICA_SLEEP_S, tag=tag)).fetchone()
        took = time.monotonic() - t0
        # The replicas' backends were cancelled, not left sleeping behind a
        # closed socket: they are gone long before their sleep would end.
        gone_at = None
        while time.monotonic() - t0 < REPLICA_SLEEP_S - 0.5:
            if not any(r.backend_pids(query_like=f"%{tag}%") for r in cluster.replicas):
                gone_at = time.monotonic() - t0
                break
            time.sleep(0.05)
        print(f"\nread_deadline_ms={DEADLINE_MS}: answered in {took:.3f} s "
              f"(replica sleep {REPLICA_SLEEP_S} s); replica backends gone at "
              f"{gone_at if gone_at is None else round(gone_at, 3)} s")
        assert port == cluster.primary.port and not in_recovery, "the primary answers"
        # Two deadlines (the first replica, the second), then the primary at once.
        assert took < 3.0, took
        assert took >= 2 * DEADLINE_MS / 1000 - 0.05, took
        assert gone_at is not None, "a replica still runs the abandoned read"
        # The session goes on, on the replicas.
        assert c.execute("select pg_is_in_recovery()").fetchone()[0] is True
    retries = _deadline_retries(p)
    assert len(retries) == 2, retries
    assert "attempt=2" in retries[0] and "attempt=3" in retries[1], retries


def test_read_deadline_off_lets_a_slow_replica_read_finish(cluster, start_proxy):
    p = start_proxy(cluster)  # read_deadline_ms = 0, the default
    sleep_s = 1.5
    with connect(p) as c:
        t0 = time.monotonic()
        _, port, in_recovery = c.execute(
            SLOW_ON_REPLICAS.format(s=sleep_s, tag="deadline-off")).fetchone()
        took = time.monotonic() - t0
    print(f"\nread_deadline_ms=0: answered in {took:.3f} s (replica sleep {sleep_s} s)")
    assert in_recovery and port in {r.port for r in cluster.replicas}
    assert took >= sleep_s
    assert "event=read_retry" not in p.log_text()


def test_write_is_never_cut_short_by_the_read_deadline(cluster, start_proxy):
    p = start_proxy(cluster, routing={"read_deadline_ms": DEADLINE_MS})
    with connect(p) as c:
        c.execute("create table if not exists deadline_w(x int)")
        c.execute("truncate deadline_w")
        t0 = time.monotonic()
        c.execute("insert into deadline_w select 1 from pg_sleep(1.0) /* deadline-write */")
        took = time.monotonic() - t0
        assert took >= 1.0
        assert c.execute("select count(*) from deadline_w").fetchone()[0] == 1
    assert "event=read_retry" not in p.log_text()
