#!/usr/bin/env python3
"""A throwaway PostgreSQL 15 cluster for tests, benchmarks and the quickstart.

One primary (initdb) and N streaming replicas (pg_basebackup -R) on free
loopback ports, inside one base directory. When run as root the servers run as
the `postgres` OS user (initdb refuses root); otherwise as the current user.

Library use:

    with Cluster(replicas=1, auth="scram-sha-256", ssl=True) as c:
        c.primary.psql("select 1")
        psycopg.connect(c.primary.dsn(user="app", password="secret", dbname="appdb"))

`stop()` stops every server (immediate) and removes the base directory; it also
runs from atexit and on SIGTERM/SIGHUP, so no server outlives the process
(unless the CLI's `up` asked for that on purpose).

CLI (used by bench/ and the quickstart; keep it stable):

    /usr/bin/python3 tests/harness/cluster.py up --dir DIR --replicas N [--auth METHOD] [--ssl]
    /usr/bin/python3 tests/harness/cluster.py stream-from --dir DIR --replica NAME --port P
    /usr/bin/python3 tests/harness/cluster.py down --dir DIR

`stream-from` points a replica's WAL stream at another address (a WAN-link
relay in front of the primary, so replication lag is real) and waits until it
streams again.

`up` leaves the servers running and writes DIR/cluster.json:
    {"primary": {"name","host","port","datadir"}, "replicas": [...],
     "superuser": "postgres", "superuser_password": "postgres",
     "users": {"app": "secret"}, "databases": ["appdb"], "auth": "...",
     "socket_dir": "...", "certs": {"ca","cert","key"} or null}
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterable, Optional

PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
HOST = "127.0.0.1"
SUPERUSER = "postgres"
SUPERUSER_PASSWORD = "postgres"
AUTH_METHODS = ("scram-sha-256", "md5", "trust", "password")
CMD_TIMEOUT_S = 120
START_TIMEOUT_S = 60
STREAM_TIMEOUT_S = 60
CLUSTER_JSON = "cluster.json"
# Marker so `down` never deletes a directory the harness did not create.
MARKER = ".pgregion-test-cluster"


class ClusterError(RuntimeError):
    pass


def _is_root() -> bool:
    return os.geteuid() == 0


def _server_user() -> str:
    return "postgres" if _is_root() else pwd.getpwuid(os.geteuid()).pw_name


def _chown_to_server(path: Path) -> None:
    if _is_root():
        pw = pwd.getpwnam("postgres")
        os.chown(path, pw.pw_uid, pw.pw_gid)


_port_lock = threading.Lock()
_ports_handed_out: set[int] = set()


def free_port() -> int:
    """A loopback TCP port that is free now (bind port 0), never the same twice per process."""
    with _port_lock:
        for _ in range(200):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind((HOST, 0))
                port = s.getsockname()[1]
            if port not in _ports_handed_out:
                _ports_handed_out.add(port)
                return port
    raise ClusterError("no free port found")


def _run(cmd: list[str], *, as_server: bool = False, env: Optional[dict] = None,
         timeout: float = CMD_TIMEOUT_S, check: bool = True, input: Optional[str] = None,
         cwd: Optional[str] = None) -> subprocess.CompletedProcess:
    if as_server and _is_root():
        cmd = ["runuser", "-u", "postgres", "--"] + cmd
    full_env = dict(os.environ)
    # Never let the caller's PG* environment leak into harness commands.
    for k in list(full_env):
        if k.startswith("PG") and k not in ("PG_BIN",):
            del full_env[k]
    full_env["LC_ALL"] = "C"
    if env:
        full_env.update(env)
    try:
        cp = subprocess.run(cmd, env=full_env, timeout=timeout, capture_output=True, text=True,
                            input=input, cwd=cwd or "/")
    except subprocess.TimeoutExpired as e:
        raise ClusterError(f"timed out after {timeout}s: {' '.join(cmd)}") from e
    if check and cp.returncode != 0:
        raise ClusterError(f"command failed ({cp.returncode}): {' '.join(cmd)}\n"
                           f"stdout: {cp.stdout}\nstderr: {cp.stderr}")
    return cp


def _sql_literal(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _sql_ident(s: str) -> str:
    return '"' + s.replace('"', '""') + '"'


class Node:
    """One PostgreSQL server of the cluster."""

    def __init__(self, cluster: "Cluster", name: str, port: int, datadir: Path,
                 is_replica: bool):
        self.cluster = cluster
        self.name = name
        self.host = HOST
        self.port = port
        self.datadir = Path(datadir)
        self.is_replica = is_replica
        self.logfile = self.datadir / "server.log"

    def __repr__(self) -> str:
        return f"Node({self.name} {self.host}:{self.port})"

    # ---- connection strings ----
    def dsn(self, user: str = SUPERUSER, password: Optional[str] = None,
            dbname: str = "postgres", **kw) -> str:
        """libpq keyword/value connection string over TCP to this node."""
        if password is None:
            password = SUPERUSER_PASSWORD if user == SUPERUSER else self.cluster.users.get(user)
        parts = {"host": self.host, "port": str(self.port), "user": user, "dbname": dbname,
                 "connect_timeout": "10"}
        if password is not None:
            parts["password"] = password
        if not self.cluster.ssl:
            parts["sslmode"] = "disable"
        parts["gssencmode"] = "disable"
        for k, v in kw.items():
            if v is not None:
                parts[k] = str(v)
        return " ".join(f"{k}={_conninfo_quote(v)}" for k, v in parts.items())

    def url(self, user: str = SUPERUSER, password: Optional[str] = None,
            dbname: str = "postgres") -> str:
        if password is None:
            password = SUPERUSER_PASSWORD if user == SUPERUSER else self.cluster.users.get(user)
        cred = user if password is None else f"{user}:{password}"
        return f"postgresql://{cred}@{self.host}:{self.port}/{dbname}"

    # ---- administration ----
    def psql(self, sql: str, user: str = SUPERUSER, dbname: str = "postgres",
             timeout: float = 60, check: bool = True) -> str:
        """Runs SQL with psql -XAtq over the Unix socket (trust) and returns stdout stripped."""
        cp = _run([str(PG_BIN / "psql"), "-XAtq", "-v", "ON_ERROR_STOP=1",
                   "-h", str(self.cluster.socket_dir), "-p", str(self.port),
                   "-U", user, "-d", dbname, "-c", sql], timeout=timeout, check=check)
        return cp.stdout.strip()

    def is_running(self) -> bool:
        cp = _run([str(PG_BIN / "pg_ctl"), "status", "-D", str(self.datadir)], as_server=True,
                  check=False, timeout=30)
        return cp.returncode == 0

    def start(self, timeout: float = START_TIMEOUT_S) -> None:
        _run([str(PG_BIN / "pg_ctl"), "start", "-w", "-t", str(int(timeout)),
              "-D", str(self.datadir), "-l", str(self.logfile)],
             as_server=True, timeout=timeout + 10)
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            cp = _run([str(PG_BIN / "pg_isready"), "-h", str(self.cluster.socket_dir),
                       "-p", str(self.port), "-t", "2"], check=False, timeout=10)
            if cp.returncode == 0:
                return
            last = cp.stdout + cp.stderr
            time.sleep(0.1)
        raise ClusterError(f"{self} not ready after {timeout}s: {last}\n{self.log_tail()}")

    def stop(self, mode: str = "fast", timeout: float = 60) -> None:
        if mode not in ("smart", "fast", "immediate"):
            raise ValueError(mode)
        if not (self.datadir / "postmaster.pid").exists():
            return
        cp = _run([str(PG_BIN / "pg_ctl"), "stop", "-w", "-t", str(int(timeout)), "-m", mode,
                   "-D", str(self.datadir)], as_server=True, check=False, timeout=timeout + 10)
        if cp.returncode != 0 and (self.datadir / "postmaster.pid").exists():
            self._kill_postmaster()

    def _kill_postmaster(self) -> None:
        try:
            pid = int((self.datadir / "postmaster.pid").read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return
        for sig in (signal.SIGQUIT, signal.SIGKILL):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                return
            for _ in range(50):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    return
                time.sleep(0.1)

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    def promote(self, timeout: float = 60) -> None:
        _run([str(PG_BIN / "pg_ctl"), "promote", "-w", "-t", str(int(timeout)),
              "-D", str(self.datadir)], as_server=True, timeout=timeout + 10)
        self.is_replica = False

    def stream_from(self, port: int, host: str = HOST, timeout: float = STREAM_TIMEOUT_S) -> None:
        """Points this replica's WAL stream at host:port (e.g. a WAN-link relay in front of
        the primary): primary_conninfo is reloadable, the walreceiver reconnects. Waits
        until it streams through the new address (bounded)."""
        conninfo = (f"host={host} port={int(port)} user={SUPERUSER} "
                    f"application_name={self.name}")
        self.psql(f"alter system set primary_conninfo = {_sql_literal(conninfo)}")
        self.psql("select pg_reload_conf()")
        deadline = time.monotonic() + timeout
        while True:
            row = self.psql("select status, sender_port from pg_stat_wal_receiver", check=False)
            if row == f"streaming|{int(port)}":
                return
            if time.monotonic() > deadline:
                raise ClusterError(f"{self} does not stream from {host}:{port} after "
                                   f"{timeout}s (wal receiver: {row!r})\n{self.log_tail()}")
            time.sleep(0.1)

    def in_recovery(self) -> bool:
        return self.psql("select pg_is_in_recovery()") == "t"

    def backend_pids(self, user: Optional[str] = None, dbname: Optional[str] = None,
                     application_name: Optional[str] = None,
                     query_like: Optional[str] = None) -> list[int]:
        """PIDs of client backends (excluding the one asking), filtered as given."""
        conds = ["backend_type = 'client backend'", "pid <> pg_backend_pid()"]
        if user is not None:
            conds.append(f"usename = {_sql_literal(user)}")
        if dbname is not None:
            conds.append(f"datname = {_sql_literal(dbname)}")
        if application_name is not None:
            conds.append(f"application_name = {_sql_literal(application_name)}")
        if query_like is not None:
            conds.append(f"query like {_sql_literal(query_like)}")
        out = self.psql("select pid from pg_stat_activity where " + " and ".join(conds)
                        + " order by pid")
        return [int(x) for x in out.split()] if out else []

    def terminate_backend(self, pid: int) -> bool:
        return self.psql(f"select pg_terminate_backend({int(pid)})") == "t"

    def process_ids(self) -> list[int]:
        """The postmaster's pid, then every child's (from /proc); [] when not running."""
        try:
            postmaster = int((self.datadir / "postmaster.pid").read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return []
        children = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            # The fields after "(comm)"; comm may hold spaces or parentheses.
            fields = stat[stat.rfind(")") + 2:].split()
            if len(fields) > 1 and int(fields[1]) == postmaster:
                children.append(int(entry))
        return [postmaster] + sorted(children)

    def freeze(self) -> list[int]:
        """SIGSTOP the postmaster (first: it forks no more) and every child: a hung node
        whose kernel still accepts connections. Returns the pids for thaw()."""
        pids = self.process_ids()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGSTOP)
            except ProcessLookupError:
                pass
        return pids

    def thaw(self, pids: Iterable[int]) -> None:
        """SIGCONT what freeze() stopped (call it in a finally block)."""
        for pid in pids:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass

    def log_text(self) -> str:
        """The whole server log ("" if there is none yet)."""
        try:
            return self.logfile.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, n: int = 40) -> str:
        try:
            lines = self.logfile.read_text(errors="replace").splitlines()
        except OSError:
            return f"(no log at {self.logfile})"
        return f"--- {self.logfile} (last {n} lines) ---\n" + "\n".join(lines[-n:])

    def to_json(self) -> dict:
        return {"name": self.name, "host": self.host, "port": self.port,
                "datadir": str(self.datadir)}


def _conninfo_quote(v: str) -> str:
    v = str(v)
    if v and all(c not in v for c in " '\\"):
        return v
    return "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"


_live_clusters: "list[Cluster]" = []
_live_lock = threading.Lock()
_signal_handlers_installed = False


def _cleanup_all() -> None:
    with _live_lock:
        clusters = list(_live_clusters)
    for c in clusters:
        try:
            c.stop()
        except Exception as e:  # noqa: BLE001 - best effort at exit
            print(f"cluster cleanup failed: {e}", file=sys.stderr)


def _install_signal_handlers() -> None:
    """SIGTERM/SIGHUP become SystemExit so atexit cleanup runs (only if nobody else handles them)."""
    global _signal_handlers_installed
    if _signal_handlers_installed or threading.current_thread() is not threading.main_thread():
        return
    _signal_handlers_installed = True

    def handler(signum, frame):  # noqa: ARG001
        raise SystemExit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        try:
            if signal.getsignal(sig) in (signal.SIG_DFL, None):
                signal.signal(sig, handler)
        except (ValueError, OSError):
            pass


atexit.register(_cleanup_all)


class Cluster:
    """A primary and `replicas` streaming standbys in one temporary base directory."""

    def __init__(self, base_dir: Optional[str | os.PathLike] = None, replicas: int = 0,
                 auth: str = "scram-sha-256", ssl: bool = False,
                 users: Optional[dict[str, str]] = None,
                 databases: Iterable[str] = ("appdb",), extra_conf: Optional[dict] = None,
                 keep: Optional[bool] = None):
        if auth not in AUTH_METHODS:
            raise ValueError(f"auth must be one of {AUTH_METHODS}, not {auth!r}")
        self.requested_base_dir = Path(base_dir) if base_dir else None
        self.n_replicas = int(replicas)
        self.auth = auth
        self.ssl = bool(ssl)
        self.users = dict(users) if users is not None else {"app": "secret"}
        self.databases = list(databases)
        self.extra_conf = dict(extra_conf or {})
        # PGREGION_KEEP_CLUSTER=1 keeps the files (servers are still stopped) for debugging.
        self.keep = keep if keep is not None else os.environ.get("PGREGION_KEEP_CLUSTER") == "1"
        self.base_dir: Optional[Path] = None
        self.socket_dir: Optional[Path] = None
        self.primary: Optional[Node] = None
        self.replicas: list[Node] = []
        self.ca_file: Optional[str] = None
        self.cert_file: Optional[str] = None
        self.key_file: Optional[str] = None
        self._created_base = False
        self._started = False
        self.detached = False  # CLI `up`: do not stop at exit

    # ---- lifecycle ----
    def __enter__(self) -> "Cluster":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def nodes(self) -> list[Node]:
        return ([self.primary] if self.primary else []) + list(self.replicas)

    def start(self) -> "Cluster":
        if self._started:
            return self
        _install_signal_handlers()
        with _live_lock:
            _live_clusters.append(self)
        self._started = True
        try:
            self._make_base_dir()
            if self.ssl:
                self._make_certs()
            self._init_primary()
            for i in range(self.n_replicas):
                self._add_replica(i + 1)
            self.wait_streaming()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stops every server (immediate) and removes the base directory. Idempotent."""
        if not self._started:
            return
        errors = []
        for node in reversed(self.nodes):
            try:
                node.stop(mode="immediate", timeout=30)
            except Exception as e:  # noqa: BLE001 - keep stopping the others
                errors.append(f"{node}: {e}")
                node._kill_postmaster()
        self._started = False
        with _live_lock:
            if self in _live_clusters:
                _live_clusters.remove(self)
        if self.base_dir and not self.keep:
            self._remove_base_dir()
        if errors:
            raise ClusterError("; ".join(errors))

    def _make_base_dir(self) -> None:
        if self.requested_base_dir:
            base = self.requested_base_dir.resolve()
            if _is_root():
                for parent in base.parents:
                    if parent.exists() and not parent.stat().st_mode & 0o001:
                        raise ClusterError(f"{parent} is not traversable by the postgres "
                                           "user; choose a cluster dir under /tmp")
            if base.exists() and any(p.name != MARKER for p in base.iterdir()):
                raise ClusterError(f"{base} exists and is not empty")
            self._created_base = not base.exists()
            base.mkdir(parents=True, exist_ok=True)
        else:
            # As root the servers run as `postgres`, which must be able to reach the dir.
            base = Path(tempfile.mkdtemp(prefix="pgregion-cluster-",
                                         dir="/tmp" if _is_root() else None))
            self._created_base = True
        (base / MARKER).write_text(str(os.getpid()))
        base.chmod(0o755)
        _chown_to_server(base)
        self.base_dir = base
        # Unix socket paths are limited to ~107 bytes: keep a short socket dir.
        sock = base / "s"
        if len(str(sock)) > 80:
            sock = Path(tempfile.mkdtemp(prefix="pgr-s-"))
        sock.mkdir(exist_ok=True)
        sock.chmod(0o755)
        _chown_to_server(sock)
        self.socket_dir = sock

    def _remove_base_dir(self) -> None:
        assert self.base_dir
        if self.socket_dir and self.base_dir not in self.socket_dir.parents:
            shutil.rmtree(self.socket_dir, ignore_errors=True)
        if self._created_base:
            shutil.rmtree(self.base_dir, ignore_errors=True)
        else:
            for p in self.base_dir.iterdir():
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    try:
                        p.unlink()
                    except OSError:
                        pass

    # ---- TLS ----
    def _make_certs(self) -> None:
        assert self.base_dir
        d = self.base_dir / "certs"
        d.mkdir()
        ca_key, ca_crt = d / "ca.key", d / "ca.crt"
        key, csr, crt = d / "server.key", d / "server.csr", d / "server.crt"
        ext = d / "server.ext"
        ext.write_text("basicConstraints=CA:FALSE\n"
                       "keyUsage=digitalSignature,keyEncipherment\n"
                       "extendedKeyUsage=serverAuth\n"
                       "subjectAltName=DNS:localhost,IP:127.0.0.1\n")
        openssl = shutil.which("openssl") or "openssl"
        _run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256",
              "-days", "3650", "-subj", "/CN=pgregion-test-ca",
              "-keyout", str(ca_key), "-out", str(ca_crt)])
        _run([openssl, "req", "-newkey", "rsa:2048", "-nodes", "-sha256",
              "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(csr)])
        _run([openssl, "x509", "-req", "-in", str(csr), "-CA", str(ca_crt),
              "-CAkey", str(ca_key), "-CAcreateserial", "-days", "3650", "-sha256",
              "-extfile", str(ext), "-out", str(crt)])
        for p in (ca_crt, crt, d):
            p.chmod(0o755 if p.is_dir() else 0o644)
        for p in (ca_key, key):
            p.chmod(0o600)
        for p in (d, ca_crt, crt, key):
            _chown_to_server(p)
        self.ca_file, self.cert_file, self.key_file = str(ca_crt), str(crt), str(key)

    # ---- servers ----
    def _conf_text(self, port: int) -> str:
        assert self.socket_dir
        conf = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(port),
            "unix_socket_directories": _sql_literal(str(self.socket_dir)),
            "fsync": "off",
            "synchronous_commit": "off",
            "shared_buffers": "'32MB'",
            "max_connections": "300",
            "wal_level": "replica",
            "max_wal_senders": "10",
            "max_replication_slots": "10",
            "wal_keep_size": "'256MB'",
            "hot_standby": "on",
            "hot_standby_feedback": "on",
            "password_encryption": "'md5'" if self.auth == "md5" else "'scram-sha-256'",
            "timezone": "'UTC'",
            "log_timezone": "'UTC'",
            "datestyle": "'iso, mdy'",
            "lc_messages": "'C'",
            "log_line_prefix": "'%m [%p] %q%u@%d '",
            "log_min_messages": "warning",
            "logging_collector": "off",
            "dynamic_shared_memory_type": "posix",
            "max_prepared_transactions": "0",
            "checkpoint_timeout": "'30min'",
            "max_wal_size": "'1GB'",
        }
        if self.ssl:
            conf.update({
                "ssl": "on",
                "ssl_cert_file": _sql_literal(self.cert_file or ""),
                "ssl_key_file": _sql_literal(self.key_file or ""),
                "ssl_ca_file": _sql_literal(self.ca_file or ""),
            })
        for k, v in self.extra_conf.items():
            if isinstance(v, bool):
                v = "on" if v else "off"
            elif isinstance(v, str) and not (v.startswith("'") and v.endswith("'")):
                v = _sql_literal(v)
            conf[k] = str(v)
        return ("\n# --- pgregion test harness ---\n"
                + "".join(f"{k} = {v}\n" for k, v in conf.items()))

    def _hba_text(self) -> str:
        m = self.auth
        return ("# pgregion test harness\n"
                "local   all          all                     trust\n"
                "local   replication  all                     trust\n"
                # Replication is not what the tests exercise; keep it simple.
                "host    replication  all      127.0.0.1/32   trust\n"
                f"host    all          all      127.0.0.1/32   {m}\n")

    def _init_primary(self) -> None:
        assert self.base_dir
        datadir = self.base_dir / "primary"
        port = free_port()
        pwfile = self.base_dir / "pwfile"
        pwfile.write_text(SUPERUSER_PASSWORD + "\n")
        pwfile.chmod(0o600)
        _chown_to_server(pwfile)
        _run([str(PG_BIN / "initdb"), "-D", str(datadir), "-U", SUPERUSER,
              "--pwfile", str(pwfile), "-A", "trust", "-E", "UTF8", "--locale", "C",
              "--no-sync"], as_server=True, timeout=CMD_TIMEOUT_S)
        pwfile.unlink()
        with open(datadir / "postgresql.conf", "a") as f:
            f.write(self._conf_text(port))
        (datadir / "pg_hba.conf").write_text(self._hba_text())
        _chown_to_server(datadir / "pg_hba.conf")
        node = Node(self, "primary", port, datadir, is_replica=False)
        self.primary = node
        node.start()
        stmts = [f"ALTER ROLE {SUPERUSER} PASSWORD {_sql_literal(SUPERUSER_PASSWORD)}"]
        for user, password in self.users.items():
            pw = f"PASSWORD {_sql_literal(password)}" if password is not None else ""
            stmts.append(f"CREATE ROLE {_sql_ident(user)} LOGIN {pw}")
        owner = next(iter(self.users), SUPERUSER)
        node.psql(";\n".join(stmts))
        for db in self.databases:
            node.psql(f"CREATE DATABASE {_sql_ident(db)} OWNER {_sql_ident(owner)}")

    def _add_replica(self, index: int) -> Node:
        assert self.base_dir and self.primary
        datadir = self.base_dir / f"replica{index}"
        port = free_port()
        _run([str(PG_BIN / "pg_basebackup"), "-D", str(datadir), "-R", "-X", "stream",
              "-c", "fast", "--no-sync", "-h", HOST, "-p", str(self.primary.port),
              "-U", SUPERUSER, "--no-password"],
             as_server=True, timeout=CMD_TIMEOUT_S)
        log = datadir / "server.log"
        if log.exists():
            log.unlink()
        with open(datadir / "postgresql.conf", "a") as f:
            f.write(f"\n# --- replica{index} ---\nport = {port}\n")
        with open(datadir / "postgresql.auto.conf", "a") as f:
            # Name the walreceiver so pg_stat_replication shows which replica is which.
            f.write(f"primary_conninfo = 'host={HOST} port={self.primary.port} "
                    f"user={SUPERUSER} application_name=replica{index}'\n")
        node = Node(self, f"replica{index}", port, datadir, is_replica=True)
        self.replicas.append(node)
        node.start()
        return node

    def wait_streaming(self, timeout: float = STREAM_TIMEOUT_S) -> None:
        """Waits until every replica is in recovery and streaming from the primary."""
        if not self.replicas or not self.primary:
            return
        deadline = time.monotonic() + timeout
        pending = list(self.replicas)
        while pending and time.monotonic() < deadline:
            still = []
            for r in pending:
                out = r.psql("select pg_is_in_recovery(), "
                             "coalesce((select status from pg_stat_wal_receiver), 'none')",
                             check=False, timeout=10)
                streaming = self.primary.psql(
                    "select count(*) from pg_stat_replication where state = 'streaming' "
                    f"and application_name = {_sql_literal(r.name)}", check=False, timeout=10)
                if not (out == "t|streaming" and streaming == "1"):
                    still.append(r)
            pending = still
            if pending:
                time.sleep(0.2)
        if pending:
            raise ClusterError(f"replicas not streaming after {timeout}s: {pending}\n"
                               + "\n".join(r.log_tail() for r in pending))

    def wait_replay(self, timeout: float = 30) -> None:
        """Waits until every replica has replayed the primary's current insert LSN."""
        if not self.replicas or not self.primary:
            return
        lsn = self.primary.psql("select pg_current_wal_insert_lsn()")
        deadline = time.monotonic() + timeout
        for r in self.replicas:
            while True:
                ok = r.psql(f"select pg_last_wal_replay_lsn() >= {_sql_literal(lsn)}::pg_lsn")
                if ok == "t":
                    break
                if time.monotonic() > deadline:
                    raise ClusterError(f"{r} did not replay {lsn} within {timeout}s")
                time.sleep(0.05)

    # ---- description ----
    def certs(self) -> Optional[dict]:
        if not self.ssl:
            return None
        return {"ca": self.ca_file, "cert": self.cert_file, "key": self.key_file}

    def to_json(self) -> dict:
        return {
            "primary": self.primary.to_json() if self.primary else None,
            "replicas": [r.to_json() for r in self.replicas],
            "superuser": SUPERUSER,
            "superuser_password": SUPERUSER_PASSWORD,
            "users": dict(self.users),
            "databases": list(self.databases),
            "auth": self.auth,
            "socket_dir": str(self.socket_dir) if self.socket_dir else None,
            "certs": self.certs(),
        }


# ---------------------------------------------------------------- CLI

def _cli_up(args: argparse.Namespace) -> int:
    base = Path(args.dir).resolve()
    if (base / CLUSTER_JSON).exists():
        print(f"{base / CLUSTER_JSON} exists: run `down --dir {args.dir}` first", file=sys.stderr)
        return 1
    extra: dict = {}
    for item in args.conf or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            print(f"--conf {item!r}: expected NAME=VALUE", file=sys.stderr)
            return 2
        extra[key.strip()] = value.strip()
    c = Cluster(base_dir=base, replicas=args.replicas, auth=args.auth, ssl=args.ssl,
                extra_conf=extra)
    c.start()
    info = c.to_json()
    info["base_dir"] = str(base)
    info["created_base_dir"] = c._created_base
    text = json.dumps(info, indent=2)
    (base / CLUSTER_JSON).write_text(text + "\n")
    # Leave the servers running: forget the cluster so atexit does not stop it.
    with _live_lock:
        if c in _live_clusters:
            _live_clusters.remove(c)
    c.detached = True
    print(text)
    return 0


def _cli_down(args: argparse.Namespace) -> int:
    base = Path(args.dir).resolve()
    info_path = base / CLUSTER_JSON
    if not base.exists():
        return 0
    if not (base / MARKER).exists() and not info_path.exists():
        print(f"{base} is not a harness cluster directory; refusing to touch it", file=sys.stderr)
        return 1
    datadirs: list[Path] = []
    created = True
    socket_dir = None
    if info_path.exists():
        info = json.loads(info_path.read_text())
        nodes = ([info["primary"]] if info.get("primary") else []) + info.get("replicas", [])
        datadirs = [Path(n["datadir"]) for n in nodes]
        created = bool(info.get("created_base_dir", True))
        socket_dir = info.get("socket_dir")
    else:
        datadirs = [p for p in base.iterdir() if (p / "PG_VERSION").exists()]
    rc = 0
    for d in reversed(datadirs):
        if not (d / "postmaster.pid").exists():
            continue
        cp = _run([str(PG_BIN / "pg_ctl"), "stop", "-w", "-t", "30", "-m", "immediate",
                   "-D", str(d)], as_server=True, check=False, timeout=60)
        if cp.returncode != 0 and (d / "postmaster.pid").exists():
            n = Node.__new__(Node)
            n.datadir = d
            n._kill_postmaster()
            if (d / "postmaster.pid").exists():
                print(f"could not stop server in {d}: {cp.stderr}", file=sys.stderr)
                rc = 1
    if socket_dir and Path(socket_dir).exists() and base not in Path(socket_dir).parents:
        shutil.rmtree(socket_dir, ignore_errors=True)
    if created:
        shutil.rmtree(base, ignore_errors=True)
    else:
        for p in base.iterdir():
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
    return rc


def _cli_stream_from(args: argparse.Namespace) -> int:
    base = Path(args.dir).resolve()
    info = json.loads((base / CLUSTER_JSON).read_text())
    match = [r for r in info.get("replicas", []) if r["name"] == args.replica]
    if not match:
        print(f"no replica named {args.replica!r} in {base / CLUSTER_JSON}", file=sys.stderr)
        return 1
    c = Cluster.__new__(Cluster)
    c.socket_dir = Path(info["socket_dir"])
    c.users = dict(info.get("users", {}))
    c.ssl = bool(info.get("certs"))
    r = match[0]
    node = Node(c, r["name"], int(r["port"]), Path(r["datadir"]), is_replica=True)
    node.stream_from(args.port, args.host)
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description="PostgreSQL test cluster for pgregion")
    sub = ap.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="start a cluster and leave it running")
    up.add_argument("--dir", required=True)
    up.add_argument("--replicas", type=int, default=0)
    up.add_argument("--auth", default="scram-sha-256", choices=AUTH_METHODS)
    up.add_argument("--ssl", action="store_true")
    up.add_argument("--conf", action="append", metavar="NAME=VALUE",
                    help="a postgresql.conf setting over the harness's defaults (repeatable)")
    down = sub.add_parser("down", help="stop a cluster started with `up` and remove its files")
    down.add_argument("--dir", required=True)
    sf = sub.add_parser("stream-from", help="point a replica's WAL stream at HOST:PORT")
    sf.add_argument("--dir", required=True)
    sf.add_argument("--replica", required=True, help="replica name, e.g. replica1")
    sf.add_argument("--port", type=int, required=True)
    sf.add_argument("--host", default=HOST)
    args = ap.parse_args(argv)
    try:
        if args.cmd == "stream-from":
            return _cli_stream_from(args)
        return _cli_up(args) if args.cmd == "up" else _cli_down(args)
    except ClusterError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
