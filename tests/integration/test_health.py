"""The health checker: roles are discovered, not configured, and failover is followed.

The first [[nodes]] entry is the replica on purpose: until the first probe round
pgregion treats the first node as the primary, after it the one that reports
pg_is_in_recovery() = false.
"""

from __future__ import annotations

import re
import time

import psycopg
import pytest

from cluster import Cluster
from conftest import connect
from pgregion import run_binary

CLUSTER_KW = {"replicas": 1}
INTERVAL_MS = 200
# Scheduling noise on a busy test machine; the checks themselves are in probe intervals.
SLACK_S = 2.0


def _nodes_replica_first(c: Cluster) -> list[dict]:
    r, pr = c.replicas[0], c.primary
    return [{"name": "replica1", "region": "local", "host": r.host, "port": r.port},
            {"name": "primary", "region": "local", "host": pr.host, "port": pr.port}]


def _write_once(p, table: str) -> int:
    """One write through pgregion on a new connection; the port of the server that ran it."""
    with connect(p, connect_timeout=5) as conn:
        row = conn.execute(f"insert into {table} values (default) "
                           "returning inet_server_port(), pg_is_in_recovery()").fetchone()
    assert row[1] is False
    return row[0]


def _wait_write(p, table: str, timeout: float) -> tuple[int, float]:
    """Retries a write until one succeeds; (server port, seconds it took). Bounded."""
    t0 = time.monotonic()
    last: Exception | None = None
    while time.monotonic() - t0 < timeout:
        try:
            return _write_once(p, table), time.monotonic() - t0
        except psycopg.Error as e:
            last = e
            time.sleep(0.02)
    raise AssertionError(f"no write succeeded within {timeout}s; last error: {last!r}\n"
                         + p.log_tail(60))


