"""ORM driver suites and optimistic read transactions (issue 18), from an application
developer's side, on a primary + 2 streaming replicas with pgregion's defaults
(transaction pooling, causal consistency, optimistic transactions on).

- SQLAlchemy 1.4 in its default transactional mode (tests/drivers/python/sqlalchemy_app.py)
  and Django 3.2 with ATOMIC_REQUESTS (tests/drivers/python/django_app, its run_requests
  command): every result is checked against the program's model (0 wrong results), and
  >= 90% of the read-only transactions end on a replica (pg_is_in_recovery() as the last
  statement of each transaction).
- Django's `manage.py test` through pgregion twice in a row: creates test_appdb, reads in
  it at once, drops it after use.
- The optimistic cases one by one with psycopg 3: a read-only transaction on a replica;
  a write after reads whose replay on the primary returns the same (goes on) or different
  results (40001, nothing written); SERIALIZABLE; pgregion.optimistic=off in each of its
  forms; a cursor, savepoints, SELECT ... FOR UPDATE and COPY inside a transaction, each
  returning exactly what it returns directly; the metrics of each.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from cluster import free_port
from conftest import connect
from pgregion import Pgregion
from wanlink import WanLink, default_binary as wanlink_binary
from test_observability import http_get, metric_values
from test_routing import _wait_topology

# Commits are synchronous, as in production (the harness default is off, which holds
# a commit's WAL back from the replicas for up to wal_writer_delay: every causal read
# after a session's write would then find no replica caught up).
CLUSTER_KW = {"replicas": 2, "extra_conf": {"synchronous_commit": "on"}}
ADMIN_PORT = free_port()
# pgregion's defaults, with an admin endpoint for /metrics and quick health probes.
# (The harness declares pg_is_in_recovery() read-only, so that it runs where the
# transaction is and shows where that is.)
PROXY_KW = {"admin": {"listen": f"127.0.0.1:{ADMIN_PORT}"}, "health": {"interval_ms": 200}}
# Two regions: pgregion and both replicas in eu-west, the primary in us-east behind a
# WAN-link relay. A causal read right after the session's write then waits for a
# replica's replay (at most min(ryw_wait_ms, the detour to the primary)) instead of
# going to the primary, as it would in production; on plain loopback the detour costs
# nothing and every read after a write would go to the primary.
PRIMARY_DELAY_MS = 10

DRIVERS = Path(__file__).resolve().parents[1] / "drivers" / "python"
SA_APP = DRIVERS / "sqlalchemy_app.py"
DJANGO_DIR = DRIVERS / "django_app"
PYTHON = "/usr/bin/python3"
RUN_TIMEOUT_S = 240
CLIENTS = 4
UNITS = 150  # per client
MIN_REPLICA_SHARE = 0.90


# ---- helpers ----

def _run(cmd: list[str], timeout: float = RUN_TIMEOUT_S, **kw) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", **kw.pop("env", {}))
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, env=env, **kw)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{' '.join(cmd[:4])} ... did not finish within {timeout}s\n"
                    f"stdout: {e.stdout}\nstderr: {e.stderr}", pytrace=False)


def _django_env(p) -> dict:
    return {"PGREGION_HOST": p.host, "PGREGION_PORT": str(p.port), "PGREGION_USER": "app",
            "PGREGION_PASSWORD": p.client_password("app"), "PGREGION_DB": "appdb"}


def _manage(p, *args: str, timeout: float = RUN_TIMEOUT_S) -> subprocess.CompletedProcess:
    return _run([PYTHON, "manage.py", *args], timeout=timeout, cwd=DJANGO_DIR,
                env=_django_env(p))


def _summary(r: subprocess.CompletedProcess, p) -> dict:
    lines = [line for line in r.stdout.splitlines() if line.startswith("{")]
    assert r.returncode == 0 and lines, (f"exit {r.returncode}\nstdout: {r.stdout[-4000:]}\n"
                                         f"stderr: {r.stderr[-4000:]}\n{p.log_tail(40)}")
    s = json.loads(lines[-1])
    print(json.dumps(s, sort_keys=True))  # shown on failure or with -s
    return s


def _optimistic(p) -> dict:
    """{'started': n, ..., 'moves': {reason: n}} from /metrics (missing samples are 0)."""
    status, _, body = http_get(int(p.sections["admin"]["listen"].rsplit(":", 1)[1]), "/metrics")
    assert status == 200
    text = body.decode()
    out: dict = {"moves": {}}
    for labels, v in metric_values(text, "pgregion_optimistic_transactions_total").items():
        m = re.search(r'outcome="(\w+)"', labels)
        if m:
            out[m.group(1)] = v
    for labels, v in metric_values(text, "pgregion_optimistic_moves_total").items():
        m = re.search(r'reason="(\w+)"', labels)
        if m:
            out["moves"][m.group(1)] = v
    return out


def _delta(before: dict, after: dict) -> dict:
    d = {k: after.get(k, 0) - before.get(k, 0) for k in after if k != "moves"}
    d["moves"] = {k: v - before["moves"].get(k, 0) for k, v in after["moves"].items()
                  if v - before["moves"].get(k, 0)}
    return d


def _check_workload(s: dict, p) -> None:
    assert s["errors"] == [], "errors:\n" + "\n".join(s["errors"]) + "\n" + p.log_tail(40)
    assert s["wrong_results"] == 0, s["wrong_samples"]
    assert s["gave_up"] == 0, s
    assert s["units"] >= CLIENTS * UNITS, s
    assert s["read_write_units"] > 0 and s["read_write_on_replica"] == 0, s
    share = s["read_only_on_replica"] / s["read_only_units"]
    assert share >= MIN_REPLICA_SHARE, (
        f"{s['read_only_on_replica']} of {s['read_only_units']} read-only transactions "
        f"({share:.0%}) ended on a replica; want >= {MIN_REPLICA_SHARE:.0%}")


def _primary(cluster) -> psycopg.Connection:
    return psycopg.connect(cluster.primary.dsn(dbname="appdb"), autocommit=True)


@pytest.fixture(scope="module")
def orm_proxy(cluster, pgregion_bin):
    """The module's pgregion (eu-west, the primary behind the relay), replicas seen, and
    table opt_t(id, v) on every node."""
    if not wanlink_binary().exists():
        pytest.fail(f"wanlink binary not found at {wanlink_binary()}: ninja -C build",
                    pytrace=False)
    link = WanLink(cluster.primary.port, delay_ms=PRIMARY_DELAY_MS)
    nodes = [{"name": "primary", "region": "us-east", "host": "127.0.0.1", "port": link.port}]
    nodes += [{"name": r.name, "region": "eu-west", "host": r.host, "port": r.port}
              for r in cluster.replicas]
    proxy = Pgregion(cluster, binary=pgregion_bin, proxy={"region": "eu-west"}, nodes=nodes,
                     **PROXY_KW)
    try:
        yield from _orm_setup(cluster, proxy)
    finally:
        proxy.stop(check=True)
        link.stop(check=False)


def _orm_setup(cluster, proxy):
    _wait_topology(proxy, cluster)
    with _primary(cluster) as d:
        d.execute("drop table if exists opt_t, opt_copy")
        d.execute("create table opt_t(id int primary key, v int not null)")
        d.execute("insert into opt_t select g, g * 10 from generate_series(1, 20) g")
        d.execute("create table opt_copy(id int, s text)")
        d.execute("grant all on opt_t, opt_copy to app")
    cluster.wait_replay()
    yield proxy


def _set_v(cluster, row: int, v: int) -> None:
    """Directly on the primary, then until both replicas have replayed it."""
    with _primary(cluster) as d:
        d.execute("update opt_t set v = %s where id = %s", (v, row))
    cluster.wait_replay()


def _where(c) -> bool:
    return c.execute("select pg_is_in_recovery()").fetchone()[0]


# ---- ORM workloads ----

@pytest.mark.timeout(RUN_TIMEOUT_S + 60)
def test_sqlalchemy_default_mode_workload(cluster, orm_proxy):
    p = orm_proxy
    base = [PYTHON, str(SA_APP), "--host", p.host, "--port", str(p.port),
            "--password", p.client_password("app")]
    r = _run(base + ["--setup"])
    assert r.returncode == 0, r.stdout + r.stderr
    cluster.wait_replay()
    before = _optimistic(p)
    s = _summary(_run(base + ["--clients", str(CLIENTS), "--units", str(UNITS),
                              "--duration", "180"]), p)
    d = _delta(before, _optimistic(p))
    print("metrics delta:", d)
    _check_workload(s, p)
    # Each committed order is in the table once (no replay wrote twice); balances agree.
    with _primary(cluster) as c:
        assert c.execute("select count(*) from sa_orders").fetchone()[0] == s["read_write_units"]
        assert c.execute("select count(*) from sa_accounts a where balance <> 100000 - "
                         "(select coalesce(sum(price), 0) from sa_orders o "
                         "where o.account_id = a.id)").fetchone()[0] == 0
    assert d.get("started", 0) >= s["read_only_on_replica"], d
    assert d.get("mismatch", 0) <= s["serialization_failures"], d


@pytest.mark.timeout(RUN_TIMEOUT_S + 120)
def test_django_atomic_requests_workload(cluster, orm_proxy):
    p = orm_proxy
    r = _manage(p, "migrate", "--noinput")
    assert r.returncode == 0, r.stdout + r.stderr + p.log_tail(40)
    r = _manage(p, "seed_shop")
    assert r.returncode == 0, r.stdout + r.stderr
    cluster.wait_replay()
    before = _optimistic(p)
    s = _summary(_manage(p, "run_requests", "--clients", str(CLIENTS), "--requests",
                         str(UNITS), "--duration", "180"), p)
    d = _delta(before, _optimistic(p))
    print("metrics delta:", d)
    _check_workload(s, p)
    with _primary(cluster) as c:
        assert c.execute("select count(*) from shop_order").fetchone()[0] == s["read_write_units"]
    assert d.get("started", 0) >= s["read_only_on_replica"], d


@pytest.mark.timeout(400)
def test_django_manage_test_twice(cluster, orm_proxy):
    """The test runner creates test_appdb through pgregion, reads in it at once, and drops
    it at the end; the second run needs the first one's drop to have worked."""
    p = orm_proxy
    with psycopg.connect(cluster.primary.dsn(dbname="postgres"), autocommit=True) as d:
        d.execute("alter role app createdb")
        d.execute("drop database if exists test_appdb with (force)")  # an earlier run's
    for run in (1, 2):
        r = _manage(p, "test", "--noinput", "-v", "2", timeout=180)
        out = r.stdout + r.stderr
        assert r.returncode == 0 and re.search(r"^OK", out, re.M), (
            f"manage.py test, run {run}: exit {r.returncode}\n{out[-6000:]}\n{p.log_tail(40)}")
        assert "Ran 4 tests" in out, out[-2000:]
    with _primary(cluster) as c:
        n = c.execute("select count(*) from pg_database where datname = 'test_appdb'").fetchone()
        assert n[0] == 0


