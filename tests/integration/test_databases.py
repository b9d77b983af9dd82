"""Databases created and dropped through pgregion (issue 18, parts 2 and 3).

A read in a database created a moment ago may be routed to a replica that has not
replayed the CREATE DATABASE yet: the replica refuses the login (3D000), and the
read goes to the primary instead (the unit was sent nowhere), and that replica is
skipped for that database for a while. DROP DATABASE, ALTER DATABASE ... RENAME
and CREATE DATABASE ... TEMPLATE x succeed through pgregion as they do directly:
pgregion closes its own idle server connections to the databases concerned first.
A login failure that reaches the client is an ErrorResponse with PostgreSQL's
SQLSTATE, never a bare close."""

from __future__ import annotations

import re
import subprocess
import time

import psycopg
import pytest

import pgwire
from conftest import pg_env
from test_routing import _wait_topology, connect

CLUSTER_KW = {"replicas": 1}

RACE_ROUNDS = 100
RACE_BUDGET_S = 200.0


@pytest.fixture(scope="module", autouse=True)
def _app_creates_databases(cluster):
    cluster.primary.psql("ALTER ROLE app CREATEDB")


@pytest.fixture
def start_proxy(start_proxy, cluster):  # noqa: F811: wraps conftest's factory
    def start(*args, **kw):
        kw.setdefault("health", {"interval_ms": 200, "recover_hold_s": 1})
        p = start_proxy(*args, **kw)
        _wait_topology(p, cluster)
        return p
    return start


def _drop_directly(cluster, name):
    cluster.primary.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _exists(cluster, name) -> bool:
    out = cluster.primary.psql(f"SELECT count(*) FROM pg_database WHERE datname = '{name}'")
    return out.strip() == "1"


def _use(p, dbname, reads=3):
    """A client that uses `dbname` through pgregion (reads on the replica, a write on
    the primary, so both pools hold a connection) and leaves."""
    with connect(p, dbname=dbname) as c:
        c.execute("CREATE TABLE IF NOT EXISTS t (x int)")
        c.execute("INSERT INTO t VALUES (1)")
        for _ in range(reads):
            c.execute("SELECT count(*) FROM pg_class").fetchone()


def _server_connections(cluster, dbname, user="app"):
    return sum(len(n.backend_pids(user=user, dbname=dbname)) for n in cluster.nodes)


def _login_error(p, dbname, user="app", query_if_welcomed=False):
    """The messages a raw client gets for a login to `dbname` through pgregion (and,
    if it was welcomed and `query_if_welcomed`, for a first query)."""
    with pgwire.RawConn(p.host, p.port) as raw:
        got = raw.startup(user, dbname, p.client_password(user))
        if query_if_welcomed and got and got[-1].type == "Z":
            raw.send(pgwire.query_message("SELECT 1"))
        tail, closed = raw.messages_until_closed(timeout=5)
        return got + tail, closed


def test_create_then_read_100_times(cluster, start_proxy):
    """The fresh-database race: CREATE DATABASE through pgregion, then at once a new
    client reads in it (routed to the replica, which may not have it yet)."""
    p = start_proxy(cluster)
    served = {"primary": 0, "replica": 0}
    started = time.monotonic()
    done = 0
    with connect(p) as admin:
        for i in range(RACE_ROUNDS):
            if time.monotonic() - started > RACE_BUDGET_S:
                break
            name = f"race_{i}"
            admin.execute(f"DROP DATABASE IF EXISTS {name}")
            admin.execute(f"CREATE DATABASE {name}")
            with connect(p, dbname=name) as c:
                in_recovery = c.execute("SELECT pg_is_in_recovery()").fetchone()[0]
                served["replica" if in_recovery else "primary"] += 1
            admin.execute(f"DROP DATABASE {name}")
            done += 1
    elapsed = time.monotonic() - started
    log = p.log_text()
    refused = len(re.findall(r"node_lacks_database", log))
    print(f"\nrace: {done} rounds in {elapsed:.1f} s; reads served by the replica "
          f"{served['replica']}, by the primary {served['primary']}; replica refusals "
          f"re-routed: {refused}")
    assert done == RACE_ROUNDS, f"only {done} rounds in {RACE_BUDGET_S} s"
    # Every refusal the log names came with the server's reason.
    for line in log.splitlines():
        if "server_login_failed" in line and "3D000" not in line:
            pytest.fail(f"a login failed for another reason: {line}")
    for line in log.splitlines():
        if "server_login_failed" in line:
            assert "does not exist" in line, line


