"""Shutdown (issue 6): SIGTERM stops accepting, lets running transactions finish
(up to proxy.shutdown_timeout_s), then exits; SIGINT closes everything at once."""

from __future__ import annotations

import http.client
import signal
import socket
import threading
import time

import psycopg
import pytest

from cluster import free_port
from conftest import connect
from pgregion import SANITIZER_MARKERS, Pgregion

CLUSTER_KW = {}


@pytest.fixture(autouse=True)
def _table(cluster):
    cluster.primary.psql("drop table if exists shut_t; create table shut_t (x int); "
                         "grant all on shut_t to app", dbname="appdb")


class StopInBackground:
    """Pgregion.stop() (SIGTERM, wait, check exit status and log) on a thread, so the
    test can act while the proxy drains."""

    def __init__(self, p: Pgregion, timeout: float = 60):
        self.error: BaseException | None = None
        self.started = time.monotonic()
        self.elapsed: float | None = None

        def run():
            try:
                p.stop(check=True, timeout=timeout)
            except BaseException as e:  # noqa: BLE001 - reported by join()
                self.error = e
            self.elapsed = time.monotonic() - self.started

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def join(self, timeout: float = 90) -> float:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "pgregion did not stop"
        if self.error:
            raise self.error
        return self.elapsed


def refuses_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return False
    except OSError:
        return True


def wait_until(what, predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def rows(cluster) -> list[int]:
    out = cluster.primary.psql("select x from shut_t order by x", dbname="appdb")
    return [int(x) for x in out.split()] if out else []


@pytest.mark.timeout(120)
def test_sigterm_lets_running_transactions_finish(cluster, pgregion_bin):
    admin_port = free_port()
    p = Pgregion(cluster, binary=pgregion_bin, proxy={"shutdown_timeout_s": 30},
                 admin={"listen": f"127.0.0.1:{admin_port}"})
    busy = connect(p)
    idle = connect(p)
    busy.execute("begin")
    busy.execute("insert into shut_t values (1)")
    assert idle.execute("select 1").fetchone()[0] == 1

    stopper = StopInBackground(p)
    wait_until("the listener to close", lambda: refuses_connections(p.port))
    # Idle clients are told and closed at once.
    with pytest.raises(psycopg.OperationalError):
        idle.execute("select 1")
    # The admin endpoint stays up while draining and says so.
    conn = http.client.HTTPConnection("127.0.0.1", admin_port, timeout=10)
    conn.request("GET", "/ready")
    r = conn.getresponse()
    assert (r.status, r.read()) == (503, b"Service Unavailable: shutting down\n")
    conn.close()
    # The transaction goes on and commits.
    busy.execute("insert into shut_t values (2)")
    busy.execute("commit")
    # ...and then its client is closed: no new transaction starts.
    with pytest.raises(psycopg.OperationalError):
        busy.execute("select 1")
    busy.close()
    idle.close()
    elapsed = stopper.join()
    assert elapsed < 25, f"exited {elapsed:.1f}s after SIGTERM: waited for the timeout"
    assert rows(cluster) == [1, 2]


@pytest.mark.timeout(120)
def test_sigterm_closes_what_is_left_after_the_timeout(cluster, pgregion_bin, tmp_path):
    p = Pgregion(cluster, binary=pgregion_bin, proxy={"shutdown_timeout_s": 2}, workdir=tmp_path)
    stuck = connect(p)
    stuck.execute("begin")
    stuck.execute("insert into shut_t values (3)")
    stopper = StopInBackground(p)
    elapsed = stopper.join()
    assert elapsed >= 1.5, "closed a running transaction before shutdown_timeout_s"
    with pytest.raises(psycopg.OperationalError):
        stuck.execute("commit")
    stuck.close()
    # The server connection was closed mid-transaction: nothing committed.
    wait_until("the backend to go away", lambda: not cluster.primary.backend_pids(user="app"))
    assert rows(cluster) == []
    assert "shutdown_timeout" in p.log_text()


@pytest.mark.timeout(120)
def test_sigint_is_immediate(cluster, pgregion_bin):
    p = Pgregion(cluster, binary=pgregion_bin, proxy={"shutdown_timeout_s": 60})
    stuck = connect(p)
    stuck.execute("begin")
    stuck.execute("insert into shut_t values (4)")
    t0 = time.monotonic()
    p.proc.send_signal(signal.SIGINT)
    rc = p.proc.wait(timeout=30)
    assert time.monotonic() - t0 < 30
    assert rc == 0, p.log_tail()
    text = p.log_text()
    assert not any(m in text for m in SANITIZER_MARKERS), p.log_tail(80)
    p.stop(check=False)
    with pytest.raises(psycopg.OperationalError):
        stuck.execute("commit")
    stuck.close()
    wait_until("the backend to go away", lambda: not cluster.primary.backend_pids(user="app"))
    assert rows(cluster) == []


@pytest.mark.timeout(120)
def test_zero_timeout_closes_at_once(cluster, pgregion_bin):
    p = Pgregion(cluster, binary=pgregion_bin, proxy={"shutdown_timeout_s": 0})
    stuck = connect(p)
    stuck.execute("begin")
    stopper = StopInBackground(p)
    assert stopper.join() < 15
    with pytest.raises(psycopg.OperationalError):
        stuck.execute("select 1")
    stuck.close()


@pytest.mark.timeout(120)
def test_a_client_that_never_reads_does_not_hold_up_exit(cluster, pgregion_bin):
    """A client whose replies pile up unread (the proxy stopped reading it) gets its
    FATAL queued behind them at shutdown; the stream closes after
    Stream::kCloseFlushTimeoutMs (10 s) instead of keeping the process alive forever."""
    from pgwire import RawConn, query_message

    p = Pgregion(cluster, binary=pgregion_bin, proxy={"shutdown_timeout_s": 0})
    c = RawConn(p.host, p.port, timeout=30)
    msgs = c.startup("app", "appdb", "secret")
    assert msgs and msgs[-1].type == "Z", msgs
    c.sock.settimeout(3)
    chunk = query_message("SHOW pgregion.route") * 4096
    try:
        for _ in range(400):  # stops when the proxy stops reading (backpressure)
            c.sock.sendall(chunk)
    except (socket.timeout, TimeoutError):
        pass
    t0 = time.monotonic()
    p.proc.send_signal(signal.SIGINT)
    rc = p.proc.wait(timeout=40)
    elapsed = time.monotonic() - t0
    print(f"\nexit with an unread client took {elapsed:.1f} s")
    assert rc == 0, p.log_tail()
    assert elapsed < 25
    p.stop(check=False)
    c.close()