# ---- optimistic transactions, case by case ----

def test_read_only_transaction_on_replica(cluster, orm_proxy):
    p = orm_proxy
    before = _optimistic(p)
    with connect(p) as c:
        c.execute("begin")
        assert c.execute("select v from opt_t where id = 1").fetchone()[0] == 10
        assert c.execute("select count(*) from opt_t").fetchone()[0] == 20
        assert _where(c) is True
        c.execute("commit")
    # The driver's own BEGIN (psycopg 3 with autocommit off), ended by a ROLLBACK.
    with connect(p, autocommit=False) as c:
        assert c.execute("select sum(v) from opt_t").fetchone()[0] >= 0
        assert _where(c) is True
        c.rollback()
    d = _delta(before, _optimistic(p))
    assert d.get("started", 0) == 2 and d.get("committed_on_replica", 0) >= 1, d
    assert d.get("moved", 0) == 0 and d.get("mismatch", 0) == 0, d


def test_write_after_equal_reads_moves_to_primary(cluster, orm_proxy):
    p = orm_proxy
    _set_v(cluster, 2, 20)
    before = _optimistic(p)
    with connect(p) as c:
        c.execute("begin")
        assert c.execute("select v from opt_t where id = 2").fetchone()[0] == 20
        assert c.execute("select count(*) from opt_t where v > 0").fetchone()[0] == 20
        assert c.execute("update opt_t set v = v + 1 where id = 2 returning v"
                         ).fetchone()[0] == 21
        assert _where(c) is False
        c.execute("commit")
    with _primary(cluster) as d:
        assert d.execute("select v from opt_t where id = 2").fetchone()[0] == 21
    d = _delta(before, _optimistic(p))
    assert d.get("started", 0) == 1 and d.get("moved", 0) == 1, d
    assert d["moves"].get("write", 0) == 1 and d.get("mismatch", 0) == 0, d


