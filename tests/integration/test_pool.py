"""Pools: concurrency, limits, session state isolation, dirty connections, dying backends."""

from __future__ import annotations

import concurrent.futures
import select
import threading
import time

import psycopg
import pytest

import pgwire
from conftest import assert_serves, connect

CLUSTER_KW = {}


def _superuser(cluster, dbname="appdb"):
    return psycopg.connect(cluster.primary.dsn(dbname=dbname), autocommit=True)


def _raw_error(p, sql="select 1", timeout=15.0):
    """Logs in with a raw client and runs sql; returns (first ErrorResponse fields or None,
    all messages). The error may come at login or at the query."""
    with pgwire.RawConn(p.host, p.port, timeout=timeout) as c:
        msgs = c.startup("app", "appdb", "secret")
        err = pgwire.first_error(msgs)
        if err or not msgs or msgs[-1].type != "Z":
            return err, msgs
        res = c.query(sql, timeout=timeout)
        return pgwire.first_error(res), msgs + res


# ---------------------------------------------------------------- concurrency

@pytest.mark.slow
@pytest.mark.timeout(300)
def test_500_clients_over_pool_of_10(cluster, start_proxy):
    n_clients, pool_size = 500, 10
    p = start_proxy(cluster, pool={"mode": "transaction", "size": pool_size,
                                   "acquire_timeout_ms": 60000},
                    proxy={"max_client_connections": 1000})
    barrier = threading.Barrier(n_clients, timeout=120)
    stop_sampling = threading.Event()
    max_backends = [0]

    def sample():
        with _superuser(cluster) as su:
            while not stop_sampling.is_set():
                n = su.execute("select count(*) from pg_stat_activity where usename = 'app' "
                               "and datname = 'appdb' and backend_type = 'client backend'"
                               ).fetchone()[0]
                max_backends[0] = max(max_backends[0], n)
                time.sleep(0.05)

    def client(i: int) -> int:
        with psycopg.connect(p.dsn(sslmode="disable", connect_timeout=60),
                             autocommit=True) as conn:
            barrier.wait()  # all 500 connected at once
            total = 0
            for j in range(3):
                total += conn.execute("select %s::int + %s::int", (i, j)).fetchone()[0]
            with conn.transaction():
                total += conn.execute("select %s::int", (i,)).fetchone()[0]
            return total

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.monotonic()
    errors, ok = [], 0
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=n_clients) as ex:
            futs = {ex.submit(client, i): i for i in range(n_clients)}
            for f in concurrent.futures.as_completed(futs, timeout=240):
                i = futs[f]
                try:
                    assert f.result() == 4 * i + 3
                    ok += 1
                except Exception as e:  # noqa: BLE001
                    errors.append((i, repr(e)))
    finally:
        stop_sampling.set()
        sampler.join(10)
    elapsed = time.monotonic() - t0
    assert not errors, f"{len(errors)} of {n_clients} clients failed, e.g. {errors[:5]}"
    assert ok == n_clients
    assert elapsed < 180, elapsed
    # One more connection may belong to the health checker.
    assert 1 <= max_backends[0] <= pool_size + 1, max_backends[0]


def test_acquire_timeout_gives_53300(cluster, start_proxy):
    p = start_proxy(cluster, pool={"mode": "transaction", "size": 1,
                                   "acquire_timeout_ms": 300})
    holder = connect(p, autocommit=False)
    try:
        holder.execute("select 1")  # transaction open: the only server connection is bound
        t0 = time.monotonic()
        err, msgs = _raw_error(p)
        elapsed = time.monotonic() - t0
        assert err is not None, f"expected 53300, got {msgs}"
        assert err["C"] == "53300", err
        assert 0.25 <= elapsed < 5, elapsed
    finally:
        holder.rollback()
        holder.close()
    # Released: the next client gets the connection.
    assert_serves(p)


