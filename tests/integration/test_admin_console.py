"""The admin console (issue 6): the virtual database `pgregion`, for [[users]] with
admin = true, answers SHOW NODES/POOLS/CLIENTS/SERVERS/STATS/CONFIG in SQL and
PAUSE/RESUME [node]; psql works against it."""

from __future__ import annotations

import subprocess
import threading
import time

import psycopg
import pytest

from cluster import free_port
from conftest import connect, pg_env

CLUSTER_KW = {"replicas": 1}
ADMIN = {"name": "ops", "password": "ops-pw-xyz", "auth": "scram-sha-256", "admin": True}


def users(cluster) -> list[dict]:
    # The first entry's credentials are the health checker's: keep the cluster's user first.
    return [{"name": u, "password": pw, "auth": "scram-sha-256"}
            for u, pw in cluster.users.items()] + [ADMIN]


@pytest.fixture
def proxy(cluster, start_proxy):
    return start_proxy(cluster, users=users(cluster), health={"interval_ms": 200})


def psql(p, sql: str, user: str = "ops", password: str = ADMIN["password"],
         check: bool = True) -> subprocess.CompletedProcess:
    cp = subprocess.run(["psql", "-X", "-A", "-F", "|", "-P", "footer=off", "-v",
                         "ON_ERROR_STOP=1", "-h", p.host, "-p", str(p.port), "-U", user,
                         "-d", "pgregion", "-c", sql],
                        env=pg_env(password), capture_output=True, text=True, timeout=30)
    if check:
        assert cp.returncode == 0, cp.stdout + cp.stderr
    return cp


def table(cp: subprocess.CompletedProcess) -> list[dict]:
    lines = cp.stdout.strip().splitlines()
    header = lines[0].split("|")
    return [dict(zip(header, line.split("|"))) for line in lines[1:]]


def console(p, **kw) -> psycopg.Connection:
    """psycopg on the console: simple protocol through ClientCursor."""
    return psycopg.connect(p.dsn(user="ops", password=ADMIN["password"], dbname="pgregion"),
                           autocommit=True, cursor_factory=psycopg.ClientCursor, **kw)


def wait_roles(p) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        rows = table(psql(p, "SHOW NODES"))
        if sorted(r["role"] for r in rows) == ["primary", "replica"]:
            return
        time.sleep(0.1)
    raise AssertionError("roles never discovered")


def test_show_nodes_with_psql(cluster, proxy):
    wait_roles(proxy)
    rows = {r["name"]: r for r in table(psql(proxy, "show nodes;"))}
    assert set(rows) == {"primary", "replica1"}
    pr, rep = rows["primary"], rows["replica1"]
    assert (pr["role"], pr["primary"], pr["up"], pr["health"]) == ("primary", "yes", "yes", "up")
    assert (rep["role"], rep["primary"], rep["up"]) == ("replica", "no", "yes")
    assert int(pr["port"]) == cluster.primary.port
    assert float(pr["rtt_ms"]) > 0
    assert "/" in pr["lsn"] and "/" in rep["lsn"]
    assert rep["lag_bytes"].isdigit() and pr["lag_bytes"] == ""


def test_pools_clients_servers_stats(cluster, proxy):
    wait_roles(proxy)
    with connect(proxy, application_name="busy-app") as busy, connect(proxy) as other:
        busy.execute("begin read write")  # on the primary (not an optimistic one)
        busy.execute("select 1")
        for _ in range(3):
            other.execute("select 1")
        other.execute("create temporary table if not exists x (a int)")  # a write, pins
        pools = table(psql(proxy, "SHOW POOLS"))
        primary = [r for r in pools if r["node"] == "primary" and r["database"] == "appdb"]
        assert primary and primary[0]["user"] == "app"
        assert int(primary[0]["cl_active"]) >= 1 and int(primary[0]["sv_active"]) >= 1
        assert primary[0]["pool_size"] == "20" and primary[0]["pool_mode"] == "transaction"

        clients = table(psql(proxy, "SHOW CLIENTS"))
        me = [c for c in clients if c["database"] == "pgregion"]
        assert len(me) == 1 and me[0]["user"] == "ops" and me[0]["state"] == "idle"
        busy_row = [c for c in clients if c["application_name"] == "busy-app"]
        assert len(busy_row) == 1
        assert busy_row[0]["state"] == "active" and busy_row[0]["node"] == "primary"
        assert busy_row[0]["addr"] == "127.0.0.1" and busy_row[0]["port"].isdigit()

        servers = table(psql(proxy, "SHOW SERVERS"))
        active = [s for s in servers if s["state"] == "active"]
        assert any(s["client_pid"] == busy_row[0]["pid"] for s in active), (servers, busy_row)
        assert all(s["remote_pid"].isdigit() for s in servers if s["state"] != "login")

        stats = {(r["node"], r["role"], r["reason"]): int(r["units"])
                 for r in table(psql(proxy, "SHOW STATS"))}
        assert stats[("replica1", "replica", "read")] >= 3
        assert stats[("primary", "primary", "transaction")] >= 1
        busy.execute("rollback")


