"""Driver tests (issue 3): protocol-level prepared statements of real drivers through
pgregion in transaction pooling, on a primary + 2 streaming replicas.

- node-postgres (npm `pg`, tests/drivers/node/prepared.js): named queries, which pg
  Parses once per client connection and afterwards only Binds and Executes.
- pgjdbc (Debian libpostgresql-jdbc-java, tests/drivers/java/Prepared.java) with
  prepareThreshold=1: server-side statements S_n from the first execution, transactions
  with setAutoCommit(false), named portals (fetch size), setReadOnly(true).
(psycopg with prepare_threshold=0 is in test_routing.py.)

Each program runs several clients at once over a pool of 2 server connections per node,
so every statement name meets many server connections on all three nodes; the program
prints a JSON summary that the test checks against the database.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import subprocess
from pathlib import Path

import psycopg
import pytest

from conftest import connect
from test_routing import _wait_topology

CLUSTER_KW = {"replicas": 2}

DRIVERS = Path(__file__).resolve().parents[1] / "drivers"
NODE_DIR = DRIVERS / "node"
JAVA_SRC = DRIVERS / "java" / "Prepared.java"
PGJDBC_JAR = Path("/usr/share/java/postgresql.jar")
NPM_CI_TIMEOUT_S = 300
JAVAC_TIMEOUT_S = 120
RUN_TIMEOUT_S = 90
CLIENTS = 3
ITERATIONS = 200
POOL = {"mode": "transaction", "size": 2}
# Reads right after a session's own write may go to the primary at `causal` (the default)
# while a replica catches up; these tests check where statements run, so they read at
# `eventual` and allow an autocommit select of a just-inserted row to miss it.
ROUTING = {"consistency": "eventual"}


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found: scripts/packages.sh installs it (scripts/test.sh "
                    "does that first)", pytrace=False)
    return path


def _run(cmd: list[str], timeout: float, **kw) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, **kw)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{' '.join(cmd[:3])} ... did not finish within {timeout}s\n"
                    f"stdout: {e.stdout}\nstderr: {e.stderr}", pytrace=False)


@pytest.fixture(scope="session")
def node_modules() -> Path:
    """`npm ci` into tests/drivers/node/node_modules once per package-lock.json (a stamp
    file holds the lock's hash). A failed install fails the test."""
    node, npm = _tool("node"), _tool("npm")
    lock = NODE_DIR / "package-lock.json"
    digest = hashlib.sha256(lock.read_bytes()).hexdigest()
    stamp = NODE_DIR / "node_modules" / ".pgregion-lock-sha256"
    if not (stamp.exists() and stamp.read_text().strip() == digest):
        r = _run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], NPM_CI_TIMEOUT_S,
                 cwd=NODE_DIR)
        if r.returncode != 0:
            pytest.fail(f"npm ci in {NODE_DIR} failed (exit {r.returncode}):\n"
                        f"{r.stdout}\n{r.stderr}", pytrace=False)
        stamp.write_text(digest + "\n")
    r = _run([node, "-e", "console.log(require('pg/package.json').version)"], 30, cwd=NODE_DIR)
    assert r.returncode == 0 and r.stdout.startswith("8."), r.stdout + r.stderr
    return NODE_DIR / "node_modules"


@pytest.fixture(scope="session")
def java_classes(tmp_path_factory) -> Path:
    """Prepared.java compiled against Debian's pgjdbc into a temporary directory."""
    javac = _tool("javac")
    _tool("java")
    if not PGJDBC_JAR.exists():
        pytest.fail(f"{PGJDBC_JAR} missing: install libpostgresql-jdbc-java "
                    "(scripts/packages.sh)", pytrace=False)
    out = tmp_path_factory.mktemp("java-drivers")
    r = _run([javac, "-Xlint:all", "-Werror", "-d", str(out), "-cp", str(PGJDBC_JAR),
              str(JAVA_SRC)], JAVAC_TIMEOUT_S)
    if r.returncode != 0:
        pytest.fail(f"javac failed:\n{r.stdout}\n{r.stderr}", pytrace=False)
    return out


def _proxy_and_table(cluster, start_proxy, table: str):
    p = start_proxy(cluster, pool=POOL, routing=ROUTING)
    _wait_topology(p, cluster)
    with connect(p) as c:
        c.execute(f"drop table if exists {table}")
        c.execute(f"create table {table}(id bigserial primary key, v text not null)")
    cluster.wait_replay()  # the replicas know the table before the first read Parses there
    return p


def _summary(r: subprocess.CompletedProcess, p) -> dict:
    lines = [line for line in r.stdout.splitlines() if line.startswith("{")]
    assert r.returncode == 0 and lines, (f"driver program exit {r.returncode}\n"
                                         f"stdout: {r.stdout[-4000:]}\nstderr: "
                                         f"{r.stderr[-4000:]}\n{p.log_tail(60)}")
    s = json.loads(lines[-1])
    print({k: v for k, v in s.items() if k != "inserted_ids"})  # shown on failure or -s
    return s


