"""Observability (issue 6): the admin HTTP endpoint (/metrics, /health, /ready,
/status), scraped by a real Prometheus while pgbench runs through pgregion, and
/ready following a failover."""

from __future__ import annotations

import http.client
import json
import re
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
from pathlib import Path

import psycopg
import pytest

from cluster import Cluster, free_port
from conftest import connect, pg_env
from pgregion import Pgregion

CLUSTER_KW = {"replicas": 1}
TOKEN = "obs-token-123"
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
REPO = Path(__file__).resolve().parents[2]


def http_get(port: int, path: str, headers: dict | None = None, method: str = "GET",
             timeout: float = 10) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def raw_request(port: int, data: bytes, timeout: float = 10) -> bytes:
    """Sends raw bytes; returns the response (head and Content-Length bytes of body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        while True:
            head, sep, body = out.partition(b"\r\n\r\n")
            if sep:
                m = re.search(rb"Content-Length: (\d+)", head)
                if m and len(body) >= int(m.group(1)):
                    return out
            chunk = s.recv(65536)
            if not chunk:
                return out
            out += chunk


def status_line(response: bytes) -> str:
    return response.split(b"\r\n", 1)[0].decode()


def wait_until(what: str, predicate, timeout: float = 30, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def metric_values(text: str, name: str) -> dict[str, float]:
    """{'{labels}': value} for every sample of `name` in Prometheus text."""
    out = {}
    for line in text.splitlines():
        m = re.match(rf"^{re.escape(name)}(\{{[^}}]*\}})? (\S+)$", line)
        if m:
            out[m.group(1) or ""] = float(m.group(2))
    return out


def metrics(port: int) -> str:
    status, _, body = http_get(port, "/metrics")
    assert status == 200
    return body.decode()


def routed_by_role(port: int) -> dict[str, float]:
    sums: dict[str, float] = {"primary": 0.0, "replica": 0.0}
    for labels, v in metric_values(metrics(port), "pgregion_routed_total").items():
        role = re.search(r'role="(\w+)"', labels).group(1)
        sums[role] += v
    return sums


def start_admin_proxy(start_proxy, cluster, token: str | None = TOKEN, **kw) -> Pgregion:
    admin_port = free_port()
    admin = {"listen": f"127.0.0.1:{admin_port}"}
    if token:
        admin["bearer_token"] = token
    kw["health"] = {"interval_ms": 200, **kw.get("health", {})}
    p = start_proxy(cluster, admin=admin, **kw)
    p.admin_port = admin_port
    wait_until("/ready", lambda: http_get(admin_port, "/ready")[0] == 200)
    return p


def test_health_ready_metrics_status(cluster, start_proxy):
    p = start_admin_proxy(start_proxy, cluster)
    port = p.admin_port

    status, headers, body = http_get(port, "/health")
    assert (status, body) == (200, b"ok\n")
    assert headers["content-type"].startswith("text/plain")
    assert headers["connection"] == "close"

    status, _, body = http_get(port, "/ready")
    assert (status, body) == (200, b"ready\n")

    # Traffic of both kinds: a write on the primary, reads on the replica.
    with connect(p) as c:
        c.execute("create table if not exists obs_t (x int)")
        c.execute("insert into obs_t values (1)")
    # Another session: the writer's own reads may go to the primary until the replica
    # has replayed its writes (causal consistency).
    with connect(p) as c:
        for _ in range(5):
            c.execute("select 1").fetchone()

    status, headers, body = http_get(port, "/metrics")
    assert status == 200
    assert headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = body.decode()
    for family in ("client_connections", "server_connections", "routed_total",
                   "query_duration_seconds", "pool_wait_seconds", "node_up", "node_is_primary",
                   "node_rtt_seconds", "replica_lag_bytes", "replica_lag_seconds",
                   "ryw_wait_seconds", "ryw_fallbacks_total", "read_retries_total",
                   "ryw_tokens_total", "reads_after_write_total", "tenant_reads_total",
                   "tenant_map_entries", "tenant_map_refresh_errors_total",
                   "tenant_map_age_seconds", "failovers_total", "errors_total", "build_info"):
        assert f"# TYPE pgregion_{family} " in text, family
    routed = metric_values(text, "pgregion_routed_total")
    assert routed['{node="primary",region="local",role="primary",reason="write"}'] >= 2
    assert routed['{node="replica1",region="local",role="replica",reason="read"}'] >= 5
    assert metric_values(text, "pgregion_node_up") == {
        '{node="primary",region="local"}': 1.0, '{node="replica1",region="local"}': 1.0}
    assert metric_values(text, "pgregion_node_is_primary")[
        '{node="primary",region="local"}'] == 1.0
    assert list(metric_values(text, "pgregion_replica_lag_bytes")) == [
        '{node="replica1",region="local"}']
    durations = metric_values(text, "pgregion_query_duration_seconds_count")
    assert durations['{region="local",role="replica"}'] >= 5
    assert durations['{region="local",role="primary"}'] >= 2
    assert metric_values(text, "pgregion_build_info")  # {version="..."} 1

    # /status needs the token.
    status, headers, body = http_get(port, "/status")
    assert status == 401
    assert headers["www-authenticate"].startswith("Bearer")
    assert http_get(port, "/status", {"Authorization": "Bearer wrong"})[0] == 401
    assert http_get(port, "/status", {"Authorization": f"Basic {TOKEN}"})[0] == 401
    status, headers, body = http_get(port, "/status", {"Authorization": f"Bearer {TOKEN}"})
    assert status == 200
    assert headers["content-type"] == "application/json"
    doc = json.loads(body)
    assert doc["region"] == "local"
    assert doc["ready"] is True and doc["ready_reason"] is None
    assert doc["primary"] == "primary"
    assert doc["primary_state"] == "one"
    assert doc["failovers"] == 0
    assert isinstance(doc["recent_changes"], list)
    nodes = {n["name"]: n for n in doc["nodes"]}
    assert set(nodes) == {"primary", "replica1"}
    pr, rep = nodes["primary"], nodes["replica1"]
    assert (pr["role"], pr["up"], pr["is_primary"]) == ("primary", True, True)
    assert (rep["role"], rep["up"], rep["is_primary"]) == ("replica", True, False)
    assert pr["port"] == cluster.primary.port and rep["port"] == cluster.replicas[0].port
    assert re.fullmatch(r"[0-9A-F]+/[0-9A-F]+", pr["insert_lsn"])
    assert re.fullmatch(r"[0-9A-F]+/[0-9A-F]+", rep["replay_lsn"])
    assert pr["replay_lsn"] is None and rep["insert_lsn"] is None
    assert isinstance(rep["lag_bytes"], int) and isinstance(rep["lag_seconds"], float)
    assert pr["lag_bytes"] is None
    assert pr["rtt_ms"] > 0 and rep["rtt_ms"] > 0
    for n in (pr, rep):
        assert n["health"] == "up"
        assert set(n["servers"]) == {"total", "idle", "active", "connecting", "waiters"}
        assert n["servers"]["total"] >= 1
        assert n["pools"][0]["database"] == "appdb" and n["pools"][0]["user"] == "app"
        assert n["pools"][0]["size"] == 20
    assert set(doc["clients"]) == {"login", "idle", "waiting", "active", "total"}

    # HEAD: the head only.
    status, headers, body = http_get(port, "/metrics", method="HEAD")
    assert status == 200 and body == b"" and int(headers["content-length"]) > 0


def test_errors_are_counted(cluster, start_proxy):
    p = start_admin_proxy(start_proxy, cluster, token=None)
    before = metric_values(metrics(p.admin_port), "pgregion_errors_total")
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(p.dsn(password="wrong")).close()
    after = metric_values(metrics(p.admin_port), "pgregion_errors_total")
    assert after['{kind="auth_failed"}'] == before['{kind="auth_failed"}'] + 1
    # Without a token /status is open.
    status, _, body = http_get(p.admin_port, "/status")
    assert status == 200 and json.loads(body)["region"] == "local"


def test_bad_requests_never_crash(cluster, start_proxy):
    p = start_admin_proxy(start_proxy, cluster)
    port = p.admin_port
    assert http_get(port, "/nope")[0] == 404
    assert http_get(port, "/")[0] == 404
    status, headers, _ = http_get(port, "/metrics", method="POST")
    assert status == 405 and headers["allow"] == "GET, HEAD"
    assert http_get(port, "/status", method="DELETE",
                    headers={"Authorization": f"Bearer {TOKEN}"})[0] == 405
    cases = {
        b"GARBAGE\r\n\r\n": "400",
        b"GET /metrics\r\n\r\n": "400",
        b"GET metrics HTTP/1.1\r\n\r\n": "400",
        b"GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n": "400",
        b"GET /metrics HTTP/2.0\r\n\r\n": "505",
        b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n": "431",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(256)) + b"\r\n\r\n": "400",
    }
    for data, code in cases.items():
        line = status_line(raw_request(port, data))
        assert line.startswith(f"HTTP/1.1 {code} "), (data[:40], line)
    # A request split into many small writes is still one request.
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        for b in b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n":
            s.sendall(bytes([b]))
        assert status_line(s.recv(4096)) == "HTTP/1.1 200 OK"
    # Clients that connect and leave, or send half a request and leave.
    for _ in range(20):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"GET /metr")
    # More idle connections than the server keeps: it closes the extra ones,
    # and serves again once they are gone.
    idle = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(80)]
    try:
        time.sleep(0.3)
    finally:
        for s in idle:
            s.close()
    wait_until("/health after idle clients",
               lambda: http_get(port, "/health")[0] == 200, timeout=10)
    assert p.alive()
    with connect(p) as c:
        assert c.execute("select 41 + 1").fetchone()[0] == 42


def test_admin_listen_in_use_fails_startup(cluster, pgregion_bin):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        admin_port = busy.getsockname()[1]
        p = Pgregion(cluster, binary=pgregion_bin, start=False,
                     admin={"listen": f"127.0.0.1:{admin_port}"})
        cp = subprocess.run([str(pgregion_bin), "--config", str(p.config_path)],
                            capture_output=True, text=True, timeout=30)
        assert cp.returncode == 1
        assert "admin" in cp.stderr and str(admin_port) in cp.stderr, cp.stderr


# ---------------------------------------------------------------- real Prometheus

class Prometheus:
    """Debian's prometheus on a free loopback port, scraping `targets` every second."""

    def __init__(self, targets: list[str]):
        self.dir = Path(tempfile.mkdtemp(prefix="pgregion-prom-"))
        self.port = free_port()
        config = self.dir / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: pgregion\n    scrape_interval: 1s\n"
            "    scrape_timeout: 1s\n    static_configs:\n"
            f"      - targets: [{', '.join(repr(t) for t in targets)}]\n")
        self.log = open(self.dir / "prometheus.log", "wb")
        self.proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={self.dir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.dir)
        try:
            wait_until("prometheus ready", self._ready, timeout=60, interval=0.2)
        except BaseException:
            self.stop()
            raise

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"prometheus exited ({self.proc.returncode}):\n" + self.log_text())
        try:
            return http_get(self.port, "/-/ready", timeout=2)[0] == 200
        except OSError:
            return False

    def query(self, expr: str) -> list[dict]:
        status, _, body = http_get(self.port, "/api/v1/query?query=" + urllib.parse.quote(expr))
        assert status == 200, body
        doc = json.loads(body)
        assert doc["status"] == "success", doc
        return doc["data"]["result"]

    def log_text(self) -> str:
        try:
            return (self.dir / "prometheus.log").read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def prometheus_factory():
    if not Path(PROMETHEUS).exists():
        pytest.fail("prometheus not installed (Debian package `prometheus`; scripts/test.sh "
                    "installs it)", pytrace=False)
    started: list[Prometheus] = []

    def start(targets: list[str]) -> Prometheus:
        prom = Prometheus(targets)
        started.append(prom)
        return prom

    yield start
    for prom in started:
        prom.stop()