def test_max_client_connections_gives_53300(cluster, start_proxy):
    p = start_proxy(cluster, proxy={"max_client_connections": 3})
    held = [connect(p) for _ in range(3)]
    try:
        for c in held:
            assert c.execute("select 1").fetchone()[0] == 1
        with pgwire.RawConn(p.host, p.port) as c:
            c.send(pgwire.startup_message({"user": "app", "database": "appdb"}))
            msgs, closed = c.messages_until_closed(timeout=5)
        err = pgwire.first_error(msgs)
        assert err is not None and err["C"] == "53300", msgs
        assert closed
        with pytest.raises(psycopg.OperationalError):
            connect(p)
    finally:
        held.pop().close()
    # A slot is free again (allow the proxy a moment to notice the close).
    deadline = time.monotonic() + 5
    while True:
        try:
            assert_serves(p)
            break
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    for c in held:
        c.close()


# ---------------------------------------------------------------- session state

def _show(conn, name):
    return conn.execute(f"select current_setting('{name}')").fetchone()[0]


def test_transaction_pool_parameter_isolation(cluster, start_proxy):
    """Pool of 1: A and B share one server connection, but never each other's settings."""
    p = start_proxy(cluster, pool={"mode": "transaction", "size": 1})
    a, b = connect(p), connect(p)
    try:
        assert a.execute("select pg_backend_pid()").fetchone()[0] == \
            b.execute("select pg_backend_pid()").fetchone()[0], "pool of 1 should share"
        a.execute("SET TimeZone = 'Asia/Tokyo'")
        a.execute("SET application_name = 'client_a'")
        a.execute("SET DateStyle = 'German, DMY'")
        assert _show(b, "TimeZone") == "UTC"
        assert _show(b, "application_name") != "client_a"
        assert _show(b, "DateStyle") == "ISO, MDY"
        for _ in range(3):  # A keeps its values across transactions, interleaved with B
            assert _show(a, "TimeZone") == "Asia/Tokyo"
            assert _show(a, "application_name") == "client_a"
            assert _show(a, "DateStyle") == "German, DMY"
            assert _show(b, "TimeZone") == "UTC"
        with a.transaction():
            assert _show(a, "TimeZone") == "Asia/Tokyo"
        # SET inside a rolled-back transaction does not stick; inside a committed one it does.
        a.autocommit = False
        a.execute("SET TimeZone = 'Europe/Paris'")
        a.rollback()
        a.execute("SET LOCAL TimeZone = 'America/Chicago'")
        a.commit()
        a.autocommit = True
        assert _show(a, "TimeZone") == "Asia/Tokyo"
        assert _show(b, "TimeZone") == "UTC"
        a.autocommit = False
        a.execute("SET TimeZone = 'Europe/Paris'")
        a.commit()
        a.autocommit = True
        assert _show(b, "TimeZone") == "UTC"
        assert _show(a, "TimeZone") == "Europe/Paris"
        # RESET goes back to the default for A only.
        b.execute("SET TimeZone = 'Australia/Sydney'")
        a.execute("RESET TimeZone")
        assert _show(a, "TimeZone") == "UTC"
        assert _show(b, "TimeZone") == "Australia/Sydney"
        assert a.info.parameter_status("TimeZone") == "UTC"
        assert b.info.parameter_status("TimeZone") == "Australia/Sydney"
    finally:
        a.close()
        b.close()


def test_startup_parameters_replayed(cluster, start_proxy):
    p = start_proxy(cluster, pool={"mode": "transaction", "size": 1})
    c = connect(p, application_name="client_c", options="-c TimeZone=America/New_York")
    d = connect(p)
    try:
        for _ in range(2):
            assert _show(c, "application_name") == "client_c"
            assert _show(c, "TimeZone") == "America/New_York"
            assert _show(d, "application_name") != "client_c"
            assert _show(d, "TimeZone") == "UTC"
        assert c.info.parameter_status("application_name") == "client_c"
    finally:
        c.close()
        d.close()


