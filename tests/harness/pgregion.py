"""Runs a pgregion process against a harness Cluster for integration tests.

    with Cluster() as c, Pgregion(c, pool={"mode": "session", "size": 5}) as p:
        psycopg.connect(p.dsn())

The config is generated from the cluster (all its users, one [[nodes]] entry per
node, primary first) with per-section overrides, or given verbatim as
`config_text` (`@PORT@` there is replaced by the listen port). The binary is
`binary`, else $PGREGION_BIN, else build/proxy/pgregion under the repo root.

`stop()` sends SIGTERM (SIGKILL after a bound) and raises PgregionCrashed if the
process died on its own, exited by another signal, exited non-zero, or its log
holds a sanitizer report.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cluster import Cluster, free_port  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 20
STOP_TIMEOUT_S = 15
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                     "WARNING: ThreadSanitizer", "ERROR: UndefinedBehaviorSanitizer")

# Sections whose values are one table; [[users]] and [[nodes]] are arrays of tables.
TABLE_SECTIONS = ("proxy", "admin", "tls", "server_tls", "pool", "routing", "health",
                  "failover", "log", "tenancy")
ARRAY_SECTIONS = ("users", "nodes", "databases", "tenants")


class PgregionCrashed(AssertionError):
    pass


def default_binary() -> Path:
    env = os.environ.get("PGREGION_BIN")
    if env:
        return Path(env).resolve()
    return REPO_ROOT / "build" / "proxy" / "pgregion"


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    s = str(v)
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def render_toml(sections: dict[str, Any]) -> str:
    out: list[str] = []
    for name in TABLE_SECTIONS:
        table = sections.get(name)
        if not table:
            continue
        out.append(f"[{name}]")
        out += [f"{k} = {toml_value(v)}" for k, v in table.items() if v is not None]
        out.append("")
    for name in ARRAY_SECTIONS:
        for item in sections.get(name) or []:
            out.append(f"[[{name}]]")
            out += [f"{k} = {toml_value(v)}" for k, v in item.items() if v is not None]
            out.append("")
    for name, table in sections.items():  # anything else, e.g. a future section
        if name in TABLE_SECTIONS or name in ARRAY_SECTIONS or not table:
            continue
        out.append(f"[{name}]")
        out += [f"{k} = {toml_value(v)}" for k, v in table.items() if v is not None]
        out.append("")
    return "\n".join(out)


_live: "list[Pgregion]" = []
_live_lock = threading.Lock()


def live_instances() -> "list[Pgregion]":
    with _live_lock:
        return list(_live)


class Pgregion:
    """One pgregion process. Section overrides are keyword arguments:
    proxy={...}, pool={...}, tls={...}, server_tls={...}, log={...}, ... merge over the
    defaults; users=[...] and nodes=[...] replace the generated lists."""

    def __init__(self, cluster: Optional[Cluster], config_text: Optional[str] = None,
                 binary: Optional[str | os.PathLike] = None, port: Optional[int] = None,
                 workdir: Optional[str | os.PathLike] = None, start: bool = True,
                 extra_args: Optional[list[str]] = None, env: Optional[dict] = None,
                 **sections: Any):
        self.cluster = cluster
        self.binary = Path(binary) if binary else default_binary()
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="pgregion-"))
        self._own_workdir = workdir is None
        self.config_path = self.workdir / "pgregion.toml"
        self.log_path = self.workdir / "pgregion.log"
        self.extra_args = list(extra_args or [])
        self.env = dict(env or {})
        self.proc: Optional[subprocess.Popen] = None
        self._log_fh = None
        self.sections = self._build_sections(sections) if config_text is None else None
        if config_text is not None:
            self.config_text = config_text.replace("@PORT@", str(self.port))
        else:
            self.config_text = render_toml(self.sections)
        self.users = {u["name"]: u.get("password") for u in (self.sections or {}).get("users", [])}
        self.config_path.write_text(self.config_text)
        if start:
            self.start()

    # ---- config ----
    def _build_sections(self, overrides: dict[str, Any]) -> dict[str, Any]:
        c = self.cluster
        s: dict[str, Any] = {
            "proxy": {"listen": f"127.0.0.1:{self.port}", "region": "local",
                      "shutdown_timeout_s": 2},
            "pool": {"mode": "transaction", "size": 20},
            # Tests tell which node served a read with these; PostgreSQL's answer
            # differs per node, so pgregion would otherwise send them to the primary.
            "routing": {"read_only_functions": ["pg_is_in_recovery", "inet_server_port",
                                                "inet_server_addr"]},
            "log": {"level": os.environ.get("PGREGION_TEST_LOG_LEVEL", "info")},
        }
        if c is not None:
            s["users"] = [{"name": u, "password": pw, "auth": "scram-sha-256"}
                          for u, pw in c.users.items()]
            s["nodes"] = [{"name": n.name, "region": "local", "host": n.host, "port": n.port}
                          for n in c.nodes]
        for name, value in overrides.items():
            if name in ARRAY_SECTIONS:
                s[name] = list(value)
            elif isinstance(value, dict):
                merged = dict(s.get(name, {}))
                merged.update(value)
                s[name] = merged
            else:
                raise TypeError(f"section {name} must be a dict (or a list for "
                                f"{', '.join(ARRAY_SECTIONS)})")
        return s

    # ---- lifecycle ----
    def __enter__(self) -> "Pgregion":
        if self.proc is None:
            self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop(check=exc[0] is None)

    def start(self, timeout: float = START_TIMEOUT_S) -> None:
        if not self.binary.exists():
            raise FileNotFoundError(f"pgregion binary not found at {self.binary} "
                                    "(build it or set PGREGION_BIN)")
        env = dict(os.environ)
        env.update(self.env)
        self._log_fh = open(self.log_path, "ab")
        self.proc = subprocess.Popen([str(self.binary), "--config", str(self.config_path)]
                                     + self.extra_args,
                                     stdin=subprocess.DEVNULL, stdout=self._log_fh,
                                     stderr=subprocess.STDOUT, env=env, cwd=str(self.workdir))
        with _live_lock:
            _live.append(self)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                rc = self.proc.returncode
                self._forget()
                raise PgregionCrashed(f"pgregion exited during startup (rc={rc})\n"
                                      + self.log_tail())
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop(check=False)
        raise TimeoutError(f"pgregion did not accept on port {self.port} within {timeout}s\n"
                           + self.log_tail())

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, check: bool = True, timeout: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM, then SIGKILL after `timeout`. With check, raises PgregionCrashed on a
        crash, an unexpected exit status, a hang on shutdown or a sanitizer report."""
        if self.proc is None:
            return
        proc = self.proc
        problems: list[str] = []
        died_on_its_own = proc.poll() is not None
        if died_on_its_own:
            problems.append(f"pgregion was no longer running before stop (rc={proc.returncode})")
        else:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                problems.append(f"pgregion did not exit within {timeout}s of SIGTERM")
                proc.kill()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    problems.append("pgregion did not die on SIGKILL")
        rc = proc.returncode
        if not died_on_its_own and rc is not None and rc > 0 and \
                not any("did not exit" in p for p in problems):
            problems.append(f"pgregion exited with status {rc} after SIGTERM")
        if rc is not None and rc < 0 and rc != -signal.SIGTERM and \
                not any("did not exit" in p for p in problems):
            problems.append(f"pgregion was killed by signal {-rc} "
                            f"({signal.Signals(-rc).name})")
        self._forget()
        self.proc = None
        text = self.log_text()
        for marker in SANITIZER_MARKERS:
            if marker in text:
                problems.append(f"sanitizer report in the log ({marker!r})")
                break
        if self._own_workdir and not problems and os.environ.get("PGREGION_KEEP_LOGS") != "1":
            shutil.rmtree(self.workdir, ignore_errors=True)
        if problems and check:
            raise PgregionCrashed("; ".join(problems) + f"\nlog: {self.log_path}\n"
                                  + self.log_tail(80))

    def _forget(self) -> None:
        with _live_lock:
            if self in _live:
                _live.remove(self)
        if self._log_fh:
            self._log_fh.close()
            self._log_fh = None

    def kill(self) -> None:
        """SIGKILL without checks (for tests of the proxy dying)."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._forget()

    # ---- access ----
    def dsn(self, user: str = "app", password: Optional[str] = None, dbname: str = "appdb",
            **kw: Any) -> str:
        """libpq keyword/value string to this proxy; pass sslmode=... etc. as keywords."""
        if password is None:
            password = self.client_password(user)
        parts = {"host": self.host, "port": str(self.port), "user": user, "dbname": dbname,
                 "connect_timeout": "10", "gssencmode": "disable"}
        if password is not None:
            parts["password"] = password
        for k, v in kw.items():
            if v is None:
                parts.pop(k, None)
            else:
                parts[k] = str(v)
        return " ".join(f"{k}={_quote(v)}" for k, v in parts.items())

    def client_password(self, user: str) -> Optional[str]:
        """The plaintext password a client uses for `user`: the configured one unless it is
        a stored md5 hash or SCRAM verifier, then the server password / the cluster's."""
        pw = self.users.get(user)
        if pw is not None and not _looks_hashed(pw):
            return pw
        for u in (self.sections or {}).get("users", []):
            if u.get("name") == user and u.get("server_password"):
                return u["server_password"]
        if self.cluster is not None:
            return self.cluster.users.get(user)
        return pw

    def url(self, user: str = "app", password: Optional[str] = None, dbname: str = "appdb"
            ) -> str:
        password = password if password is not None else self.client_password(user)
        cred = user if password is None else f"{user}:{password}"
        return f"postgresql://{cred}@{self.host}:{self.port}/{dbname}"

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, n: int = 40) -> str:
        lines = self.log_text().splitlines()
        return f"--- {self.log_path} (last {n} lines) ---\n" + "\n".join(lines[-n:])

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            rc = self.proc.returncode
            raise PgregionCrashed(f"pgregion died (rc={rc})\n" + self.log_tail(80))


def _kill_all_at_exit() -> None:
    for p in live_instances():
        try:
            p.kill()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


atexit.register(_kill_all_at_exit)


def _looks_hashed(pw: str) -> bool:
    if pw.startswith("SCRAM-SHA-256$"):
        return True
    return len(pw) == 35 and pw.startswith("md5") and all(c in "0123456789abcdef" for c in pw[3:])


def _quote(v: str) -> str:
    v = str(v)
    if v and all(c not in v for c in " '\\"):
        return v
    return "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"


def run_binary(args: list[str], binary: Optional[str | os.PathLike] = None,
               timeout: float = 30) -> subprocess.CompletedProcess:
    """Runs `pgregion ARGS` to completion (for --version, --check)."""
    b = Path(binary) if binary else default_binary()
    return subprocess.run([str(b)] + args, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