def test_missing_role_on_replica_is_not_a_client_error(cluster, start_proxy):
    """A role created (on the primary) and used through pgregion at once: a replica that has not
    replayed CREATE ROLE refuses the login (28000); the read goes to the primary."""
    users = [{"name": u, "password": pw, "auth": "scram-sha-256"}
             for u, pw in cluster.users.items()]
    rounds = 20
    users += [{"name": f"late_{i}", "password": "pw", "auth": "scram-sha-256"}
              for i in range(rounds)]
    p = start_proxy(cluster, users=users)
    for i in range(rounds):
        role = f"late_{i}"
        cluster.primary.psql(f"DROP ROLE IF EXISTS {role}")
        cluster.primary.psql(f"CREATE ROLE {role} LOGIN PASSWORD 'pw'")
        with connect(p, user=role, password="pw") as c:
            assert c.execute("SELECT 1").fetchone()[0] == 1
    for i in range(rounds):
        cluster.primary.psql(f"DROP ROLE IF EXISTS late_{i}")


def test_drop_after_use(cluster, start_proxy):
    p = start_proxy(cluster, pool={"idle_timeout_s": 600})
    _drop_directly(cluster, "dropme")
    with connect(p) as admin:
        admin.execute("CREATE DATABASE dropme")
    _use(p, "dropme")
    # pgregion keeps idle server connections to it (idle_timeout_s = 600).
    assert _server_connections(cluster, "dropme") >= 1
    with connect(p) as admin:
        t0 = time.monotonic()
        admin.execute("DROP DATABASE dropme")
        took = time.monotonic() - t0
    assert not _exists(cluster, "dropme")
    print(f"\nDROP DATABASE after use: {took * 1000:.0f} ms")
    assert "database_vacated" in p.log_text()
    # A later login to it gets PostgreSQL's error, not a bare close.
    msgs, _ = _login_error(p, "dropme")
    errors = [m for m in msgs if m.type == "E"]
    assert errors and errors[0].sqlstate == "3D000", msgs