def _pgbench(port: int, *args: str, timeout: float = 120) -> None:
    cp = subprocess.run(["pgbench", "-h", "127.0.0.1", "-p", str(port), "-U", "app", *args,
                         "appdb"], env=pg_env("secret"), capture_output=True, text=True,
                        timeout=timeout)
    assert cp.returncode == 0, cp.stdout + cp.stderr


def _by_role(result: list[dict]) -> dict[str, float]:
    return {r["metric"]["role"]: float(r["value"][1]) for r in result}


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_prometheus_scrapes_pgregion(cluster, start_proxy, prometheus_factory):
    p = start_admin_proxy(start_proxy, cluster, pool={"size": 10})
    prom = prometheus_factory([f"127.0.0.1:{p.admin_port}"])
    wait_until("prometheus scraped pgregion",
               lambda: any(r["value"][1] == "1" for r in prom.query('up{job="pgregion"}')),
               timeout=60, interval=0.5)
    before = _by_role(prom.query("sum by (role) (pgregion_routed_total)"))

    _pgbench(p.port, "-i", "-s", "1", "-q")
    cluster.wait_replay()
    _pgbench(p.port, "-n", "-S", "-c", "4", "-j", "2", "-T", "4")  # autocommit reads: replica
    _pgbench(p.port, "-n", "-c", "2", "-T", "3")  # read-write transactions: primary

    def grew():
        now = _by_role(prom.query("sum by (role) (pgregion_routed_total)"))
        return all(now.get(role, 0) > before.get(role, 0) for role in ("primary", "replica")) \
            and now
    now = wait_until("routed_total to grow for both roles in Prometheus", grew, timeout=60,
                     interval=0.5)
    assert now["replica"] >= 100 and now["primary"] >= 10, now

    reasons = {r["metric"]["reason"] for r in
               prom.query("sum by (reason) (pgregion_routed_total) > 0")}
    assert "read" in reasons and reasons & {"write", "transaction"}, reasons

    lag = prom.query("pgregion_replica_lag_bytes")
    assert {r["metric"]["node"] for r in lag} == {r.name for r in cluster.replicas}, lag
    assert all(r["metric"]["region"] == "local" for r in lag)
    assert prom.query("pgregion_replica_lag_seconds"), "lag in seconds per replica"
    rtt = prom.query("pgregion_node_rtt_seconds")
    assert {r["metric"]["node"] for r in rtt} == {"primary", "replica1"}
    hist = prom.query('histogram_quantile(0.5, sum by (le, role) '
                      '(rate(pgregion_query_duration_seconds_bucket[1m])))')
    assert {r["metric"]["role"] for r in hist} >= {"primary", "replica"}, hist


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_ready_follows_failover(start_proxy):
    """/ready: 200 with a primary, 503 once it is stopped, 200 after a replica is promoted."""
    with Cluster(replicas=1) as c:
        p = start_admin_proxy(start_proxy, c, token=None,
                              health={"interval_ms": 200, "timeout_ms": 1000,
                                      "failures_to_down": 2})
        port = p.admin_port
        c.primary.stop(mode="fast")
        status, body = wait_until(
            "/ready to turn 503",
            lambda: (lambda r: (r[0], r[2]) if r[0] == 503 else None)(http_get(port, "/ready")),
            timeout=60)
        assert b"no primary" in body, body
        doc = json.loads(http_get(port, "/status")[2])
        assert doc["ready"] is False and "no primary" in doc["ready_reason"]

        c.replicas[0].promote()
        wait_until("/ready to turn 200 after promotion",
                   lambda: http_get(port, "/ready")[0] == 200, timeout=60)
        doc = json.loads(http_get(port, "/status")[2])
        assert doc["primary"] == "replica1"
        assert doc["failovers"] == 1
        events = [(e["event"], e["node"]) for e in doc["recent_changes"]]
        assert ("no_primary", None) in events
        assert ("primary_changed", "replica1") in events
        assert metric_values(metrics(port), "pgregion_failovers_total") == {"": 1.0}
        assert metric_values(metrics(port), "pgregion_node_is_primary")[
            '{node="replica1",region="local"}'] == 1.0
        p.stop()