def test_write_after_changed_reads_fails_40001(cluster, orm_proxy):
    """The read runs on a replica (v = 30); the row then changes directly on the primary
    and both replicas replay it (v = 31); the transaction's write moves it to the
    primary, whose replay of the read returns 31: 40001, and nothing is written."""
    p = orm_proxy
    _set_v(cluster, 3, 30)
    before = _optimistic(p)
    with connect(p) as c:
        c.execute("begin")
        assert c.execute("select v from opt_t where id = 3").fetchone()[0] == 30
        assert _optimistic(p).get("started", 0) == before.get("started", 0) + 1
        _set_v(cluster, 3, 31)
        with pytest.raises(psycopg.errors.SerializationFailure):
            c.execute("update opt_t set v = v + 100 where id = 3")
        c.execute("rollback")
        # The session goes on normally.
        assert c.execute("select 1").fetchone()[0] == 1
    with _primary(cluster) as d:
        assert d.execute("select v from opt_t where id = 3").fetchone()[0] == 31
    d = _delta(before, _optimistic(p))
    assert d.get("mismatch", 0) == 1, d


def test_serializable_runs_on_primary(cluster, orm_proxy):
    p = orm_proxy
    before = _optimistic(p)
    with connect(p) as c:
        c.execute("begin isolation level serializable")
        assert c.execute("select v from opt_t where id = 4").fetchone()[0] == 40
        assert _where(c) is False
        c.execute("commit")
        # Declared after BEGIN, as an ORM's isolation setting does it.
        c.execute("begin")
        c.execute("set transaction isolation level serializable")
        assert c.execute("select v from opt_t where id = 4").fetchone()[0] == 40
        assert c.execute("show transaction_isolation").fetchone()[0] == "serializable"
        assert _where(c) is False
        c.execute("commit")
    with connect(p, autocommit=False) as c:
        c.isolation_level = psycopg.IsolationLevel.SERIALIZABLE
        assert c.execute("select v from opt_t where id = 4").fetchone()[0] == 40
        assert _where(c) is False
        c.commit()
    d = _delta(before, _optimistic(p))
    assert d.get("mismatch", 0) == 0 and d.get("failed", 0) == 0, d