def test_session_mode_discard_all_on_release(cluster, start_proxy):
    p = start_proxy(cluster, pool={"mode": "session", "size": 1})
    with connect(p) as a:
        pid_a = a.execute("select pg_backend_pid()").fetchone()[0]
        a.execute("create temp table leak_tt (x int)")
        a.execute("SET TimeZone = 'Asia/Tokyo'")
        a.execute("SET application_name = 'leaky'")
        a.execute("PREPARE leak_stmt AS select 1")
        a.execute("select pg_advisory_lock(4242)")
        a.execute("LISTEN leak_channel")
    with connect(p) as b:
        pid_b = b.execute("select pg_backend_pid()").fetchone()[0]
        assert pid_b == pid_a, "session pool of 1 should reuse the server connection"
        assert b.execute("select to_regclass('pg_temp.leak_tt')").fetchone()[0] is None
        assert _show(b, "TimeZone") == "UTC"
        assert _show(b, "application_name") != "leaky"
        assert b.execute("select count(*) from pg_prepared_statements").fetchone()[0] == 0
        assert b.execute("select count(*) from pg_locks where locktype = 'advisory' "
                         "and pid = pg_backend_pid()").fetchone()[0] == 0
        assert b.execute("select count(*) from pg_listening_channels()").fetchone()[0] == 0


def test_session_mode_keeps_session(cluster, start_proxy):
    p = start_proxy(cluster, pool={"mode": "session", "size": 2})
    with connect(p) as a:
        a.execute("create temp table sess_tt (x int)")
        a.execute("insert into sess_tt values (1)")
        a.execute("PREPARE sess_stmt AS select count(*) from sess_tt")
        for _ in range(3):
            assert a.execute("EXECUTE sess_stmt").fetchone()[0] == 1


def test_listen_notify_session_mode(cluster, start_proxy):
    p = start_proxy(cluster, pool={"mode": "session", "size": 4})
    listener, notifier = connect(p), connect(p)
    try:
        listener.execute("LISTEN chan_x")
        notifier.execute("NOTIFY chan_x, 'hello there'")
        notifier.execute("select pg_notify('chan_x', 'second')")
        got = []
        deadline = time.monotonic() + 5
        while len(got) < 2 and time.monotonic() < deadline:
            # Asynchronous delivery: the listener is idle, the proxy must push it through.
            r, _, _ = select.select([listener.fileno()], [], [], deadline - time.monotonic())
            if not r:
                break
            listener.pgconn.consume_input()
            while (n := listener.pgconn.notifies()) is not None:
                got.append((n.relname.decode(), n.extra.decode()))
        assert got == [("chan_x", "hello there"), ("chan_x", "second")], got
        # Also delivered along with a query result.
        seen = []
        listener.add_notify_handler(lambda n: seen.append(n.payload))
        notifier.execute("NOTIFY chan_x, 'third'")
        time.sleep(0.2)
        listener.execute("select 1")
        assert seen == ["third"], seen
    finally:
        listener.close()
        notifier.close()


# ---------------------------------------------------------------- dirty connections

@pytest.mark.parametrize("mode", ["transaction", "session"])
def test_client_disconnect_mid_transaction_releases_lock(cluster, start_proxy, mode):
    p = start_proxy(cluster, pool={"mode": mode, "size": 1})
    with _superuser(cluster) as su:
        su.execute("drop table if exists locktest")
        su.execute("create table locktest (id int primary key, v int)")
        su.execute("insert into locktest values (1, 0)")
        su.execute("grant all on locktest to app")
    c = pgwire.RawConn(p.host, p.port)
    msgs = c.startup("app", "appdb", "secret")
    assert msgs[-1].type == "Z", msgs
    res = c.query("BEGIN; SELECT v FROM locktest WHERE id = 1 FOR UPDATE; "
                  "INSERT INTO locktest VALUES (2, 0);")
    assert res[-1].type == "Z" and res[-1].body == b"T", res
    c.close()  # vanish without Terminate, transaction open
    # The row lock is released soon (rollback or close of the server connection).
    deadline = time.monotonic() + 5
    with _superuser(cluster) as su:
        while True:
            try:
                with su.transaction():
                    su.execute("SET LOCAL lock_timeout = '200ms'")
                    su.execute("select v from locktest where id = 1 for update")
                break
            except psycopg.errors.LockNotAvailable:
                if time.monotonic() > deadline:
                    raise AssertionError("lock of a disconnected client still held after 5s")
        assert su.execute("select count(*) from locktest where id = 2").fetchone()[0] == 0
    # The pool (size 1) is usable and its connection clean.
    with connect(p) as b:
        assert b.execute("select count(*) from locktest").fetchone()[0] == 1
        assert b.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        b.execute("begin")
        b.execute("select v from locktest where id = 1 for update")
        b.execute("commit")
    with _superuser(cluster) as su:
        n = su.execute("select count(*) from pg_stat_activity where datname = 'appdb' "
                       "and state like 'idle in transaction%'").fetchone()[0]
        assert n == 0