def test_show_config_hides_secrets(cluster, start_proxy):
    p = start_proxy(cluster, users=users(cluster),
                    admin={"listen": f"127.0.0.1:{free_port()}",
                           "bearer_token": "tok-secret-123"})
    out = psql(p, "SHOW CONFIG").stdout
    rows = {r["key"]: r["value"] for r in table(psql(p, "SHOW CONFIG"))}
    assert rows["proxy.region"] == "local"
    assert rows["pool.size"] == "20"
    assert rows["admin.bearer_token"] == "(set)"
    assert rows["users.ops"].endswith("admin=true")
    assert rows["nodes.replica1"].startswith("region=local")
    for secret in ("tok-secret-123", ADMIN["password"], "secret"):
        assert secret not in out


def test_help_version_and_errors(cluster, proxy):
    assert "SHOW NODES" in psql(proxy, "SHOW HELP").stdout
    assert "pgregion" in psql(proxy, "show version").stdout
    cp = psql(proxy, "SELECT 1", check=False)
    assert cp.returncode != 0 and "unknown command" in cp.stderr
    cp = psql(proxy, "SHOW TABLES", check=False)
    assert "unknown SHOW object" in cp.stderr
    with console(proxy) as c:
        with pytest.raises(psycopg.errors.SyntaxError):
            c.execute("SHOW NOTHING")
        # The session goes on after an error.
        assert c.execute("SHOW VERSION").fetchone()[0].startswith("pgregion ")
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="no node named"):
            c.execute("PAUSE nosuchnode")
        c.execute("RELOAD")  # the file is unchanged: nothing to do, no error
        assert len(c.execute("SHOW NODES").fetchall()) == 2
        c.execute("")  # empty query
    # The extended protocol is refused, the connection stays usable.
    with psycopg.connect(proxy.dsn(user="ops", password=ADMIN["password"], dbname="pgregion"),
                         autocommit=True) as c:
        with pytest.raises(psycopg.errors.FeatureNotSupported):
            c.execute("SHOW NODES", prepare=True)
        with pytest.raises(psycopg.errors.FeatureNotSupported):
            c.execute("SHOW %s", ["NODES"])  # parameters: Parse/Bind/Execute
        assert c.execute("SHOW VERSION").fetchone()[0].startswith("pgregion ")  # simple Query


def test_console_only_for_admins(cluster, proxy):
    cp = psql(proxy, "SHOW NODES", user="app", password=cluster.users["app"], check=False)
    assert cp.returncode != 0 and "admin = true" in cp.stderr
    cp = psql(proxy, "SHOW NODES", password="wrong", check=False)
    assert cp.returncode != 0 and "password authentication failed" in cp.stderr
    # An admin user is an ordinary user elsewhere: the console is not a backend database.
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(proxy.dsn(user="ops", password=ADMIN["password"], dbname="appdb")).close()


# ---- PAUSE / RESUME

def paused(p) -> dict[str, str]:
    return {r["name"]: r["paused"] for r in table(psql(p, "SHOW NODES"))}


def pooled_backends(node) -> int:
    """The proxy's pooled connections of user `app` on `node` (not its health probe)."""
    return int(node.psql("select count(*) from pg_stat_activity where usename = 'app' and "
                         "backend_type = 'client backend' and "
                         "application_name <> 'pgregion-health'").strip())


