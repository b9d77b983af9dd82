"""A write loop through pgregion for failover tests (test_faults, test_regions).

    loop = WriteLoop(proxy, "t", connect)   # table t (id serial primary key)
    loop.wait_acked(port, after=0, timeout=10)
    ...
    loop.stop()
    check_acked_writes(loop, new_primary, "t")

Inserts on one connection, reconnecting after errors, and keeps every
acknowledged (id, server port, time.monotonic()), every error (time, SQLSTATE,
text), writes answered by a node in recovery (`stale`, must stay empty) and
the longest statement.
"""

from __future__ import annotations

import threading
import time
from typing import Callable


class WriteLoop:
    def __init__(self, p, table: str, connect: Callable, connect_timeout: int = 10):
        self.p = p
        self.table = table
        self.connect = connect
        self.connect_timeout = connect_timeout
        self.acked: list[tuple[int, int, float]] = []  # (id, server port, monotonic time)
        self.stale: list[tuple] = []  # writes a node in recovery answered (must stay empty)
        self.errors: list[tuple[float, str | None, str]] = []
        self.longest = 0.0
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        import psycopg
        conn = None
        while not self.stop_event.is_set():
            t0 = time.monotonic()
            try:
                if conn is None:
                    conn = self.connect(self.p, connect_timeout=self.connect_timeout)
                row = conn.execute(f"insert into {self.table} default values "
                                   "returning id, inet_server_port(), pg_is_in_recovery()"
                                   ).fetchone()
                if row[2] is not False:
                    self.stale.append(row)
                self.acked.append((row[0], row[1], time.monotonic()))
                time.sleep(0.005)
            except psycopg.Error as e:
                self.errors.append((time.monotonic(), e.sqlstate, str(e).strip()))
                if conn is not None:
                    conn.close()
                    conn = None
                time.sleep(0.02)
            finally:
                self.longest = max(self.longest, time.monotonic() - t0)
        if conn is not None:
            conn.close()

    def wait_acked(self, port: int, after: float, timeout: float) -> float:
        """The monotonic time of the first write acknowledged by `port` at or after `after`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for _, p, t in self.acked:
                if p == port and t >= after:
                    return t
            time.sleep(0.01)
        raise AssertionError(f"no write acknowledged on port {port} within {timeout}s; "
                             f"errors: {self.errors[-5:]}\n" + self.p.log_tail(60))

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(20)
        assert not self.thread.is_alive(), "the write loop is stuck"


def check_acked_writes(loop: WriteLoop, node, table: str) -> None:
    """Every acknowledged write is on `node`, none was answered by a node in
    recovery, and every error is connection-class or admin shutdown (the client
    reconnects), nothing else."""
    rows = {int(x) for x in node.psql(f"select id from {table}", dbname="appdb").split()}
    acked = {i for i, _, _ in loop.acked}
    assert acked <= rows, f"lost acknowledged writes: {sorted(acked - rows)[:10]}"
    assert not loop.stale, loop.stale
    for _, sqlstate, e in loop.errors:
        assert sqlstate is None or sqlstate[:2] in ("08", "57"), (sqlstate, e)