ALERT_TESTS = """
rule_files: [{rules}]
evaluation_interval: 15s
tests:
  - interval: 15s
    input_series:
      - series: 'pgregion_node_up{{instance="p1",node="a",region="eu"}}'
        values: '1 1 0 0 0 0 0 0'
      - series: 'pgregion_node_is_primary{{instance="p1",node="a",region="eu"}}'
        values: '1 1 0 0 0 0 0 0'
      - series: 'pgregion_node_is_primary{{instance="p1",node="b",region="us"}}'
        values: '0 0 0 0 0 0 0 0'
      - series: 'pgregion_replica_lag_seconds{{instance="p1",node="b",region="us"}}'
        values: '0 1 9 9 9 9 9 9'
      - series: 'pgregion_client_connections{{instance="p1",state="waiting"}}'
        values: '0 0 0 0 0 0 0 0'
    alert_rule_test:
      - eval_time: 105s
        alertname: PgregionNodeDown
        exp_alerts:
          - exp_labels: {{severity: critical, instance: p1, node: a, region: eu}}
            exp_annotations:
              summary: "Node a (eu) is down for p1"
              description: >-
                pgregion's health checks of a fail (health.failures_to_down
                consecutive failures). No traffic is routed to it until it recovers.
      - eval_time: 105s
        alertname: PgregionNoPrimary
        exp_alerts:
          - exp_labels: {{severity: critical, instance: p1}}
            exp_annotations:
              summary: "pgregion p1 knows no primary"
              description: >-
                No node reports pg_is_in_recovery() = false (or more than one does). Writes
                wait failover.write_wait_ms and then fail until one primary remains.
                /ready returns 503 meanwhile.
      - eval_time: 105s
        alertname: PgregionPoolWaiters
        exp_alerts: []
      - eval_time: 15s
        alertname: PgregionReplicaLagHigh
        exp_alerts: []
"""