def wait_for(what: str, predicate, timeout: float = 20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class Background:
    """Runs `fn` in a thread; `result()` waits for its value or re-raises its error."""

    def __init__(self, fn):
        self.value = self.error = None
        self.started = time.monotonic()
        self.elapsed = None
        self.thread = threading.Thread(target=self._run, args=(fn,), daemon=True)
        self.thread.start()

    def _run(self, fn):
        try:
            self.value = fn()
        except Exception as e:  # noqa: BLE001 - handed to the test
            self.error = e
        self.elapsed = time.monotonic() - self.started

    def done(self) -> bool:
        return not self.thread.is_alive()

    def result(self, timeout: float = 30):
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "still running"
        if self.error is not None:
            raise self.error
        return self.value


PORT = "select inet_server_port()"


def test_pause_and_resume_a_replica(cluster, proxy):
    wait_roles(proxy)
    replica = cluster.replicas[0]
    with connect(proxy) as c:
        wait_for("a read on the replica", lambda: c.execute(PORT).fetchone()[0] == replica.port)
        assert pooled_backends(replica) >= 1
        assert psql(proxy, "PAUSE replica1").stdout.strip() == "PAUSE"
        assert paused(proxy) == {"primary": "no", "replica1": "yes"}
        # No new units there: reads go to the primary; its idle connections closed.
        for _ in range(20):
            assert c.execute(PORT).fetchone()[0] == cluster.primary.port
        wait_for("replica1's idle connections closed", lambda: pooled_backends(replica) == 0)
        assert psql(proxy, "resume replica1;").stdout.strip() == "RESUME"
        assert paused(proxy) == {"primary": "no", "replica1": "no"}
        wait_for("reads back on the replica",
                 lambda: c.execute(PORT).fetchone()[0] == replica.port)
    assert "event=node_paused node=replica1" in proxy.log_text()
    assert "event=node_resumed node=replica1" in proxy.log_text()


def test_pause_primary_writes_wait_for_resume(cluster, proxy):
    wait_roles(proxy)
    with connect(proxy) as c:
        c.execute("create table if not exists pause_t (x int)")
    cluster.wait_replay()
    psql(proxy, "PAUSE primary")
    try:
        write = Background(lambda: _write(proxy, 1))
        # Reads go on meanwhile, on the replica.
        with connect(proxy) as c:
            assert c.execute(PORT).fetchone()[0] == cluster.replicas[0].port
        time.sleep(1.0)
        assert not write.done(), "a write went through while the primary was paused"
    finally:
        psql(proxy, "RESUME primary")
    assert write.result() == cluster.primary.port
    assert write.elapsed >= 0.9


def _write(p, x: int) -> int:
    with connect(p) as c:
        return c.execute("insert into pause_t values (%s) returning inet_server_port()",
                         [x]).fetchone()[0]


def test_pause_primary_beyond_write_wait_fails_clearly(cluster, start_proxy):
    p = start_proxy(cluster, users=users(cluster), health={"interval_ms": 200},
                    failover={"write_wait_ms": 800})
    wait_roles(p)
    with connect(p) as c:
        c.execute("create table if not exists pause_t (x int)")
    psql(p, "PAUSE primary")
    try:
        with connect(p) as c:
            with pytest.raises(psycopg.OperationalError, match="paused"):
                c.execute("insert into pause_t values (2)")
    finally:
        psql(p, "RESUME primary")
    assert _write(p, 3) == cluster.primary.port


def test_pause_all_lets_running_transactions_finish(cluster, proxy):
    wait_roles(proxy)
    with connect(proxy) as c:
        c.execute("create table if not exists pause_t (x int)")
    with connect(proxy, autocommit=False) as tx:
        tx.execute("insert into pause_t values (10)")  # bound to the primary, in a transaction
        assert psql(proxy, "PAUSE").stdout.strip() == "PAUSE"
        assert paused(proxy) == {"primary": "yes", "replica1": "yes"}
        read = Background(lambda: _read(proxy))
        # The running transaction goes on and commits.
        tx.execute("insert into pause_t values (11)")
        tx.commit()
        time.sleep(1.0)
        assert not read.done(), "a new unit ran while everything was paused"
        wait_for("the primary's connections closed", lambda: pooled_backends(cluster.primary) == 0)
        psql(proxy, "RESUME")
    assert read.result() in {cluster.primary.port, cluster.replicas[0].port}
    assert paused(proxy) == {"primary": "no", "replica1": "no"}
    with connect(proxy) as c:
        assert c.execute("select count(*) from pause_t where x in (10, 11)",
                         prepare=False).fetchone()[0] in (0, 2)  # a replica may lag: never 1
        assert c.execute("/* pgregion: route=primary */ select count(*) from pause_t "
                         "where x in (10, 11)").fetchone()[0] == 2


def _read(p) -> int:
    with connect(p) as c:
        return c.execute(PORT).fetchone()[0]
