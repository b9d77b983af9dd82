"""Read-your-writes tokens (issue 5): capture after writes with an LSN probe
pipelined behind the client's batch, export as ParameterStatus
pgregion.ryw_token, SHOW, and presenting tokens with SET."""

from __future__ import annotations

import io
import subprocess

import psycopg
import pytest

import pgwire
from pgregion import Pgregion
from test_routing import _wait_topology, connect

CLUSTER_KW = {"replicas": 1}


@pytest.fixture
def start_proxy(start_proxy, cluster):  # noqa: F811: wraps conftest's factory
    def start(*args, **kw):
        p = start_proxy(*args, **kw)
        _wait_topology(p, cluster)
        return p
    return start


def _token(conn):
    return conn.info.parameter_status("pgregion.ryw_token")


def _lsn(token: str) -> int:
    return int(token.split(".")[3], 16)


def _primary_lsn(cluster) -> int:
    text = cluster.primary.psql("select pg_current_wal_insert_lsn()")
    hi, lo = text.split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


def test_token_after_each_write(cluster, start_proxy):
    p = start_proxy(cluster)
    sysid = cluster.primary.psql("select system_identifier from pg_control_system()")
    with connect(p) as c:
        c.execute("create table if not exists ryw_t(id serial primary key, v text)")
        t1 = _token(c)
        assert t1 is not None and t1.startswith(f"r1.{sysid}."), t1
        assert c.execute("show pgregion.ryw_token").fetchone()[0] == t1
        c.execute("insert into ryw_t(v) values ('a')")
        t2 = _token(c)
        assert _lsn(t2) > _lsn(t1)
        assert _lsn(t2) <= _primary_lsn(cluster)
        # Extended protocol (psycopg sends parameters so).
        c.execute("insert into ryw_t(v) values (%s)", ["b"])
        t3 = _token(c)
        assert _lsn(t3) > _lsn(t2)
        # Reads do not move it.
        for _ in range(3):
            c.execute("select 1").fetchone()
        assert _token(c) == t3
        # Inside a transaction: only the COMMIT publishes the token.
        c.execute("begin")
        c.execute("insert into ryw_t(v) values ('c')")
        assert _token(c) == t3
        c.execute("commit")
        t4 = _token(c)
        assert _lsn(t4) > _lsn(t3)
        # COPY FROM STDIN is probed after its ReadyForQuery.
        with c.cursor().copy("copy ryw_t(v) from stdin") as cp:
            for i in range(100):
                cp.write_row([f"copy{i}"])
        t5 = _token(c)
        assert _lsn(t5) > _lsn(t4)
        assert c.execute("/* pgregion: route=primary */ select count(*) from ryw_t "
                         "where v like 'copy%'").fetchone()[0] >= 100


def test_reading_session_gets_no_token(cluster, start_proxy):
    p = start_proxy(cluster)
    with connect(p) as c:
        for _ in range(5):
            c.execute("select 1").fetchone()
        assert _token(c) is None
        assert c.execute("show pgregion.ryw_token").fetchone()[0] == ""


def test_single_node_instance_sends_no_token(cluster, pgregion_bin):
    """With only the primary configured every read is on the primary: writes
    are not probed and no token is sent, and the session works as usual."""
    primary = cluster.primary
    node = {"name": primary.name, "region": "local", "host": primary.host, "port": primary.port}
    p = Pgregion(cluster, binary=pgregion_bin, nodes=[node])
    try:
        with connect(p) as c:
            c.execute("create table if not exists ryw_single(x int)")
            c.execute("insert into ryw_single values (1)")
            c.execute("begin")
            c.execute("insert into ryw_single values (2)")
            c.execute("commit")
            assert _token(c) is None
            assert c.execute("show pgregion.ryw_token").fetchone()[0] == ""
            assert c.execute("select count(*) from ryw_single").fetchone()[0] >= 2
            assert c.execute("select inet_server_port()").fetchone()[0] == primary.port
    finally:
        p.stop(check=True)


def test_presenting_tokens(cluster, start_proxy):
    p = start_proxy(cluster)
    with connect(p) as writer:
        writer.execute("create table if not exists ryw_p(x int)")
        writer.execute("insert into ryw_p values (1)")
        token = _token(writer)
    with connect(p) as reader:
        reader.execute(f"set pgregion.ryw_token = '{token}'")
        assert reader.execute("show pgregion.ryw_token").fetchone()[0] == token
        with pytest.raises(psycopg.errors.InvalidParameterValue):
            reader.execute("set pgregion.ryw_token = 'garbage'")
        parts = token.split(".")
        other = ".".join([parts[0], str(int(parts[1]) + 1), parts[2], parts[3]])
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="another cluster"):
            reader.execute(f"set pgregion.ryw_token = '{other}'")
        assert reader.execute("select 1").fetchone()[0] == 1, "the session goes on"
        assert reader.execute("show pgregion.ryw_token").fetchone()[0] == token
        reader.execute("reset pgregion.ryw_token")
        assert reader.execute("show pgregion.ryw_token").fetchone()[0] == ""
    # At startup.
    with connect(p, options=f"-c pgregion.ryw_token={token}") as c:
        assert c.execute("show pgregion.ryw_token").fetchone()[0] == token


def test_libpq_and_psql_see_the_token(cluster, start_proxy):
    """psql and libpq accept the ParameterStatus; psql's \\echo of the variable is
    not available for custom names, so read it the libpq way through psycopg's
    pgconn (PQparameterStatus) and check psql runs clean."""
    p = start_proxy(cluster)
    env = {"PGPASSWORD": "secret", "PATH": "/usr/lib/postgresql/15/bin:/usr/bin:/bin"}
    r = subprocess.run(["psql", "-X", "-v", "ON_ERROR_STOP=1", "-h", p.host, "-p", str(p.port),
                        "-U", "app", "-d", "appdb",
                        "-c", "create table if not exists ryw_psql(x int)",
                        "-c", "insert into ryw_psql values (1)",
                        "-c", "show pgregion.ryw_token"],
                       env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert "r1." in r.stdout and "WARNING" not in r.stderr and "ERROR" not in r.stderr
    with connect(p) as c:
        c.execute("insert into ryw_psql values (2)")
        assert c.pgconn.parameter_status(b"pgregion.ryw_token").startswith(b"r1.")


def test_pipelined_write_and_read_keep_reply_order(cluster, start_proxy):
    """A read pipelined behind a write: the write's ReadyForQuery is held for the
    probe, and the read's replies still come after it."""
    p = start_proxy(cluster)
    with connect(p) as c:
        c.execute("create table if not exists ryw_pipe(x int)")
    conn = pgwire.RawConn(p.host, p.port, timeout=20)
    assert conn.startup("app", "appdb", "secret")[-1].type == "Z"
    conn.send(pgwire.query_message("insert into ryw_pipe values (1)")
              + pgwire.query_message("select 42")
              + pgwire.query_message("insert into ryw_pipe values (2)"))
    types = []
    while types.count("Z") < 3:
        m = conn.read_message(timeout=10)
        assert m is not None
        types.append(m.type)
    # insert: C, S(token), Z; select: T, D, C, Z; insert: C, S, Z
    assert types == ["C", "S", "Z", "T", "D", "C", "Z", "C", "S", "Z"], types
    conn.close()
