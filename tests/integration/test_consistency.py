"""Consistency levels and read-your-writes (issue 5), end to end.

The cluster: a primary in us-east and two replicas, eu-west and ap-south, both
streaming WAL from the primary through one WAN-link relay, so replication lag is
real. Each pgregion reaches the primary through a relay of its own (the detour a
causal read saves by waiting on its local replica) and its replicas directly.
Instance A runs in eu-west, instance B in ap-south: a token handed from A to B
carries read-your-writes across instances and regions.

bench/consistency_checker drives read-after-write pairs: under `causal` no read
may be stale (links at 0, 20 and 100 ms, replay paused and resumed at random
moments), under `eventual` with a delayed WAL link it must see stale reads. The
figures (reads, stale reads, waits, fallbacks, read latency) are printed, so
`pytest -s` shows them.
"""

from __future__ import annotations

import json
import random
import subprocess
import threading
import time
from pathlib import Path

import psycopg
import pytest

from cluster import Cluster, free_port
from conftest import connect as _connect
from test_observability import http_get, metric_values, metrics, wait_until
from wanlink import WanLink, default_binary as wanlink_binary

# The harness turns synchronous_commit off cluster-wide for speed, which holds every
# commit's WAL back from the replicas until the WAL writer's next round (up to 200 ms);
# here commits are synchronous as in production, and one test turns it off per session.
CLUSTER_KW = {"replicas": 2, "extra_conf": {"synchronous_commit": "on"}}
REGIONS = {"primary": "us-east", "replica1": "eu-west", "replica2": "ap-south"}
HEALTH = {"interval_ms": 200, "timeout_ms": 2000}
CHECKER = Path(__file__).resolve().parents[2] / "build" / "bench" / "consistency_checker"
# Read-after-write pairs the causal runs must total (same-session and cross-instance reads).
MIN_CAUSAL_READS = 20_000


@pytest.fixture(scope="module", autouse=True)
def _tools_built():
    for binary in (wanlink_binary(), CHECKER):
        if not binary.exists():
            pytest.fail(f"{binary} not found: ninja -C build", pytrace=False)


def connect(p, **kw):
    conn = _connect(p, **kw)
    conn.prepare_threshold = None
    return conn


class Setup:
    """The relays: one carrying WAL to both replicas, one per proxy to the primary."""

    def __init__(self, c: Cluster):
        self.cluster = c
        self.wal = WanLink(c.primary.port)
        for r in c.replicas:
            r.stream_from(self.wal.port)
        self.primary_links: list[WanLink] = []

    def primary_link(self, delay_ms: int) -> WanLink:
        link = WanLink(self.cluster.primary.port, delay_ms=delay_ms)
        self.primary_links.append(link)
        return link

    def set_delay(self, delay_ms: int) -> None:
        self.wal.set_delay(delay_ms)
        for link in self.primary_links:
            link.set_delay(delay_ms)

    def nodes(self, primary_link: WanLink) -> list[dict]:
        c = self.cluster
        out = [{"name": "primary", "region": REGIONS["primary"], "host": "127.0.0.1",
                "port": primary_link.port}]
        for r in c.replicas:
            out.append({"name": r.name, "region": REGIONS[r.name], "host": r.host,
                        "port": r.port})
        return out

    def stop(self) -> None:
        for link in self.primary_links + [self.wal]:
            link.stop(check=False)


@pytest.fixture(scope="module")
def setup(cluster):
    s = Setup(cluster)
    yield s
    s.stop()


def start_region_proxy(start_proxy, setup: Setup, region: str, delay_ms: int = 0, **kw):
    """A pgregion in `region` with the admin endpoint; waits until it routes reads to
    its replicas (roles discovered, RTTs measured)."""
    admin_port = free_port()
    link = setup.primary_link(delay_ms)
    kw.setdefault("pool", {"mode": "transaction", "size": 40})
    routing = {"consistency": "causal", **kw.pop("routing", {})}
    p = start_proxy(setup.cluster, proxy={"region": region}, health=HEALTH,
                    admin={"listen": f"127.0.0.1:{admin_port}"}, nodes=setup.nodes(link),
                    routing=routing, **kw)
    p.admin_port = admin_port
    p.primary_link = link
    wait_until("/ready", lambda: http_get(admin_port, "/ready")[0] == 200)

    def reads_on_replica():
        with connect(p) as c:
            return c.execute("select pg_is_in_recovery()").fetchone()[0]
    wait_until(f"{region} reads on a replica", reads_on_replica, timeout=30)
    return p