def test_drop_with_psql_simple_protocol(cluster, start_proxy):
    p = start_proxy(cluster, pool={"idle_timeout_s": 600})
    _drop_directly(cluster, "dropme_psql")
    with connect(p) as admin:
        admin.execute("CREATE DATABASE dropme_psql")
    _use(p, "dropme_psql")
    assert _server_connections(cluster, "dropme_psql") >= 1
    out = subprocess.run(["psql", "-X", "-v", "ON_ERROR_STOP=1", p.url(),
                          "-c", "DROP DATABASE dropme_psql"],
                         env=pg_env(), capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert not _exists(cluster, "dropme_psql")


def test_drop_while_another_client_uses_it_fails_as_directly(cluster, start_proxy):
    """Connections in use by other clients are left alone: the DROP fails after
    PostgreSQL's 5 s wait, as it would directly; the other client goes on."""
    p = start_proxy(cluster)
    _drop_directly(cluster, "busy")
    with connect(p) as admin:
        admin.execute("CREATE DATABASE busy")
    with connect(p, dbname="busy") as user:
        user.execute("BEGIN")
        user.execute("CREATE TABLE t (x int)")  # holds its server connection
        with connect(p) as admin:
            with pytest.raises(psycopg.errors.ObjectInUse):
                admin.execute("DROP DATABASE busy")
        user.execute("COMMIT")
        assert user.execute("SELECT count(*) FROM t").fetchone()[0] == 0
    with connect(p) as admin:
        admin.execute("DROP DATABASE busy")


def test_rename(cluster, start_proxy):
    p = start_proxy(cluster, pool={"idle_timeout_s": 600})
    for name in ("old_name", "new_name"):
        _drop_directly(cluster, name)
    with connect(p) as admin:
        admin.execute("CREATE DATABASE old_name")
    _use(p, "old_name")
    assert _server_connections(cluster, "old_name") >= 1
    with connect(p) as admin:
        admin.execute("ALTER DATABASE old_name RENAME TO new_name")
    assert _exists(cluster, "new_name") and not _exists(cluster, "old_name")
    with connect(p, dbname="new_name") as c:
        assert c.execute("SELECT count(*) FROM t").fetchone()[0] == 1
    msgs, _ = _login_error(p, "old_name")
    errors = [m for m in msgs if m.type == "E"]
    assert errors and errors[0].sqlstate == "3D000", msgs
    with connect(p) as admin:
        admin.execute("DROP DATABASE new_name")


def test_create_from_template_in_use(cluster, start_proxy):
    p = start_proxy(cluster, pool={"idle_timeout_s": 600})
    for name in ("tmpl_src", "tmpl_copy"):
        _drop_directly(cluster, name)
    with connect(p) as admin:
        admin.execute("CREATE DATABASE tmpl_src")
    _use(p, "tmpl_src")
    assert _server_connections(cluster, "tmpl_src") >= 1
    with connect(p) as admin:
        admin.execute("CREATE DATABASE tmpl_copy TEMPLATE tmpl_src")
    with connect(p, dbname="tmpl_copy") as c:
        assert c.execute("SELECT count(*) FROM t").fetchone()[0] == 1
    # The source is usable through pgregion again at once.
    with connect(p, dbname="tmpl_src") as c:
        assert c.execute("SELECT count(*) FROM t").fetchone()[0] == 1
    with connect(p) as admin:
        admin.execute("DROP DATABASE tmpl_copy")
        admin.execute("DROP DATABASE tmpl_src")


def test_login_to_missing_database_gets_error_response(cluster, start_proxy):
    p = start_proxy(cluster)
    for attempt in range(3):  # the first login (kLoginWait) and the ones after it
        msgs, closed = _login_error(p, "no_such_db")
        errors = [m for m in msgs if m.type == "E"]
        assert errors, f"attempt {attempt}: closed without an ErrorResponse: {msgs}"
        assert errors[0].sqlstate == "3D000"
        assert 'database "no_such_db" does not exist' in errors[0].error_fields()["M"]
        assert closed
    with pytest.raises(psycopg.OperationalError) as e:
        connect(p, dbname="no_such_db")
    assert "does not exist" in str(e.value)
    assert re.search(r"server_login_failed.*sqlstate=3D000", p.log_text())


def test_dropped_behind_pgregions_back(cluster, start_proxy):
    """Dropped directly (FORCE ends pgregion's idle connections): a login through
    pgregion gets 3D000; once it exists again, the pools serve it again."""
    p = start_proxy(cluster, pool={"idle_timeout_s": 600, "min_idle": 1})
    _drop_directly(cluster, "behind")
    cluster.primary.psql("CREATE DATABASE behind OWNER app")
    _use(p, "behind")
    _drop_directly(cluster, "behind")
    # The drop ended pgregion's idle connections; if pgregion has not seen that
    # yet when the first client comes, that client is welcomed and its first
    # statement gets the 3D000 (an ErrorResponse either way).
    for attempt in range(2):
        msgs, _ = _login_error(p, "behind", query_if_welcomed=attempt == 0)
        errors = [m for m in msgs if m.type == "E"]
        assert errors and errors[0].sqlstate == "3D000", msgs
    cluster.primary.psql("CREATE DATABASE behind OWNER app")
    deadline = time.monotonic() + 10
    while True:
        try:
            with connect(p, dbname="behind") as c:
                assert c.execute("SELECT 1").fetchone()[0] == 1
                break
        except psycopg.OperationalError:
            assert time.monotonic() < deadline, "the pools for a recreated database still fail"
            time.sleep(0.1)
    with connect(p) as admin:
        admin.execute("DROP DATABASE behind")