def _check_common(s: dict, cluster, table: str, p) -> None:
    replica_ports = {r.port for r in cluster.replicas}
    primary_port = cluster.primary.port
    assert s["errors"] == [], "driver errors:\n" + "\n".join(s["errors"][:40]) + \
        "\n" + p.log_tail(60)

    # Every insert is in the table, once; nothing else is.
    with psycopg.connect(cluster.primary.dsn(dbname="appdb"), autocommit=True) as d:
        rows = {r[0] for r in d.execute(f"select id from {table}")}
    ids = [int(i) for i in s["inserted_ids"]]  # pg returns bigint as a string
    assert len(ids) == len(set(ids))
    tx_count = CLIENTS * len(range(0, ITERATIONS, 25))
    assert len(ids) == CLIENTS * ITERATIONS + tx_count + s.get("batch_inserts", 0)
    assert rows == set(ids)

    # Autocommit reads ran on the replicas (both of them), never on the primary.
    w = s["autocommit_where"]
    assert w["in_recovery"] == CLIENTS * ITERATIONS and w["not_in_recovery"] == 0, w
    assert {int(port) for port in w["ports"]} == replica_ports, w

    # A named select of the row just inserted: found, or not replayed yet; never another row.
    assert s["sel_wrong"] == 0
    assert s["sel_found"] + s["sel_missing"] == CLIENTS * ITERATIONS
    # Once replayed, the same named select on the replicas returns the rows.
    assert s["verify"]["total"] == 50 and s["verify"]["found"] == 50, s["verify"]

    # An error inside a named statement, then the same statement again.
    divs = CLIENTS * len(range(0, ITERATIONS, 20))
    assert s["expected_errors"] == divs and s["div_ok"] == divs, s

    # Read-write transactions: on the primary, and they see their own write.
    assert len(s["tx"]) == tx_count
    # A row-limited named query inside (several Execute messages on one portal).
    for t in s["tx"]:
        assert t["saw_own_write"] and t["in_recovery"] is False and t["port"] == primary_port, t
        assert t["committed"] and t["series_sum"] == 50 * 51 // 2, t
    # Read-only transactions: on a replica.
    assert len(s["ro_tx"]) == tx_count
    for t in s["ro_tx"]:
        assert t["in_recovery"] is True and t["port"] in replica_ports, t
        assert t["series_sum"] == 30 * 31 // 2, t


@pytest.mark.timeout(180)  # includes a first `npm ci`; the run itself takes seconds
def test_node_postgres_named_queries(cluster, start_proxy, node_modules):
    table = "drv_node"
    p = _proxy_and_table(cluster, start_proxy, table)
    cfg = {"host": p.host, "port": p.port, "user": "app", "password": p.client_password("app"),
           "database": "appdb", "table": table, "clients": CLIENTS, "iterations": ITERATIONS}
    r = _run([_tool("node"), str(NODE_DIR / "prepared.js"), json.dumps(cfg)], RUN_TIMEOUT_S,
             cwd=NODE_DIR)
    s = _summary(r, p)
    _check_common(s, cluster, table, p)
    # Autocommit row-limited named queries: Execute with a limit + Flush, PortalSuspended,
    # Execute again, ..., then Sync, all on the server connection of the first Execute.
    assert s["series_bad"] == [] and s["series_ok"] == CLIENTS * len(range(0, ITERATIONS, 10))


@pytest.mark.timeout(180)
def test_pgjdbc_server_prepared_statements(cluster, start_proxy, java_classes):
    table = "drv_jdbc"
    p = _proxy_and_table(cluster, start_proxy, table)
    cp = f"{java_classes}:{PGJDBC_JAR}"
    r = _run([_tool("java"), "-Xmx256m", "-XX:+UseSerialGC", "-cp", cp, "Prepared", p.host,
              str(p.port), "app", p.client_password("app"), "appdb", table, str(CLIENTS),
              str(ITERATIONS)], RUN_TIMEOUT_S)
    s = _summary(r, p)
    _check_common(s, cluster, table, p)
    # (In transactions, series_sum came from a fetch size: a named portal C_n.)
    # executeBatch with generated keys: one Sync behind all the rows' Bind/Execute.
    assert s["batch_inserts"] == CLIENTS * len(range(0, ITERATIONS, 10)) * 5
    # A statement cache of 4 over 40 statements: Close of evicted statements, and
    # Describe(S) from getParameterMetaData, all answered right, reads on replicas.
    assert s["churn_ok"] == 2 * 40 * 3
    # setReadOnly(true), readOnlyMode=transaction (the default): autocommit reads as usual.
    ro = s["read_only_autocommit"]
    assert ro == {"replica": len(s["ro_tx"]), "primary": 0}, ro
    # readOnlyMode=always: SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY follows the
    # session to every server connection: reads on replicas, writes refused by Postgres.
    always = s["always_mode"]
    always_iterations = max(20, ITERATIONS // 5)
    assert always["replica"] == always_iterations and always["primary"] == 0, always
    assert always["write_refused"] == math.ceil(always_iterations / 10), always
