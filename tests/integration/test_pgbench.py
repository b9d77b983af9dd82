"""pgbench through pgregion: no failed transactions, and the database agrees."""

from __future__ import annotations

import re
import subprocess

import psycopg
import pytest

from conftest import pg_env

CLUSTER_KW = {}
POOL_SIZE = 10
DURATION_S = 10


def _pgbench(port: int, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    cp = subprocess.run(["pgbench", "-h", "127.0.0.1", "-p", str(port), "-U", "app",
                         *args, "appdb"], env=pg_env("secret"), capture_output=True,
                        text=True, timeout=timeout)
    return cp


@pytest.fixture(scope="module")
def initialized(cluster, pgregion_bin):
    """pgbench -i -s 5, itself run through pgregion (COPY, VACUUM, DDL)."""
    from pgregion import Pgregion
    with Pgregion(cluster, binary=pgregion_bin,
                  pool={"mode": "transaction", "size": POOL_SIZE}) as p:
        cp = _pgbench(p.port, "-i", "-s", "5", "-q")
        assert cp.returncode == 0, cp.stdout + cp.stderr
    n = cluster.primary.psql("select count(*) from pgbench_accounts", dbname="appdb")
    assert n == "500000"
    return True


def _sums(cluster) -> tuple[int, int, int, int, int]:
    out = cluster.primary.psql(
        "select (select coalesce(sum(abalance), 0) from pgbench_accounts), "
        "(select coalesce(sum(tbalance), 0) from pgbench_tellers), "
        "(select coalesce(sum(bbalance), 0) from pgbench_branches), "
        "(select count(*) from pgbench_history), "
        "(select coalesce(sum(delta), 0) from pgbench_history)", dbname="appdb")
    return tuple(int(x) for x in out.split("|"))  # type: ignore[return-value]


@pytest.mark.slow
@pytest.mark.timeout(200)
@pytest.mark.parametrize("protocol,pool_mode", [
    ("simple", "transaction"),
    ("extended", "transaction"),
    ("prepared", "session"),
])
def test_pgbench(cluster, initialized, start_proxy, protocol, pool_mode):
    p = start_proxy(cluster, pool={"mode": pool_mode, "size": POOL_SIZE})
    cluster.primary.psql("truncate pgbench_history", dbname="appdb")
    a0, t0, b0, h0, _ = _sums(cluster)
    assert h0 == 0
    cp = _pgbench(p.port, "-c", "8", "-j", "2", "-T", str(DURATION_S), "-M", protocol,
                  "-n", timeout=DURATION_S + 120)
    out = cp.stdout + cp.stderr
    assert cp.returncode == 0, out
    m = re.search(r"number of transactions actually processed: (\d+)", out)
    assert m, out
    processed = int(m.group(1))
    assert processed > 0, out
    failed = re.search(r"number of failed transactions: (\d+)", out)
    assert failed is None or int(failed.group(1)) == 0, out
    a1, t1, b1, h1, delta = _sums(cluster)
    assert h1 == processed, f"pgbench_history has {h1} rows, pgbench reported {processed}"
    # Every transaction applied its delta to an account, a teller and a branch.
    assert a1 - a0 == delta and t1 - t0 == delta and b1 - b0 == delta, \
        (a1 - a0, t1 - t0, b1 - b0, delta)
    # No server connection left inside a transaction.
    idle_tx = cluster.primary.psql(
        "select count(*) from pg_stat_activity where datname = 'appdb' "
        "and state like 'idle in transaction%'")
    assert idle_tx == "0"


def test_pgbench_select_only_extended_many_clients(cluster, initialized, start_proxy):
    """More clients than server connections, extended protocol, transaction pooling."""
    p = start_proxy(cluster, pool={"mode": "transaction", "size": 4})
    cp = _pgbench(p.port, "-S", "-M", "extended", "-c", "16", "-j", "2", "-t", "300", "-n")
    out = cp.stdout + cp.stderr
    assert cp.returncode == 0, out
    m = re.search(r"number of transactions actually processed: (\d+)/(\d+)", out)
    assert m and m.group(1) == m.group(2) == str(16 * 300), out
    with psycopg.connect(cluster.primary.dsn(dbname="appdb")) as conn:
        n = conn.execute("select count(*) from pg_stat_activity where datname = 'appdb' "
                         "and usename = 'app'").fetchone()[0]
        assert n <= 4 + 1, f"{n} server connections for a pool of 4"
