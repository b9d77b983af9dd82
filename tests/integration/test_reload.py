"""Configuration reload (issue 6): SIGHUP and the console's RELOAD re-read the file
and apply what can change live without dropping clients; a bad or not applicable
file is rejected with a log line and the old configuration stays."""

from __future__ import annotations

import copy
import re
import signal
import subprocess
import time

import psycopg
import pytest

from conftest import connect, pg_env
from pgregion import Pgregion, render_toml

CLUSTER_KW = {"replicas": 1}
OPS = {"name": "ops", "password": "ops-pw", "auth": "scram-sha-256", "admin": True}


def start(cluster, pgregion_bin, tmp_path, **sections) -> Pgregion:
    users = [{"name": u, "password": pw, "auth": "scram-sha-256"}
             for u, pw in cluster.users.items()] + [OPS]
    return Pgregion(cluster, binary=pgregion_bin, workdir=tmp_path, users=users,
                    health={"interval_ms": 200}, pool={"mode": "transaction", "size": 10},
                    **sections)


def rewrite(p: Pgregion, change) -> dict:
    sections = copy.deepcopy(p.sections)
    change(sections)
    p.config_path.write_text(render_toml(sections))
    return sections


def wait_log(p: Pgregion, pattern: str, count: int = 1, timeout: float = 20) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        found = re.findall(pattern, p.log_text(), re.M)
        if len(found) >= count:
            return found
        assert time.monotonic() < deadline, f"no {pattern!r} in the log\n" + p.log_tail(40)
        time.sleep(0.05)


def console(p: Pgregion, sql: str, check: bool = True, user: str = "ops",
            password: str = OPS["password"]) -> subprocess.CompletedProcess:
    cp = subprocess.run(["psql", "-X", "-A", "-t", "-F", "|", "-v", "ON_ERROR_STOP=1",
                         "-h", p.host, "-p", str(p.port), "-U", user, "-d", "pgregion",
                         "-c", sql], env=pg_env(password), capture_output=True,
                        text=True, timeout=30)
    if check:
        assert cp.returncode == 0, cp.stdout + cp.stderr
    return cp


def config_value(p: Pgregion, key: str, password: str = OPS["password"]) -> str:
    for line in console(p, "SHOW CONFIG", password=password).stdout.splitlines():
        k, _, v = line.partition("|")
        if k == key:
            return v
    raise KeyError(key)


def pgbench(p: Pgregion, *args: str) -> subprocess.Popen:
    return subprocess.Popen(["pgbench", "-h", p.host, "-p", str(p.port), "-U", "app", *args,
                             "appdb"], env=pg_env(p.client_password("app")),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def assert_no_failures(proc: subprocess.Popen) -> None:
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    processed = re.search(r"number of transactions actually processed: (\d+)", out)
    assert processed and int(processed.group(1)) > 0, out
    failed = re.search(r"number of failed transactions: (\d+)", out)
    assert failed is None or int(failed.group(1)) == 0, out


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_sighup_under_pgbench_load(cluster, pgregion_bin, tmp_path):
    with start(cluster, pgregion_bin, tmp_path) as p:
        init = pgbench(p, "-i", "-s", "1", "-q")
        assert init.wait(timeout=120) == 0, init.stdout.read()
        cluster.wait_replay()
        reads = pgbench(p, "-n", "-S", "-c", "4", "-j", "2", "-T", "8")
        writes = pgbench(p, "-n", "-c", "2", "-j", "1", "-T", "8")
        time.sleep(1.5)

        # A good change: pool size, timeouts, a routing setting, the probes' interval.
        def good(s):
            s["pool"]["size"] = 12
            s["pool"]["acquire_timeout_ms"] = 7000
            s["routing"] = {"max_replica_lag_ms": 4000}
            s["health"]["interval_ms"] = 300
        good_sections = rewrite(p, good)
        p.proc.send_signal(signal.SIGHUP)
        line = wait_log(p, r"event=config_reloaded trigger=SIGHUP changed=\S+")[0]
        for key in ("pool.size", "pool.acquire_timeout_ms", "routing.max_replica_lag_ms",
                    "health.interval_ms"):
            assert key in line, line
        time.sleep(1)

        # A broken file: rejected, the running config stays.
        p.config_path.write_text(render_toml(good_sections) + "\n[pool]\nsize = 'x'\n")
        p.proc.send_signal(signal.SIGHUP)
        wait_log(p, r"event=reload_failed trigger=SIGHUP error=")
        time.sleep(0.5)

        # A change that needs a restart: rejected, naming the key.
        def needs_restart(s):
            s["proxy"]["listen"] = "127.0.0.1:1"
            s["pool"]["size"] = 30
        rewrite(p, needs_restart)
        p.proc.send_signal(signal.SIGHUP)
        line = wait_log(p, r"event=reload_failed trigger=SIGHUP restart_needed=\S+")[0]
        assert "proxy.listen" in line, line

        assert_no_failures(reads)
        assert_no_failures(writes)
        assert config_value(p, "pool.size") == "12"
        assert config_value(p, "pool.acquire_timeout_ms") == "7000"
        assert config_value(p, "health.interval_ms") == "300"
        assert p.alive()


@pytest.mark.timeout(120)
def test_console_reload_and_users(cluster, pgregion_bin, tmp_path):
    with start(cluster, pgregion_bin, tmp_path) as p:
        kept = connect(p)
        assert console(p, "RELOAD").stdout.strip() == "RELOAD"  # nothing changed; no rows
        wait_log(p, r"event=config_reloaded trigger=RELOAD changed=nothing")

        # A new user and a new password for the admin: new logins see them.
        def users(s):
            s["users"] = s["users"] + [{"name": "ops2", "password": "pw2", "admin": True}]
            s["users"][1]["password"] = "ops-pw-new"
        rewrite(p, users)
        console(p, "RELOAD")
        line = wait_log(p, r"event=config_reloaded trigger=RELOAD changed=\S+")[-1]
        assert "users.ops.password" in line and "ops-pw-new" not in p.log_text()
        cp = console(p, "SHOW VERSION", check=False)
        assert cp.returncode != 0 and "password authentication failed" in cp.stderr
        assert "pgregion" in console(p, "SHOW VERSION", user="ops2", password="pw2").stdout
        new_pw = "ops-pw-new"
        assert "pgregion" in console(p, "SHOW VERSION", password=new_pw).stdout

        # A bad file through the console: an error naming the problem; nothing changes.
        p.config_path.write_text(p.config_path.read_text() + "\nbogus_key = 1\n")
        cp = console(p, "RELOAD", check=False, password=new_pw)
        assert cp.returncode != 0, cp.stdout
        assert "bogus_key" in cp.stderr and "previous configuration stays" in cp.stderr, cp.stderr
        assert config_value(p, "pool.size", password=new_pw) == "10"
        # The client connected before the reloads was never dropped.
        assert kept.execute("select 41 + 1").fetchone()[0] == 42
        kept.close()
