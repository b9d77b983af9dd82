"""The statement classifier under hostile input (issue 16, classes 1, 4 and 5).

The classifier has a budget: a text over 64 KiB, or whose estimated nesting depth is
over 1000, is not parsed and goes to the primary (fail closed). Before it, a 100,000
term `SELECT 1+1+...+1` crashed pgregion inside libpg_query, and the normalizer read
'' inside X'..'/B'..' as an escaped quote, so a syntax error was cached under the key
of a valid read and other clients' reads of that shape went to the primary.

Each test asserts the bound it protects: pgregion alive and answering as PostgreSQL
itself does, the slowest round trip of a concurrent client, and reads of a poisoned
shape still served by the replica."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from conftest import assert_serves
from conftest import connect as _connect

CLUSTER_KW = {"replicas": 1}

# Reads right after a session's own write go to the primary at `causal`; these tests
# are about where plain statements go.
ROUTING = {"consistency": "eventual"}
AUTO = "-c pgregion.route=auto"


def connect(p, **kw):
    # psycopg prepares a statement after 5 runs; named statements stay on the primary
    # until re-created per server connection, so these tests use unnamed ones.
    conn = _connect(p, **kw)
    conn.prepare_threshold = None
    return conn


def _wait_replica_used(p, timeout=10.0):
    """Until the health checker has seen the replica up, reads go to the primary."""
    deadline = time.monotonic() + timeout
    with connect(p, options=AUTO) as c:
        while not c.execute("select pg_is_in_recovery()").fetchone()[0]:
            assert time.monotonic() < deadline, "the replica was never used"
            time.sleep(0.05)


@pytest.fixture
def rproxy(start_proxy, cluster):
    p = start_proxy(cluster, routing=ROUTING)
    _wait_replica_used(p)
    return p


def _outcome(conn, sql):
    """('ok', rows) or ('error', sqlstate) of one statement."""
    try:
        cur = conn.execute(sql)
        return ("ok", cur.fetchall() if cur.description else None)
    except psycopg.Error as e:
        return ("error", e.sqlstate)


def _direct(cluster):
    conn = psycopg.connect(cluster.primary.dsn(user="app", dbname="appdb"), autocommit=True)
    conn.prepare_threshold = None
    return conn


DEEP = {
    "plus_100k": "SELECT " + "+".join(["1"] * 100_000),
    "concat_300k": "SELECT " + "||".join(["'a'"] * 300_000),
    "parens_2000": "SELECT " + "(" * 2000 + "1" + ")" * 2000,
}


@pytest.mark.timeout(90)
@pytest.mark.parametrize("name", list(DEEP))
def test_deep_statement_same_outcome_as_postgres(name, rproxy, cluster):
    """A deep statement: pgregion stays up, the client gets what PostgreSQL answers
    directly (result or SQLSTATE), and a new connection afterwards works."""
    sql = DEEP[name]
    t0 = time.monotonic()
    with _direct(cluster) as d:
        want = _outcome(d, sql)
    direct_s = time.monotonic() - t0
    t0 = time.monotonic()
    with connect(rproxy, options=AUTO) as c:
        got = _outcome(c, sql)
    proxy_s = time.monotonic() - t0
    summary = want if want[0] == "error" else (want[0], str(want[1])[:60])
    print(f"\n{name}: {len(sql)} bytes, postgres {summary} in {direct_s:.2f}s, "
          f"via pgregion in {proxy_s:.2f}s")
    assert rproxy.alive(), rproxy.log_tail(40)
    assert got == want
    assert proxy_s < 30, proxy_s
    assert_serves(rproxy)
    with connect(rproxy, options=AUTO) as c:
        assert c.execute("select 1").fetchone()[0] == 1


@pytest.mark.timeout(60)
def test_huge_in_list_does_not_stall_other_clients(rproxy):
    """While one client sends a 1M-element IN list (about 7 MB), another client's
    `SELECT 1` round trips stay under 2 s each."""
    big = "SELECT 1 WHERE 1 IN (" + ",".join(str(i) for i in range(1, 1_000_001)) + ")"
    done = threading.Event()
    result = {}

    def attacker():
        t0 = time.monotonic()
        try:
            with connect(rproxy, options=AUTO) as c:
                result["outcome"] = _outcome(c, big)
        except Exception as e:  # noqa: BLE001: reported by the main thread
            result["outcome"] = ("exception", repr(e))
        result["seconds"] = time.monotonic() - t0
        done.set()

    rtts = []
    with connect(rproxy, options=AUTO) as c:
        c.execute("select 1")
        th = threading.Thread(target=attacker, daemon=True)
        th.start()
        deadline = time.monotonic() + 20
        while not done.is_set() and time.monotonic() < deadline:
            t0 = time.monotonic()
            assert c.execute("select 1").fetchone()[0] == 1
            rtts.append(time.monotonic() - t0)
        # a few more after the big statement finished (its result being sent back)
        for _ in range(20):
            t0 = time.monotonic()
            assert c.execute("select 1").fetchone()[0] == 1
            rtts.append(time.monotonic() - t0)
    th.join(timeout=20)
    assert done.is_set(), "the 1M-element statement did not finish within 40 s"
    slowest = max(rtts)
    print(f"\nIN list of {len(big)} bytes: {result['outcome']} in "
          f"{result['seconds']:.2f}s; {len(rtts)} concurrent SELECT 1, slowest "
          f"{slowest * 1000:.1f} ms, median {sorted(rtts)[len(rtts) // 2] * 1000:.2f} ms")
    assert result["outcome"] == ("ok", [(1,)])
    assert slowest < 2.0, slowest
    assert rproxy.alive()


# Under the old lexer '' inside X'..'/B'..' was an escaped quote, so each invalid
# text below was one literal and normalized to the key of its valid twin (the literal
# becomes `?` whatever its prefix). PostgreSQL ends X'..'/B'..' at the first quote,
# so the invalid texts are X'1' followed by '2': a syntax error.
POISON = [
    ("SELECT pg_is_in_recovery(), X'1''2'", "SELECT pg_is_in_recovery(), X'12'"),
    ("SELECT pg_is_in_recovery(), x'ab''cd'", "SELECT pg_is_in_recovery(), x'abcd'"),
    ("SELECT pg_is_in_recovery(), B'1''0'", "SELECT pg_is_in_recovery(), B'10'"),
    ("SELECT pg_is_in_recovery(), b'1''0' AS v", "SELECT pg_is_in_recovery(), b'0110' AS v"),
    ("SELECT pg_is_in_recovery(), X'1''2' FROM pg_class LIMIT 1",
     "SELECT pg_is_in_recovery(), X'12' FROM pg_class LIMIT 1"),
]


@pytest.mark.timeout(60)
def test_syntax_error_does_not_poison_valid_reads(rproxy, cluster):
    """Connection A sends X''/B'' texts PostgreSQL rejects; connection B's 20 valid
    reads of each shape that would have shared their key are still served by the
    replica (pg_is_in_recovery() true in the same statement)."""
    with _direct(cluster) as d:
        for bad, good in POISON:
            assert _outcome(d, bad) == ("error", "42601"), bad
            assert _outcome(d, good)[0] == "ok", good
    with connect(rproxy, options=AUTO) as a:
        for bad, _ in POISON:
            for _ in range(3):
                assert _outcome(a, bad) == ("error", "42601"), bad
    on_replica = {}
    with connect(rproxy, options=AUTO) as b:
        for bad, good in POISON:
            n = 0
            for _ in range(20):
                if b.execute(good).fetchone()[0] is True:
                    n += 1
            on_replica[good] = n
    print("\nreads on the replica out of 20: " + "; ".join(
        f"{g!r}: {n}" for g, n in on_replica.items()))
    assert all(n == 20 for n in on_replica.values()), on_replica
    assert rproxy.alive()