def ryw_counters(p) -> dict[str, float]:
    text = metrics(p.admin_port)
    out = {"waits": metric_values(text, "pgregion_ryw_wait_seconds_count").get("", 0.0),
           "wait_sum_s": metric_values(text, "pgregion_ryw_wait_seconds_sum").get("", 0.0)}
    for labels, v in metric_values(text, "pgregion_ryw_fallbacks_total").items():
        out["fallback_" + labels.split('"')[1]] = v
    return out


def run_checker(dsn: str, dsn2: str | None = None, consistency: str = "causal",
                clients: int = 8, seconds: float = 10, pairs: int = 1_000_000) -> dict:
    cmd = [str(CHECKER), "--dsn", dsn, "--clients", str(clients), "--pairs", str(pairs),
           "--seconds", str(seconds), "--consistency", consistency]
    if dsn2:
        cmd += ["--dsn2", dsn2]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120)
    assert r.returncode == 0, f"checker failed ({r.returncode}): {r.stdout}\n{r.stderr}"
    return json.loads(r.stdout)


class ReplayToggler:
    """Pauses and resumes WAL replay on every replica at random moments (a background
    thread, direct superuser connections); resumes everything when stopped."""

    def __init__(self, c: Cluster, seed: int):
        self.replicas = c.replicas
        self.rng = random.Random(seed)
        self.stop_event = threading.Event()
        self.toggles = 0
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_event.set()
        self.thread.join(timeout=30)
        for r in self.replicas:
            r.psql("select pg_wal_replay_resume()")
        if self.error is not None and exc[0] is None:
            raise AssertionError(f"replay toggler failed: {self.error!r}")

    def _run(self):
        conns = []
        try:
            conns = [psycopg.connect(r.dsn(), autocommit=True) for r in self.replicas]
            paused = [False] * len(conns)
            while not self.stop_event.wait(self.rng.uniform(0.05, 0.4)):
                i = self.rng.randrange(len(conns))
                conns[i].execute("select pg_wal_replay_resume()" if paused[i]
                                 else "select pg_wal_replay_pause()")
                paused[i] = not paused[i]
                self.toggles += 1
        except BaseException as e:  # noqa: BLE001 - reported by __exit__
            self.error = e
        finally:
            for conn in conns:
                conn.close()


# ---------------------------------------------------------------- causal: never stale