def _wait_log(p, pattern: str, timeout: float = 5.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        m = re.search(pattern, p.log_text(), re.M)
        if m:
            return m.group(0)
        if time.monotonic() > deadline:
            raise AssertionError(f"no log line matching {pattern!r}\n" + p.log_tail(60))
        time.sleep(0.05)


def _health_backends(node) -> list[tuple]:
    with psycopg.connect(node.dsn(), autocommit=True) as su:
        return su.execute("select pid, usename, datname from pg_stat_activity "
                          "where application_name = 'pgregion-health' order by pid").fetchall()


def test_discovers_primary_listed_second(cluster, start_proxy):
    cluster.primary.psql("create table if not exists hc_disc (id serial primary key)",
                         dbname="appdb")
    cluster.primary.psql("grant all on hc_disc, hc_disc_id_seq to app", dbname="appdb")
    cluster.wait_replay()
    p = start_proxy(cluster, nodes=_nodes_replica_first(cluster),
                    health={"interval_ms": INTERVAL_MS})
    port, took = _wait_write(p, "hc_disc", timeout=5 * INTERVAL_MS / 1000 + SLACK_S)
    assert port == cluster.primary.port
    # A read-write transaction runs on the primary too (one that only reads would be
    # an optimistic one, on the replica).
    with connect(p, autocommit=False) as conn:
        conn.execute("set transaction read write")
        assert conn.execute("select pg_is_in_recovery()").fetchone()[0] is False
        conn.commit()
    _wait_log(p, r"event=roles_discovered primary=primary$")
    _wait_log(p, r"event=node_role node=primary role=primary$")
    _wait_log(p, r"event=node_role node=replica1 role=replica$")
    assert "primary_conflict" not in p.log_text()


def test_probe_connection_is_kept_open(cluster, start_proxy):
    p = start_proxy(cluster, nodes=_nodes_replica_first(cluster),
                    health={"interval_ms": INTERVAL_MS})
    _wait_log(p, r"event=node_up node=primary ")
    _wait_log(p, r"event=node_up node=replica1 ")
    for node in (cluster.primary, cluster.replicas[0]):
        first = _health_backends(node)
        assert [(u, d) for _, u, d in first] == [("app", "postgres")], first
        time.sleep(3 * INTERVAL_MS / 1000)
        assert _health_backends(node) == first  # same backend: no reconnect per probe
    p.stop()
    # Stop closed the probe connections.
    deadline = time.monotonic() + 5
    while _health_backends(cluster.primary) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _health_backends(cluster.primary) == []


def test_health_user_and_database(cluster, start_proxy):
    p = start_proxy(cluster, health={"interval_ms": INTERVAL_MS, "user": "postgres",
                                     "password": "postgres", "database": "appdb"})
    _wait_log(p, r"event=roles_discovered ")
    rows = _health_backends(cluster.primary)
    assert [(u, d) for _, u, d in rows] == [("postgres", "appdb")], rows


def test_bad_health_password_does_not_break_serving(cluster, start_proxy):
    """Probes that cannot log in fail loudly; the static rule keeps the proxy serving."""
    p = start_proxy(cluster, health={"interval_ms": INTERVAL_MS, "user": "app",
                                     "password": "wrong"})
    _wait_log(p, r"event=health_probe_failed node=primary kind=error .*password")
    with connect(p) as conn:
        assert conn.execute("select 1").fetchone()[0] == 1
    assert "roles_discovered" not in p.log_text()


@pytest.mark.parametrize("text,error", [
    ('[health]\nuser = "probe"\npassword = "pw"\ndatabase = "appdb"\n', None),
    ('[health]\npassword = "pw"\n', "health.password"),
    ('[health]\nuser = "probe"\npassword = "md5' + "0" * 32 + '"\n', "plaintext"),
    ('[health]\nuser = ""\n', "health.user"),
    ('[health]\ndatabase = ""\n', "health.database"),
])
def test_health_config_keys(tmp_path, pgregion_bin, text, error):
    path = tmp_path / "pgregion.toml"
    path.write_text(text + '[[users]]\nname = "app"\npassword = "secret"\n'
                    '[[nodes]]\nname = "n1"\nregion = "r"\nhost = "127.0.0.1"\n')
    cp = run_binary(["--check", str(path)], binary=pgregion_bin)
    if error is None:
        assert cp.returncode == 0, cp.stdout + cp.stderr
    else:
        assert cp.returncode != 0 and error in cp.stderr, cp.stdout + cp.stderr


@pytest.mark.slow
def test_server_tls_for_probes(start_proxy):
    with Cluster(ssl=True) as c:
        for mode in ("disable", "prefer", "verify-full"):
            tls = {"mode": mode, "ca_file": c.ca_file if mode == "verify-full" else None}
            p = start_proxy(c, server_tls=tls, health={"interval_ms": INTERVAL_MS})
            _wait_log(p, r"event=roles_discovered ")
            with psycopg.connect(c.primary.dsn(), autocommit=True) as su:
                ssl = su.execute("select s.ssl from pg_stat_activity a join pg_stat_ssl s "
                                 "using (pid) where application_name = 'pgregion-health'"
                                 ).fetchall()
            assert ssl == [(mode != "disable",)], (mode, ssl)
            p.stop()


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_failover_follows_promotion(start_proxy):
    with Cluster(replicas=1) as c:
        replica = c.replicas[0]
        c.primary.psql("create table hc_fail (id serial primary key)", dbname="appdb")
        c.primary.psql("grant all on hc_fail, hc_fail_id_seq to app", dbname="appdb")
        c.wait_replay()
        p = start_proxy(c, nodes=_nodes_replica_first(c),
                        health={"interval_ms": INTERVAL_MS, "timeout_ms": 1000})
        port, _ = _wait_write(p, "hc_fail", timeout=5 * INTERVAL_MS / 1000 + SLACK_S)
        assert port == c.primary.port
        acknowledged = 1
        for _ in range(20):
            assert _write_once(p, "hc_fail") == c.primary.port
            acknowledged += 1
        c.wait_replay()

        c.primary.stop(mode="fast")
        replica.promote()
        # Writes resume through the same pgregion on the promoted node within two probe
        # intervals (plus scheduling slack), with no restart or reload.
        port, took = _wait_write(p, "hc_fail", timeout=2 * INTERVAL_MS / 1000 + SLACK_S)
        assert port == replica.port
        acknowledged += 1
        for _ in range(5):
            assert _write_once(p, "hc_fail") == replica.port
            acknowledged += 1
        assert replica.psql("select count(*) from hc_fail", dbname="appdb") == str(acknowledged)

        _wait_log(p, r"event=node_role_changed node=replica1 from=replica to=primary$")
        _wait_log(p, r"event=primary_changed primary=replica1 .*failover=true")
        _wait_log(p, r"event=node_down node=primary ")
        # The shutdown reaches a probe as 57P01, or, when it arrives while the probe's
        # query runs, as libpq's "connection lost" with the same message and no code.
        assert re.search(r"event=health_probe_failed node=primary .*(57P01|terminating "
                         r"connection due to administrator command)", p.log_text()), \
            p.log_tail(40)
        print(f"writes resumed {took:.3f}s after promote() returned")
