#!/usr/bin/env python3
"""PostgreSQL 15's regression suite through pgregion (issue 17).

Starts a primary and one streaming replica (tests/harness/cluster.py; as root the servers
run as `postgres`), puts a WAN-link relay with a few ms of delay in front of the primary,
and runs the parallel_schedule with Debian's pg_regress three ways into one output
directory:

  direct       straight to the primary (the reference output)
  transaction  through pgregion in transaction pooling
  session      through pgregion in session pooling

pgregion runs as region `local` with the replica in `local` and the primary (behind the
relay) in `remote`, so reads go to the replica. Each run gets a fresh `regression`
database, created on the primary directly (with the settings pg_regress's own
create_database gives it) and replayed by the replica before the run starts.

pg_regress runs each parallel group concurrently, as `make installcheck-parallel` does:
the suite's expected files are written for that schedule, and a pooler must hold up to
concurrent clients; the few order-dependent statements that concurrency makes vary
(pg_stat_* counters) are in the allowlist with that reason.

Each proxy run's result files are compared per statement with the direct run's
(compare.py) and the differences not in tests/regress/allowlist.txt are counted.
Writes OUTDIR/report.md (by class, then every difference) and OUTDIR/summary.json.
Exit status 0 iff every proxy run has no difference outside the allowlist.

Needs scripts/regress_setup.sh to have run (it writes $PGREGION_REGRESS_DIR/regress.env,
default /var/cache/pgregion-regress). Binaries: $PGREGION_BIN and $WANLINK_BIN as the
harness takes them.

    /usr/bin/python3 tests/regress/run_regress.py [--modes transaction,session]
        [--outdir DIR] [--tests boolean,int4,...] [--delay-ms 1]
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "tests" / "harness"))
sys.path.insert(0, str(HERE))


import compare  # noqa: E402
from cluster import Cluster, free_port  # noqa: E402
from pgregion import Pgregion, PgregionCrashed  # noqa: E402
from wanlink import WanLink  # noqa: E402

REGRESS_DIR = Path(os.environ.get("PGREGION_REGRESS_DIR", "/var/cache/pgregion-regress"))
ENV_FILE = REGRESS_DIR / "regress.env"
DB = "regression"
RUN_TIMEOUT_S = 420         # one pg_regress run of the whole schedule
READY_TIMEOUT_S = 30        # pgregion routing reads to the replica after start
POOL_SIZE = 60              # parallel groups have up to 20 tests, some open 2 sessions
SUPERUSER, SUPERPASS = "postgres", "postgres"
# What pg_regress's create_database() sets on the database it makes (pg_regress.c).
DB_SETTINGS = {"lc_messages": "C", "lc_monetary": "C", "lc_numeric": "C", "lc_time": "C",
               "bytea_output": "hex", "timezone_abbreviations": "Default"}


def load_env() -> dict[str, str]:
    if not ENV_FILE.exists():
        raise SystemExit(f"{ENV_FILE} missing: run scripts/regress_setup.sh (as root) first")
    env = {}
    for line in ENV_FILE.read_text().splitlines():
        if line and not line.startswith("#") and "=" in line:
            k, v = line.split("=", 1)
            env[k] = v
    return env


def server_user_ids() -> tuple[int, int]:
    if os.geteuid() != 0:
        return os.geteuid(), os.getegid()
    pw = pwd.getpwnam("postgres")
    return pw.pw_uid, pw.pw_gid


def write_schedule(src: Path, dst: Path, only: set[str] | None) -> list[str]:
    """Copies the schedule (optionally only some tests, test_setup always); returns the
    test names in order."""
    names, out = [], []
    for line in src.read_text().splitlines():
        if not line.startswith("test:"):
            continue
        tests = [t for t in line[5:].split() if only is None or t in only or t == "test_setup"]
        if tests:
            out.append("test: " + " ".join(tests))
            names += tests
    dst.write_text("\n".join(out) + "\n")
    return names


def fresh_db(c: Cluster) -> None:
    """A new `regression` database made on the primary, replayed by the replica. Roles and
    tablespaces are cluster-wide: what a run left behind (a test that failed half way does
    not drop its roles) is dropped too, so one run cannot change the next one's output."""
    c.primary.psql(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
    for spc in c.primary.psql("select spcname from pg_tablespace "
                              "where spcname like 'regress%'").split():
        c.primary.psql(f'DROP TABLESPACE "{spc}"', check=False)
    roles = c.primary.psql("select rolname from pg_roles where rolname like 'regress%'").split()
    if roles:
        names = ", ".join(f'"{r}"' for r in roles)
        for db in ("postgres", "template1"):
            c.primary.psql(f"DROP OWNED BY {names} CASCADE", dbname=db)
        c.primary.psql(f"DROP ROLE {names}")
    c.primary.psql(f"CREATE DATABASE {DB} TEMPLATE=template0")
    c.primary.psql("; ".join(f"ALTER DATABASE {DB} SET {k} TO '{v}'"
                             for k, v in DB_SETTINGS.items()))
    c.wait_replay(timeout=30)


def run_pg_regress(env: dict, schedule: Path, outdir: Path, port: int) -> float:
    """Runs the schedule against 127.0.0.1:port into outdir (bounded); returns seconds."""
    uid, gid = server_user_ids()
    outdir.mkdir(parents=True)
    os.chown(outdir, uid, gid)
    cmd = [env["PG_REGRESS"], "--use-existing", "--host=127.0.0.1", f"--port={port}",
           f"--user={SUPERUSER}", f"--dbname={DB}", f"--inputdir={env['REGRESS_SRCDIR']}",
           f"--outputdir={outdir}", f"--bindir={env['PG_BINDIR']}",
           f"--dlpath={env['REGRESS_DLPATH']}", f"--schedule={schedule}"]
    run_env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    run_env.update({"PGPASSWORD": SUPERPASS, "PGGSSENCMODE": "disable",
                    "PGSSLMODE": "disable", "PGCONNECT_TIMEOUT": "10", "LC_ALL": "C"})
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--", "env"] + \
            [f"{k}={v}" for k, v in run_env.items()] + cmd
    t0 = time.monotonic()
    with open(outdir.parent / f"{outdir.name}.pg_regress.log", "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=run_env,
                                cwd=str(outdir), start_new_session=True)
        try:
            proc.wait(timeout=RUN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
            log.write(f"\n*** killed after {RUN_TIMEOUT_S}s ***\n")
    return time.monotonic() - t0


def start_proxy(c: Cluster, link: WanLink, mode: str, workdir: Path) -> tuple[Pgregion, int]:
    admin_port = free_port()
    p = Pgregion(
        c, workdir=workdir,
        proxy={"region": "local", "shutdown_timeout_s": 5},
        pool={"mode": mode, "size": POOL_SIZE, "acquire_timeout_ms": 30000},
        users=[{"name": SUPERUSER, "password": SUPERPASS, "auth": "scram-sha-256"}],
        nodes=[{"name": "primary", "region": "remote", "host": "127.0.0.1", "port": link.port},
               {"name": "replica1", "region": "local", "host": "127.0.0.1",
                "port": c.replicas[0].port}],
        health={"interval_ms": 200},
        admin={"listen": f"127.0.0.1:{admin_port}"},
        log={"level": "warn"})
    # Ready when /status shows both roles discovered, both nodes up and the replica's
    # replay position known (reads can go there), whatever the pool mode.
    deadline = time.monotonic() + READY_TIMEOUT_S
    last = None
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/status",
                                        timeout=5) as r:
                last = json.loads(r.read().decode())
            nodes = {n["name"]: n for n in last.get("nodes", [])}
            if (last.get("ready") and all(n.get("up") for n in nodes.values())
                    and nodes.get("replica1", {}).get("role") == "replica"
                    and nodes["replica1"].get("replay_lsn")):
                break
        except (OSError, ValueError):
            pass
        if time.monotonic() > deadline:
            p.stop(check=False)
            raise RuntimeError(f"pgregion not ready within {READY_TIMEOUT_S}s: {last}\n"
                               + p.log_tail())
        time.sleep(0.1)
    return p, admin_port


def routed_counts(admin_port: int) -> dict[str, float]:
    """Units of work routed per node role, from /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics", timeout=10) as r:
        text = r.read().decode()
    counts: dict[str, float] = {}
    for line in text.splitlines():
        m = re.match(r'^pgregion_routed_total\{(.*)\}\s+([0-9.e+]+)$', line)
        if m:
            role = re.search(r'role="([^"]*)"', m.group(1))
            key = role.group(1) if role else "?"
            counts[key] = counts.get(key, 0) + float(m.group(2))
    return counts


def read_lines(path: Path) -> list[str] | None:
    return path.read_text(errors="replace").splitlines() if path.exists() else None


def compare_run(env: dict, tests: list[str], direct: Path, proxy: Path,
                ) -> tuple[int, list[compare.Difference]]:
    sql_dir = Path(env["REGRESS_SRCDIR"]) / "sql"
    total, diffs = 0, []
    for t in tests:
        d = read_lines(direct / "results" / f"{t}.out")
        if d is None:
            continue  # the reference run lacks it too: nothing to compare
        n, ds = compare.compare_test(t, d, read_lines(proxy / "results" / f"{t}.out"),
                                     (sql_dir / f"{t}.sql").read_text().splitlines())
        total += n
        diffs += ds
    for x in diffs:
        x.klass = compare.classify(x)
    return total, diffs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--modes", default="transaction,session")
    ap.add_argument("--outdir", default=None)
    ap.add_argument("--tests", default=None, help="comma list: run only these tests")
    ap.add_argument("--delay-ms", type=int, default=1, help="one-way delay to the primary")
    ap.add_argument("--allowlist", default=str(HERE / "allowlist.txt"))
    args = ap.parse_args(argv)
    modes = [m for m in args.modes.split(",") if m]
    for m in modes:
        if m not in compare.MODES:
            ap.error(f"unknown mode {m}")
    env = load_env()
    allow = compare.load_allowlist(Path(args.allowlist))
    outdir = Path(args.outdir or tempfile.mkdtemp(prefix="pgregion-regress-", dir="/tmp"))
    outdir.mkdir(parents=True, exist_ok=True)
    for sub in ["direct"] + modes:
        shutil.rmtree(outdir / sub, ignore_errors=True)
    outdir.chmod(0o755)
    schedule = outdir / "schedule"
    only = set(args.tests.split(",")) if args.tests else None
    tests = write_schedule(Path(env["REGRESS_SRCDIR"]) / "parallel_schedule", schedule, only)
    summary: dict = {"outdir": str(outdir), "tests": len(tests), "modes": {}}
    report = [f"# PostgreSQL {env.get('PG_VERSION_SOURCE')} regression suite through pgregion",
              "", f"{len(tests)} tests of parallel_schedule; primary behind a "
              f"{args.delay_ms} ms (one-way) relay; outputs in {outdir}", ""]
    ok = True
    # hot_standby_feedback off: with it, the replica's xmin (sent every 10 s) keeps
    # test_setup's VACUUM from marking tenk1 all-visible, and later plans then depend on
    # when autovacuum comes by (index-only vs bitmap scans in create_index).
    with Cluster(replicas=1, extra_conf={"hot_standby_feedback": "off"}) as c, \
            WanLink(c.primary.port, delay_ms=args.delay_ms) as link:
        fresh_db(c)
        secs = run_pg_regress(env, schedule, outdir / "direct", c.primary.port)
        print(f"direct: {secs:.0f} s", flush=True)
        summary["direct_seconds"] = round(secs, 1)
        for mode in modes:
            fresh_db(c)
            work = outdir / f"{mode}.pgregion"
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir()
            p, admin_port = start_proxy(c, link, mode, work)
            secs = run_pg_regress(env, schedule, outdir / mode, p.port)
            try:
                routed = routed_counts(admin_port)
            except OSError as e:
                routed = {"error": str(e)}
            crash = ""
            try:
                p.stop(check=True)
            except PgregionCrashed as e:
                crash = str(e).splitlines()[0]
                ok = False
            total, diffs = compare_run(env, tests, outdir / "direct", outdir / mode)
            compare.apply_allowlist(diffs, allow, mode)
            bad = [d for d in diffs if d.allowed_by is None]
            ok = ok and not bad
            stats = {"statements": total, "differing": len(bad),
                     "allowlisted": len(diffs) - len(bad),
                     "served by replica": int(routed.get("replica", 0)),
                     "routed to primary": int(routed.get("primary", 0)),
                     "seconds": round(secs, 1)}
            if crash:
                stats["pgregion crashed"] = crash
            # Per test, so that runs can be compared: the allowlisted count varies with
            # timing (stats) and pool assignment (triggers, constraints, sequence, temp).
            summary.setdefault("allowlisted_by_test", {})[mode] = {
                t: sum(1 for d in diffs if d.allowed_by is not None and d.test == t)
                for t in sorted({d.test for d in diffs if d.allowed_by is not None})}
            summary["modes"][mode] = stats
            # The unexplained differences themselves, so that a failing run (in CI, where
            # the outdir is gone afterwards) says which statements differed and how.
            summary.setdefault("unexplained", {})[mode] = [
                {"test": d.test, "class": d.klass, "direct": d.direct[:800],
                 "proxy": d.proxy[:800]} for d in bad[:10]]
            print(f"{mode}: " + ", ".join(f"{k} {v}" for k, v in stats.items()), flush=True)
            report.append(compare.render_report(mode, stats, diffs))
        summary["unused_allowlist_entries"] = [
            f"line {e.line_no}: {e.test}" for e in allow if e.used == 0]
    (outdir / "report.md").write_text("\n".join(report) + "\n")
    (outdir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"report: {outdir / 'report.md'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