@pytest.mark.timeout(240)
def test_causal_reads_are_never_stale(cluster, setup, start_proxy):
    """Read-after-write through pgregion A, and the same write read through pgregion B
    with A's token, at 0, 20 and 100 ms links, replay paused and resumed at random."""
    a = start_region_proxy(start_proxy, setup, "eu-west")
    b = start_region_proxy(start_proxy, setup, "ap-south")
    # (delay ms, clients, seconds): the delayed links for a fixed time, then the 0 ms
    # link for as many pairs as the total still needs (bounded by time too).
    runs = [(20, 24, 8), (100, 32, 8), (0, 8, 90)]
    total_reads = 0
    try:
        for delay, clients, seconds in runs:
            setup.set_delay(delay)
            # The proxies' RTT averages follow the new delay within a few probes.
            time.sleep(1.5 if delay else 0.5)
            # Each pair is read twice: on A, and on B with A's token.
            pairs = max(100, (MIN_CAUSAL_READS - total_reads) // (2 * clients) + 100) \
                if delay == 0 else 1_000_000
            before = {p: ryw_counters(p) for p in (a, b)}
            with ReplayToggler(cluster, seed=delay) as toggler:
                out = run_checker(a.dsn(), b.dsn(), clients=clients, seconds=seconds, pairs=pairs)
            after = {p: ryw_counters(p) for p in (a, b)}
            delta = {k: sum(after[p].get(k, 0) - before[p].get(k, 0) for p in (a, b))
                     for k in after[a]}
            print(f"\n[consistency] causal, links {delay} ms, {toggler.toggles} replay toggles: "
                  f"{json.dumps(out)}\n  waits/fallbacks: {json.dumps(delta)}")
            assert out["errors"] == 0, out
            assert out["stale"] == 0 and out["cross_stale"] == 0, out
            assert out["reads"] > 0 and out["cross_reads"] > 0, out
            total_reads += out["reads"] + out["cross_reads"]
            if delay >= 20:
                # The local replica is nearer than the primary: reads wait on it, and some
                # of them are served there.
                assert delta["waits"] > 0, delta
                assert out["replica_reads"] > 0, out
    finally:
        setup.set_delay(0)
    print(f"[consistency] causal total: {total_reads} read-after-write pairs, 0 stale")
    assert total_reads >= MIN_CAUSAL_READS


# ---------------------------------------------------------------- the token: never too early

class NoiseWriter:
    """Other sessions' WAL that nobody has flushed yet: transactions directly on the
    primary that insert, hold their WAL unflushed for a moment, then commit (a
    background thread)."""

    def __init__(self, c: Cluster):
        self.dsn = c.primary.dsn(dbname="appdb")
        self.stop_event = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_event.set()
        self.thread.join(timeout=30)
        if self.error is not None and exc[0] is None:
            raise AssertionError(f"noise writer failed: {self.error!r}")

    def _run(self):
        try:
            with psycopg.connect(self.dsn, autocommit=True) as conn:
                conn.execute("create table if not exists tok_noise(v text)")
                rounds = 0
                while not self.stop_event.is_set():
                    with conn.transaction():
                        conn.execute("insert into tok_noise select repeat('x', 200)"
                                     " from generate_series(1, 200)")
                        time.sleep(0.02)
                    rounds += 1
                    if rounds % 50 == 0:
                        conn.execute("truncate tok_noise")  # bounded: about 2 MB at most
        except BaseException as e:  # noqa: BLE001 - reported by __exit__
            self.error = e


def _commit_end(direct, xid: str, start: str, token_lsn: int) -> int:
    """The end of transaction `xid`'s commit record (pg_walinspect), once it is flushed
    (an asynchronous commit may not be yet: the WAL writer flushes within 200 ms)."""
    deadline = time.monotonic() + 10
    while _lsn(direct.execute("select pg_current_wal_flush_lsn()").fetchone()[0]) < token_lsn:
        assert time.monotonic() < deadline, "the primary did not flush the token's WAL"
        time.sleep(0.01)
    # pg_walinspect reads only flushed WAL and fails on a record that runs past it
    # (another session's, begun before ours): again once the WAL writer has flushed it.
    while True:
        try:
            rows = direct.execute(
                "select end_lsn::text from pg_get_wal_records_info(%s::pg_lsn - 1,"
                " pg_current_wal_flush_lsn())"
                " where xid::text = %s and resource_manager = 'Transaction'"
                " and record_type like 'COMMIT%%'", [start, xid]).fetchall()
            break
        except psycopg.errors.InternalError:
            assert time.monotonic() < deadline, "pg_walinspect could not read the WAL"
            time.sleep(0.05)
    assert len(rows) == 1, (xid, rows)
    return _lsn(rows[0][0])


@pytest.mark.timeout(180)
def test_token_is_never_before_the_commit_record(cluster, setup, start_proxy):
    """The token each write gets is at or after the end of its own commit record (read
    from the WAL with pg_walinspect), while other sessions keep unflushed WAL ahead of
    it. A synchronous commit gets the flush position (tight: nothing unflushed); every
    way a commit can be asynchronous gets the insert position: synchronous_commit off
    for the session (startup option, SET, postgresql.conf, the database's default), for
    the transaction (SET LOCAL, set_config(..., true)), or inside a function."""
    a = start_region_proxy(start_proxy, setup, "eu-west")
    with psycopg.connect(cluster.primary.dsn(dbname="appdb"), autocommit=True) as direct:
        direct.execute("create extension if not exists pg_walinspect")
        direct.execute("create table if not exists tok_t(id bigserial primary key, v text)")
        direct.execute("grant all on tok_t, tok_t_id_seq to app")
        direct.execute("""
            create or replace function tok_insert_async(v text) returns text
            language plpgsql as $$
            begin
              perform set_config('synchronous_commit', 'off', true);
              insert into tok_t(v) values (v);
              return txid_current()::text;
            end $$""")
        direct.execute("grant execute on function tok_insert_async(text) to app")
        cluster.primary.psql("drop database if exists tok_async")
        cluster.primary.psql("create database tok_async")
        cluster.primary.psql("alter database tok_async set synchronous_commit = off")
        cluster.primary.psql("grant all on database tok_async to app")
        with psycopg.connect(cluster.primary.dsn(dbname="tok_async"), autocommit=True) as d2:
            d2.execute("create table tok_t(id bigserial primary key, v text)")
            d2.execute("grant all on tok_t, tok_t_id_seq to app")

        insert = "insert into tok_t(v) values ('x') returning txid_current()::text"
        # (name, connect keywords, statements before, the write, statements after,
        #  whether the commit flushes before it is acknowledged)
        variants = [
            ("synchronous", {}, [], insert, [], True),
            ("startup option off", {"options": "-c synchronous_commit=off"}, [], insert, [],
             False),
            ("SET off", {}, ["set synchronous_commit = off"], insert, [], False),
            ("SET LOCAL off", {}, ["begin", "set local synchronous_commit = off"], insert,
             ["commit"], False),
            ("set_config local", {}, ["begin",
                                      "select set_config('synchronous_commit', 'off', true)"],
             insert, ["commit"], False),
            ("inside a function", {}, [], "select tok_insert_async('x')", [], False),
            ("database default off", {"dbname": "tok_async"}, [], insert, [], False),
            ("synchronous again", {}, [], insert, [], True),
        ]
        checked = 0
        with NoiseWriter(cluster):
            for name, kw, before, write, after, synchronous in variants:
                with connect(a, **kw) as c:
                    for _ in range(5):
                        for sql in before:
                            c.execute(sql)
                        tokens_before = metric_values(metrics(a.admin_port),
                                                      "pgregion_ryw_tokens_total")
                        start = direct.execute("select pg_current_wal_flush_lsn()::text"
                                               ).fetchone()[0]
                        xid = c.execute(write).fetchone()[0]
                        for sql in after:
                            c.execute(sql)
                        token = c.info.parameter_status("pgregion.ryw_token")
                        token_lsn = int(token.split(".")[3], 16)
                        end = _commit_end(direct, xid, start, token_lsn)
                        assert end <= token_lsn, (name, f"{end:X}", f"{token_lsn:X}")
                        tokens = metric_values(metrics(a.admin_port),
                                               "pgregion_ryw_tokens_total")
                        position = "flush" if synchronous else "insert"
                        key = f'{{position="{position}"}}'
                        assert tokens[key] == tokens_before.get(key, 0) + 1, (name, tokens)
                        checked += 1
        cluster.primary.psql("alter system set synchronous_commit = off")
        cluster.primary.psql("select pg_reload_conf()")
        try:
            time.sleep(0.5)
            with connect(a) as c:
                tokens_before = metric_values(metrics(a.admin_port), "pgregion_ryw_tokens_total")
                start = direct.execute("select pg_current_wal_flush_lsn()::text").fetchone()[0]
                xid = c.execute(insert).fetchone()[0]
                token_lsn = int(c.info.parameter_status("pgregion.ryw_token").split(".")[3], 16)
                assert _commit_end(direct, xid, start, token_lsn) <= token_lsn
                tokens = metric_values(metrics(a.admin_port), "pgregion_ryw_tokens_total")
                key = '{position="insert"}'
                assert tokens[key] == tokens_before.get(key, 0) + 1, ("postgresql.conf", tokens)
                checked += 1
        finally:
            cluster.primary.psql("alter system reset synchronous_commit")
            cluster.primary.psql("select pg_reload_conf()")
            cluster.primary.psql("drop database if exists tok_async with (force)")
    print(f"\n[consistency] {checked} tokens checked against their commit records, "
          f"{metric_values(metrics(a.admin_port), 'pgregion_ryw_tokens_total')}")


@pytest.mark.timeout(120)
def test_replay_resumed_step_by_step(cluster, setup, start_proxy):
    """With replay paused on both replicas and other sessions writing, a session writes a
    row; replay then moves in small steps (resumed for a few ms, paused again). After
    every step a read presenting the write's token must find the row: on the primary
    while the replicas are short of the token, on the local replica once it has it."""
    a = start_region_proxy(start_proxy, setup, "eu-west", delay_ms=20)
    rng = random.Random(19)
    with psycopg.connect(cluster.primary.dsn(dbname="appdb"), autocommit=True) as direct:
        direct.execute("create table if not exists tok_t(id bigserial primary key, v text)")
        direct.execute("grant all on tok_t, tok_t_id_seq to app")
    standbys = [psycopg.connect(r.dsn(), autocommit=True) for r in cluster.replicas]
    served = {"replica": 0, "primary": 0}
    rounds = 0
    try:
        with NoiseWriter(cluster), connect(a) as writer, connect(a) as reader:
            deadline = time.monotonic() + 60
            while rounds < 6 and time.monotonic() < deadline:
                rounds += 1
                for s in standbys:
                    s.execute("select pg_wal_replay_pause()")
                row_id = writer.execute("insert into tok_t(v) values ('s') returning id"
                                        ).fetchone()[0]
                token = writer.info.parameter_status("pgregion.ryw_token")
                reader.execute(f"set pgregion.ryw_token = '{token}'")
                seen_replica = False
                for _ in range(400):
                    found, in_recovery = reader.execute(
                        "select exists(select 1 from tok_t where id = %s), pg_is_in_recovery()",
                        [row_id]).fetchone()
                    assert found, (rounds, row_id, token, in_recovery)
                    served["replica" if in_recovery else "primary"] += 1
                    if in_recovery:
                        seen_replica = True
                        break
                    for s in standbys:
                        s.execute("select pg_wal_replay_resume()")
                    time.sleep(rng.uniform(0, 0.004))
                    for s in standbys:
                        s.execute("select pg_wal_replay_pause()")
                assert seen_replica, (rounds, served)
    finally:
        for s in standbys:
            s.execute("select pg_wal_replay_resume()")
            s.close()
    print(f"\n[consistency] replay stepped: {rounds} writes, reads {served}")
    assert served["primary"] > 0 and served["replica"] >= rounds


# ---------------------------------------------------------------- eventual: can be stale

def test_eventual_reads_can_be_stale(cluster, setup, start_proxy):
    """The checker can fail: with WAL 100 ms behind and the primary next door, reads
    right after a write at `eventual` miss it."""
    a = start_region_proxy(start_proxy, setup, "eu-west")
    setup.wal.set_delay(100)
    try:
        out = run_checker(a.dsn(), consistency="eventual", clients=4, seconds=4)
    finally:
        setup.wal.set_delay(0)
    print(f"\n[consistency] eventual, WAL 100 ms behind: {json.dumps(out)}")
    assert out["errors"] == 0, out
    assert out["stale"] > 0, out
    assert out["replica_reads"] > 0, out


# ---------------------------------------------------------------- synchronous_commit = off

def test_synchronous_commit_off_sessions_read_their_writes(cluster, setup, start_proxy):
    """An asynchronous commit returns before its WAL is flushed (the walsender sends only
    flushed WAL): the token is the insert LSN, past the commit record, so causal reads
    still see the write."""
    a = start_region_proxy(start_proxy, setup, "eu-west", delay_ms=20)
    setup.wal.set_delay(20)
    try:
        with connect(a, options="-c synchronous_commit=off") as c:
            assert c.execute("show synchronous_commit").fetchone()[0] == "off"
        out = run_checker(a.dsn(options="-c synchronous_commit=off"), clients=8, seconds=5)
    finally:
        setup.wal.set_delay(0)
    print(f"\n[consistency] causal, synchronous_commit off, links 20 ms: {json.dumps(out)}")
    assert out["errors"] == 0, out
    assert out["stale"] == 0, out
    assert out["reads"] > 0, out


# ---------------------------------------------------------------- strong and bounded

def test_strong_reads_all_on_the_primary(cluster, setup, start_proxy):
    a = start_region_proxy(start_proxy, setup, "eu-west")
    with connect(a) as c:
        c.execute("set pgregion.consistency = strong")
        assert c.execute("show pgregion.consistency").fetchone()[0] == "strong"
        assert not any(c.execute("select pg_is_in_recovery()").fetchone()[0] for _ in range(20))
        c.execute("begin read only")
        assert c.execute("select pg_is_in_recovery()").fetchone()[0] is False
        c.execute("commit")
        # A statement hint weakens or strengthens one statement.
        assert c.execute("/* pgregion: consistency=eventual */ select pg_is_in_recovery()"
                         ).fetchone()[0] is True
        c.execute("set pgregion.consistency = eventual")
        assert c.execute("/* pgregion: consistency=strong */ select pg_is_in_recovery()"
                         ).fetchone()[0] is False
        assert c.execute("select pg_is_in_recovery()").fetchone()[0] is True
    routed = metric_values(metrics(a.admin_port), "pgregion_routed_total")
    consistency = sum(v for k, v in routed.items() if 'reason="consistency"' in k)
    assert consistency >= 22, routed
    out = run_checker(a.dsn(), consistency="strong", clients=4, seconds=2)
    print(f"\n[consistency] strong: {json.dumps(out)}")
    assert out["errors"] == 0 and out["stale"] == 0 and out["replica_reads"] == 0, out


def test_bounded_uses_replicas_within_max_staleness(cluster, setup, start_proxy):
    """With WAL 600 ms behind under a steady write load, a 100 ms bound sends reads to
    the primary and a 5 s bound lets the replica serve them."""
    a = start_region_proxy(start_proxy, setup, "eu-west")
    stop = threading.Event()

    def write_load():
        with psycopg.connect(cluster.primary.dsn(dbname="appdb"), autocommit=True) as w:
            w.execute("create table if not exists bounded_load(x int)")
            while not stop.wait(0.02):
                w.execute("insert into bounded_load values (1)")
    writer = threading.Thread(target=write_load, daemon=True)
    setup.wal.set_delay(600)
    writer.start()
    try:
        with connect(a) as c:
            c.execute("set pgregion.consistency = bounded")
            c.execute("set pgregion.max_staleness = '100ms'")

            def on_primary_streak():
                return not any(c.execute("select pg_is_in_recovery()").fetchone()[0]
                               for _ in range(10))
            wait_until("bounded 100ms reads on the primary", on_primary_streak, timeout=20)
            c.execute("set pgregion.max_staleness = '5s'")
            assert all(c.execute("select pg_is_in_recovery()").fetchone()[0] for _ in range(10))
            assert c.execute("/* pgregion: max_staleness=50ms */ select pg_is_in_recovery()"
                             ).fetchone()[0] is False
            c.execute("reset pgregion.max_staleness")  # routing.max_staleness_ms: 1000
            c.execute("set pgregion.consistency = causal")
            assert c.execute("/* pgregion: consistency=bounded, max_staleness=5s */ "
                             "select pg_is_in_recovery()").fetchone()[0] is True
    finally:
        stop.set()
        writer.join(timeout=10)
        setup.wal.set_delay(0)
    lag = metric_values(metrics(a.admin_port), "pgregion_routed_total")
    assert sum(v for k, v in lag.items() if 'reason="lag_fallback"' in k) >= 10, lag


# ---------------------------------------------------------------- tokens at the edges

def test_token_from_a_newer_timeline_goes_to_the_primary(cluster, setup, start_proxy):
    """A token made after a failover this proxy's replicas have not followed: the primary
    serves at once, nothing waits."""
    a = start_region_proxy(start_proxy, setup, "eu-west", routing={"ryw_wait_ms": 3000})
    with connect(a) as w:
        w.execute("create table if not exists tl_t(x int)")
        w.execute("insert into tl_t values (1)")
        token = w.info.parameter_status("pgregion.ryw_token")
    version, sysid, tli, lsn = token.split(".")
    before = ryw_counters(a)
    with connect(a) as c:
        c.execute(f"set pgregion.ryw_token = '{version}.{sysid}.{int(tli) + 1}.{lsn}'")
        t0 = time.monotonic()
        assert c.execute("select pg_is_in_recovery()").fetchone()[0] is False
        took = time.monotonic() - t0
    after = ryw_counters(a)
    assert after["waits"] == before["waits"], (before, after)
    assert after["fallback_no_candidate"] == before["fallback_no_candidate"] + 1, (before, after)
    assert took < 2.5, took


PAGE = 8192
SEGMENT = 16 * 1024 * 1024


def _lsn(text: str) -> int:
    hi, lo = text.split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


def _header(lsn: int) -> int:
    return 40 if lsn % SEGMENT < PAGE else 24


def commit_at_page_boundary(conn, attempts: int = 300) -> int:
    """Autocommit inserts (directly on the idle primary) sized so that one commit record
    ends exactly at a WAL page boundary; returns the insert LSN right after it (the page
    start plus the page header). Each miss measures the WAL an insert takes and aims
    again; WAL from elsewhere (the background writer's standby snapshots) just costs an
    attempt."""
    conn.execute("create table if not exists page_edge(v text) with (autovacuum_enabled = off)")
    overhead = 200
    for _ in range(attempts):
        start = _lsn(conn.execute("select pg_current_wal_insert_lsn()").fetchone()[0])
        gap = PAGE - start % PAGE
        n = gap - overhead
        if not 130 <= n <= 1500:
            # Too close to (or too far from) the boundary for one row: move along.
            conn.execute("insert into page_edge values (repeat('f', 300))")
            continue
        conn.execute("insert into page_edge values (repeat('x', %s))", [n])
        end = _lsn(conn.execute("select pg_current_wal_insert_lsn()").fetchone()[0])
        if end % PAGE == _header(end) and end - start == gap + _header(end):
            return end
        crossed = end // PAGE != start // PAGE
        overhead = (end - start) - n - (_header(end) if crossed else 0)
    raise AssertionError(f"no commit ended at a page boundary in {attempts} attempts")


def test_token_at_a_page_boundary_is_served_without_waiting(cluster, setup, start_proxy):
    """On an idle cluster a commit that ends exactly at a WAL page boundary leaves the
    replica's replay LSN at the boundary while the token points past the next page's
    header. The read must be served by the replica at once, not after the whole wait
    (here up to 800 ms: the primary is 400 ms away each way) and a trip to the primary."""
    a = start_region_proxy(start_proxy, setup, "eu-west", delay_ms=400,
                           routing={"ryw_wait_ms": 3000})
    sysid = cluster.primary.psql("select system_identifier from pg_control_system()")
    tli = int(cluster.primary.psql("select substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)"),
              16)
    replica = cluster.replicas[0]  # eu-west: the proxy's local replica
    with psycopg.connect(cluster.primary.dsn(dbname="appdb"), autocommit=True) as direct, \
            psycopg.connect(replica.dsn(), autocommit=True) as standby, connect(a) as c:
        for attempt in range(5):
            token_lsn = commit_at_page_boundary(direct)
            page_start = token_lsn - _header(token_lsn)
            deadline = time.monotonic() + 10
            replay = 0
            while time.monotonic() < deadline:
                replay = _lsn(standby.execute("select pg_last_wal_replay_lsn()").fetchone()[0])
                if replay >= page_start:
                    break
                time.sleep(0.01)
            if replay != page_start:
                continue  # more WAL came after the commit: not the idle case, again
            before = ryw_counters(a)
            c.execute(f"set pgregion.ryw_token = 'r1.{sysid}.{tli}.{token_lsn:016X}'")
            t0 = time.monotonic()
            on_replica = c.execute("select pg_is_in_recovery()").fetchone()[0]
            took = time.monotonic() - t0
            still_idle = _lsn(direct.execute("select pg_current_wal_insert_lsn()"
                                             ).fetchone()[0]) == token_lsn
            if not still_idle:
                continue
            after = ryw_counters(a)
            print(f"\n[consistency] token {token_lsn:X} ({token_lsn % PAGE} bytes into its "
                  f"page), replica at {replay:X}: read on the replica in {took * 1000:.1f} ms "
                  f"(attempt {attempt + 1})")
            assert on_replica is True
            assert took < 1.0, took
            assert after.get("fallback_wait_timeout") == before.get("fallback_wait_timeout")
            return
    pytest.fail("the cluster never stayed idle around a page-boundary commit")