def test_alert_rules_are_valid(tmp_path):
    if not Path(PROMTOOL).exists():
        pytest.fail("promtool not installed (Debian package `prometheus`)", pytrace=False)
    rules = REPO / "conf" / "prometheus-alerts.yml"
    cp = subprocess.run([PROMTOOL, "check", "rules", str(rules)],
                        capture_output=True, text=True, timeout=60)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    # The rules fire on the series pgregion exports, with the labels it gives them.
    test = tmp_path / "alerts_test.yml"
    test.write_text(ALERT_TESTS.format(rules=json.dumps(str(rules))))
    cp = subprocess.run([PROMTOOL, "test", "rules", str(test)],
                        capture_output=True, text=True, timeout=60)
    assert cp.returncode == 0, cp.stdout + cp.stderr


def test_grafana_dashboard_uses_known_metrics():
    doc = json.loads((REPO / "conf" / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for panel in doc["panels"] for t in panel.get("targets", [])]
    assert exprs
    known = {"client_connections", "server_connections", "routed_total",
             "query_duration_seconds", "pool_wait_seconds", "node_up", "node_is_primary",
             "node_rtt_seconds", "replica_lag_bytes", "replica_lag_seconds", "ryw_wait_seconds",
             "ryw_fallbacks_total", "read_retries_total", "ryw_tokens_total",
             "reads_after_write_total", "tenant_reads_total", "tenant_map_entries",
             "tenant_map_refresh_errors_total", "tenant_map_age_seconds", "failovers_total",
             "errors_total", "build_info"}
    for expr in exprs:
        for name in re.findall(r"pgregion_(\w+)", expr):
            base = re.sub(r"_(bucket|count|sum)$", "", name)
            assert base in known, (name, expr)