@pytest.mark.slow
def test_backend_killed_mid_query(cluster, start_proxy):
    """pg_terminate_backend of the victim's server connection: the victim gets an
    ErrorResponse (08xxx or the backend's 57P01), a concurrent client is unaffected."""
    p = start_proxy(cluster, pool={"mode": "transaction", "size": 4})
    victim = pgwire.RawConn(p.host, p.port, timeout=20)
    assert victim.startup("app", "appdb", "secret")[-1].type == "Z"
    bystander = connect(p)
    stop = threading.Event()
    bystander_errors, bystander_ok = [], [0]

    def run_bystander():
        while not stop.is_set():
            try:
                assert bystander.execute("select pg_sleep(0.05), 7").fetchone()[1] == 7
                bystander_ok[0] += 1
            except Exception as e:  # noqa: BLE001
                bystander_errors.append(repr(e))
                return

    tb = threading.Thread(target=run_bystander)
    tb.start()
    try:
        victim.send(pgwire.query_message("select pg_sleep(20) /* victim */"))
        pids = []
        deadline = time.monotonic() + 5
        while not pids and time.monotonic() < deadline:
            pids = cluster.primary.backend_pids(query_like="%pg_sleep(20) /* victim */%")
            time.sleep(0.05)
        assert len(pids) == 1, pids
        time.sleep(0.3)
        t0 = time.monotonic()
        assert cluster.primary.terminate_backend(pids[0])
        msgs = []
        while time.monotonic() - t0 < 10:
            try:
                m = victim.read_message(timeout=max(0.05, 10 - (time.monotonic() - t0)))
            except (TimeoutError, pgwire.WireError):
                break
            if m is None:
                break
            msgs.append(m)
            if m.type in ("E", "Z"):
                break
        elapsed = time.monotonic() - t0
        time.sleep(0.5)
    finally:
        stop.set()
        tb.join(10)
        victim.close()
    err = pgwire.first_error(msgs)
    assert err is not None, f"victim got no ErrorResponse: {msgs}"
    state = err.get("C", "")
    assert state.startswith("08") or state in ("57P01", "57P02", "57P03"), err
    assert elapsed < 5, elapsed
    assert not bystander_errors, bystander_errors
    assert bystander_ok[0] > 5
    assert bystander.execute("select 'still fine'").fetchone()[0] == "still fine"
    bystander.close()
    # The pool replaced the dead connection.
    for _ in range(5):
        assert_serves(p)


def test_login_timeout(cluster, start_proxy):
    p = start_proxy(cluster, proxy={"client_login_timeout_ms": 500})
    # Nothing at all.
    with pgwire.RawConn(p.host, p.port) as c:
        t0 = time.monotonic()
        _, closed = c.read_until_closed(timeout=5)
        elapsed = time.monotonic() - t0
    assert closed, "silent client not closed within 5s"
    assert 0.3 <= elapsed < 3, elapsed
    # Half a startup packet.
    with pgwire.RawConn(p.host, p.port) as c:
        c.send(pgwire.startup_message({"user": "app", "database": "appdb"})[:10])
        t0 = time.monotonic()
        _, closed = c.read_until_closed(timeout=5)
    assert closed and time.monotonic() - t0 < 3
    # Stalled in the middle of SCRAM.
    with pgwire.RawConn(p.host, p.port) as c:
        c.send(pgwire.startup_message({"user": "app", "database": "appdb"}))
        m = c.read_message()
        assert m is not None and m.type == "R", m
        _, closed = c.read_until_closed(timeout=5)
    assert closed
    # A logged-in idle client is not subject to the login timeout.
    with pgwire.RawConn(p.host, p.port) as c:
        assert c.startup("app", "appdb", "secret")[-1].type == "Z"
        time.sleep(1.5)
        assert pgwire.data_rows(c.query("select 'alive'")) == [["alive"]]