def test_optimistic_off_keeps_transactions_on_primary(cluster, orm_proxy, start_proxy):
    p = orm_proxy
    with connect(p) as c:
        c.execute("set pgregion.optimistic = off")
        c.execute("begin")
        assert c.execute("select v from opt_t where id = 5").fetchone()[0] == 50
        assert _where(c) is False
        c.execute("commit")
        c.execute("set pgregion.optimistic = on")
        c.execute("begin")
        assert _where(c) is True
        c.execute("commit")
    with connect(p, options="-c pgregion.optimistic=off") as c:
        c.execute("begin")
        assert _where(c) is False
        c.execute("commit")
    with connect(p) as c:
        c.execute("/* pgregion: optimistic=off */ begin")
        assert _where(c) is False
        c.execute("commit")
    # Configured off: globally, then for one user and for one database.
    for kw in ({"routing": {"optimistic_transactions": False}},
               {"users": [{"name": "app", "password": "secret", "auth": "scram-sha-256",
                           "optimistic_transactions": False}]},
               {"databases": [{"name": "appdb", "optimistic_transactions": False}]}):
        q = start_proxy(cluster, **kw)
        _wait_topology(q, cluster)
        with connect(q) as c:
            c.execute("begin")
            assert _where(c) is False, kw
            c.execute("commit")
            # Reads outside transactions still go to replicas.
            assert _where(c) is True, kw


