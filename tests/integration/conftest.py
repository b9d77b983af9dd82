"""Fixtures for pgregion's integration tests.

Each test module gets one PostgreSQL cluster (module scope); a module sets
`CLUSTER_KW = {...}` to choose replicas/auth/ssl. Proxies are cheap to start, so
tests start their own with the config they need through `start_proxy(...)`;
`proxy` is a module-wide default instance (`PROXY_KW = {...}` overrides).

Every pgregion started here is checked after each test (still running) and at
its stop (no crash, no sanitizer report); a problem fails the test or errors its
teardown, so the suite never passes over a crashed proxy.
"""

from __future__ import annotations

import faulthandler
import os
import shutil
import signal
import sys
import threading
from pathlib import Path

import psycopg
import pytest

HARNESS = Path(__file__).resolve().parents[1] / "harness"
sys.path.insert(0, str(HARNESS))

from cluster import Cluster  # noqa: E402
from pgregion import Pgregion, PgregionCrashed, default_binary, live_instances  # noqa: E402

REQUIRED_TOOLS = ("psql", "pgbench", "openssl")


# Every test is bounded: past its limit, SIGALRM dumps all threads' stacks and raises
# in the main thread (psycopg and the raw client wait in Python, so this interrupts them).
DEFAULT_TEST_TIMEOUT_S = float(os.environ.get("PGREGION_TEST_TIMEOUT", "120"))


class TestTimeout(Exception):
    pass


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: takes more than a few seconds")
    config.addinivalue_line("markers", "timeout(seconds): per-test time limit")


@pytest.fixture(autouse=True)
def _test_timeout(request):
    marker = request.node.get_closest_marker("timeout")
    limit = float(marker.args[0]) if marker else DEFAULT_TEST_TIMEOUT_S
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_alarm(signum, frame):  # noqa: ARG001
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        raise TestTimeout(f"test exceeded {limit:.0f}s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="session")
def pgregion_bin() -> Path:
    b = default_binary()
    if not b.exists():
        pytest.fail(f"pgregion binary not found at {b}: build it (ninja -C build) "
                    "or set PGREGION_BIN", pytrace=False)
    return b


@pytest.fixture(scope="session", autouse=True)
def _tools_present():
    missing = [t for t in REQUIRED_TOOLS if shutil.which(t) is None]
    if missing:
        pytest.fail(f"missing tools: {missing}", pytrace=False)


@pytest.fixture(scope="module")
def cluster(request):
    kw = dict(getattr(request.module, "CLUSTER_KW", {}))
    with Cluster(**kw) as c:
        yield c


class ProxyFactory:
    def __init__(self, binary: Path):
        self.binary = binary
        self.started: list[Pgregion] = []

    def __call__(self, cluster, **kw) -> Pgregion:
        kw.setdefault("binary", self.binary)
        p = Pgregion(cluster, **kw)
        self.started.append(p)
        return p

    def stop_all(self) -> list[str]:
        problems = []
        for p in self.started:
            try:
                p.stop(check=True)
            except PgregionCrashed as e:
                problems.append(str(e))
        self.started.clear()
        return problems


@pytest.fixture
def start_proxy(pgregion_bin):
    """start_proxy(cluster, pool={...}, proxy={...}, tls={...}, ...) -> Pgregion.
    Stopped and checked for crashes after the test."""
    f = ProxyFactory(pgregion_bin)
    yield f
    problems = f.stop_all()
    if problems:
        pytest.fail("pgregion crashed or misbehaved on stop:\n" + "\n".join(problems),
                    pytrace=False)


@pytest.fixture(scope="module")
def proxy(request, cluster, pgregion_bin):
    kw = dict(getattr(request.module, "PROXY_KW", {}))
    p = Pgregion(cluster, binary=pgregion_bin, **kw)
    yield p
    p.stop(check=True)


@pytest.fixture(autouse=True)
def _proxies_still_alive():
    yield
    dead = [p for p in live_instances() if not p.alive()]
    if dead:
        msgs = []
        for p in dead:
            msgs.append(f"pgregion on port {p.port} died during the test "
                        f"(rc={p.proc.returncode if p.proc else '?'})\n{p.log_tail(60)}")
        pytest.fail("\n".join(msgs), pytrace=False)


def connect(p: Pgregion, autocommit: bool = True, **kw) -> psycopg.Connection:
    """psycopg connection through pgregion p; keywords go into the DSN."""
    return psycopg.connect(p.dsn(**kw), autocommit=autocommit)


def pg_env(password: str | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    if password is not None:
        env["PGPASSWORD"] = password
    env["PGCONNECT_TIMEOUT"] = "10"
    env["PGGSSENCMODE"] = "disable"
    return env


def assert_serves(p: Pgregion, **kw) -> None:
    """The proxy still answers a normal client."""
    with connect(p, **kw) as conn:
        assert conn.execute("select 41 + 1").fetchone()[0] == 42