def test_cursor_in_transaction(cluster, orm_proxy):
    p = orm_proxy
    with _primary(cluster) as d:
        want = [r[0] for r in d.execute("select id from opt_t order by id")]
    with connect(p) as c:
        # Read-only: a cursor fetched in pieces.
        c.execute("begin")
        c.execute("declare cur cursor for select id from opt_t order by id")
        got = [r[0] for r in c.execute("fetch 5 from cur")]
        got += [r[0] for r in c.execute("fetch all from cur")]
        c.execute("close cur")
        c.execute("commit")
        assert got == want
        # A write while a cursor is open: the cursor goes on where it was.
        c.execute("begin")
        c.execute("declare cur2 cursor for select id from opt_t order by id")
        got = [r[0] for r in c.execute("fetch 3 from cur2")]
        c.execute("insert into opt_copy values (-1, 'cursor')")
        got += [r[0] for r in c.execute("fetch all from cur2")]
        c.execute("commit")
        assert got == want
    with _primary(cluster) as d:
        assert d.execute("select count(*) from opt_copy where id = -1").fetchone()[0] == 1


def test_savepoints_in_transaction(cluster, orm_proxy):
    p = orm_proxy
    _set_v(cluster, 6, 60)
    with connect(p) as c:
        c.execute("begin")
        assert c.execute("select v from opt_t where id = 6").fetchone()[0] == 60
        c.execute("savepoint a")
        with pytest.raises(psycopg.errors.DivisionByZero):
            c.execute("select 1 / 0")
        c.execute("rollback to savepoint a")
        assert c.execute("select v from opt_t where id = 6").fetchone()[0] == 60
        c.execute("savepoint b")
        c.execute("update opt_t set v = 61 where id = 6")
        assert c.execute("select v from opt_t where id = 6").fetchone()[0] == 61
        c.execute("rollback to savepoint b")
        assert c.execute("select v from opt_t where id = 6").fetchone()[0] == 60
        c.execute("update opt_t set v = 62 where id = 6")
        c.execute("release savepoint a")
        c.execute("commit")
    with _primary(cluster) as d:
        assert d.execute("select v from opt_t where id = 6").fetchone()[0] == 62


def test_select_for_update_in_transaction(cluster, orm_proxy):
    p = orm_proxy
    _set_v(cluster, 7, 70)
    before = _optimistic(p)
    with connect(p) as c:
        c.execute("begin")
        assert c.execute("select v from opt_t where id = 7").fetchone()[0] == 70
        assert c.execute("select v from opt_t where id = 7 for update").fetchone()[0] == 70
        assert _where(c) is False  # a row lock exists only on the primary
        # The lock is held: another session cannot take it.
        with _primary(cluster) as d:
            d.execute("set lock_timeout = '200ms'")
            with pytest.raises(psycopg.errors.LockNotAvailable):
                d.execute("select v from opt_t where id = 7 for update")
        c.execute("commit")
    d = _delta(before, _optimistic(p))
    assert d["moves"].get("locking", 0) == 1, d


def test_copy_in_transaction(cluster, orm_proxy):
    p = orm_proxy
    with _primary(cluster) as d:
        d.execute("delete from opt_copy where id > 0")
        want = sorted(d.execute("select id, v from opt_t").fetchall())
    cluster.wait_replay()
    with connect(p) as c:
        c.execute("begin")
        assert c.execute("select count(*) from opt_t").fetchone()[0] == 20
        with c.cursor() as cur:
            with cur.copy("copy opt_t (id, v) to stdout") as cp:
                got = sorted((int(a), int(b)) for a, b in cp.rows())
        assert got == want
        with c.cursor() as cur:
            with cur.copy("copy opt_copy (id, s) from stdin") as cp:
                for i in range(1, 6):
                    cp.write_row((i, f"row{i}"))
        assert c.execute("select count(*) from opt_copy where id > 0").fetchone()[0] == 5
        c.execute("commit")
    with _primary(cluster) as d:
        assert d.execute("select count(*) from opt_copy where id > 0").fetchone()[0] == 5
