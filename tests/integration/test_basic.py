"""Queries, COPY, notices, cancel and the command line, through pgregion."""

from __future__ import annotations

import io
import random
import re
import socket
import subprocess
import threading
import time

import psycopg
import pytest

import pgwire
from conftest import assert_serves, connect, pg_env
from pgregion import run_binary

CLUSTER_KW = {}
PROXY_KW = {"pool": {"mode": "transaction", "size": 10}}


# ---------------------------------------------------------------- command line

def test_version(pgregion_bin):
    cp = run_binary(["--version"], binary=pgregion_bin)
    assert cp.returncode == 0, cp.stderr
    out = cp.stdout + cp.stderr
    assert re.search(r"\b\d+\.\d+\.\d+\b", out), out
    assert "pgregion" in out.lower(), out


GOOD_CONFIG = """\
[proxy]
listen = "127.0.0.1:6432"
region = "local"

[pool]
mode = "transaction"
size = 10

[[users]]
name = "app"
password = "secret"

[[nodes]]
name = "primary"
region = "local"
host = "127.0.0.1"
port = 5432
"""


def _check(pgregion_bin, tmp_path, text):
    path = tmp_path / "c.toml"
    path.write_text(text)
    return run_binary(["--check", str(path)], binary=pgregion_bin)


def test_check_good_config(pgregion_bin, tmp_path):
    cp = _check(pgregion_bin, tmp_path, GOOD_CONFIG)
    assert cp.returncode == 0, cp.stdout + cp.stderr


def test_check_unknown_key_names_key_and_line(pgregion_bin, tmp_path):
    text = GOOD_CONFIG.replace('region = "local"\n\n[pool]',
                               'region = "local"\nbogus_knob = 3\n\n[pool]', 1)
    line = text.splitlines().index("bogus_knob = 3") + 1
    cp = _check(pgregion_bin, tmp_path, text)
    out = cp.stdout + cp.stderr
    assert cp.returncode != 0, out
    assert "bogus_knob" in out, out
    assert re.search(rf"\b{line}\b", out), f"line {line} not named: {out}"


def test_check_bad_value_names_key(pgregion_bin, tmp_path):
    cp = _check(pgregion_bin, tmp_path, GOOD_CONFIG.replace('mode = "transaction"',
                                                            'mode = "sometimes"'))
    out = cp.stdout + cp.stderr
    assert cp.returncode != 0, out
    assert "mode" in out, out


def test_check_unknown_section(pgregion_bin, tmp_path):
    cp = _check(pgregion_bin, tmp_path, GOOD_CONFIG + '\n[poool]\nsize = 3\n')
    out = cp.stdout + cp.stderr
    assert cp.returncode != 0, out
    assert "poool" in out, out


def test_check_not_toml(pgregion_bin, tmp_path):
    cp = _check(pgregion_bin, tmp_path, "[proxy\nlisten = ")
    assert cp.returncode != 0


def test_check_missing_file(pgregion_bin, tmp_path):
    cp = run_binary(["--check", str(tmp_path / "nope.toml")], binary=pgregion_bin)
    assert cp.returncode != 0


# ---------------------------------------------------------------- queries

def _psql(proxy, *args, input=None, check=True):
    cp = subprocess.run(["psql", "-X", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
                         "-p", str(proxy.port), "-U", "app", "-d", "appdb", *args],
                        env=pg_env("secret"), capture_output=True, text=True, timeout=60,
                        input=input)
    if check:
        assert cp.returncode == 0, cp.stdout + cp.stderr
    return cp


def test_psql_queries(proxy):
    assert _psql(proxy, "-Atc", "select 1").stdout.strip() == "1"
    out = _psql(proxy, "-At", input="""
        drop table if exists psql_t;
        create table psql_t (id int primary key, name text);
        insert into psql_t select g, 'n' || g from generate_series(1, 100) g;
        begin;
        update psql_t set name = 'changed' where id = 7;
        commit;
        select count(*), max(id) from psql_t;
        select name from psql_t where id = 7;
        \\d psql_t
        select current_user, current_database();
    """).stdout
    assert "100|100" in out, out
    assert "changed" in out, out
    assert "id|integer||not null|" in out, out  # \\d psql_t
    assert "app|appdb" in out, out


def test_psql_error_reported_and_session_continues(proxy):
    cp = _psql(proxy, "-At", "-v", "ON_ERROR_STOP=0", input="""
        select 1/0;
        select 'still here';
    """, check=False)
    assert "division by zero" in cp.stderr, cp.stderr
    assert "still here" in cp.stdout, cp.stdout


def test_extended_protocol_params_and_types(proxy):
    with connect(proxy) as conn:
        row = conn.execute("select %s::int + 1, %s::text, %s::bytea, %s::numeric, %s::jsonb",
                           (41, "héllo\tworld", b"\x00\x01\xff", "3.14", '{"a": [1, 2]}')
                           ).fetchone()
        assert row[0] == 42 and row[1] == "héllo\tworld" and bytes(row[2]) == b"\x00\x01\xff"
        assert str(row[3]) == "3.14" and row[4] == {"a": [1, 2]}
        # Binary results too.
        cur = conn.cursor(binary=True)
        assert cur.execute("select %s::int8", (2**40,)).fetchone()[0] == 2**40
        # Many rows in one result.
        assert len(conn.execute("select g from generate_series(1, 20000) g").fetchall()) == 20000


def test_error_sqlstate_and_recovery(proxy):
    with connect(proxy) as conn:
        with pytest.raises(psycopg.errors.DivisionByZero):
            conn.execute("select 1/0")
        with pytest.raises(psycopg.errors.UndefinedTable):
            conn.execute("select * from no_such_table_xyz")
        assert conn.execute("select 1").fetchone()[0] == 1
    with connect(proxy, autocommit=False) as conn:
        conn.execute("select 1")
        with pytest.raises(psycopg.errors.SyntaxError):
            conn.execute("selec 1")
        with pytest.raises(psycopg.errors.InFailedSqlTransaction):
            conn.execute("select 1")
        conn.rollback()
        assert conn.execute("select 2").fetchone()[0] == 2


def test_transactions_commit_and_rollback(proxy):
    with connect(proxy) as conn:
        conn.execute("drop table if exists tx_t")
        conn.execute("create table tx_t (x int)")
    with connect(proxy, autocommit=False) as conn:
        conn.execute("insert into tx_t values (1)")
        conn.commit()
        conn.execute("insert into tx_t values (2)")
        conn.rollback()
        with conn.transaction():
            conn.execute("insert into tx_t values (3)")
            with conn.transaction():  # savepoint
                conn.execute("insert into tx_t values (4)")
        conn.commit()
    with connect(proxy) as conn:
        assert [r[0] for r in conn.execute("select x from tx_t order by x")] == [1, 3, 4]


def test_notice_passthrough(proxy):
    with connect(proxy) as conn:
        got = []
        conn.add_notice_handler(lambda d: got.append((d.severity, d.sqlstate,
                                                      d.message_primary)))
        conn.execute("DO $$BEGIN RAISE NOTICE 'hello %', 42; END$$")
        conn.execute("DO $$BEGIN RAISE WARNING 'careful'; END$$")
        assert ("NOTICE", "00000", "hello 42") in got, got
        assert ("WARNING", "01000", "careful") in got, got
    cp = _psql(proxy, "-Atc", "DO $$BEGIN RAISE NOTICE 'via psql'; END$$")
    assert "NOTICE:  via psql" in cp.stderr, cp.stderr


def test_parameter_status_passthrough(proxy):
    with connect(proxy) as conn:
        assert conn.info.parameter_status("server_version")
        assert conn.info.parameter_status("client_encoding") == "UTF8"
        conn.execute("set application_name = 'ps_check'")
        assert conn.info.parameter_status("application_name") == "ps_check"
        conn.execute("set TimeZone = 'Asia/Tokyo'")
        assert conn.info.parameter_status("TimeZone") == "Asia/Tokyo"


def test_large_values_stream_through(proxy):
    big = "x" * (20 * 1024 * 1024)
    with connect(proxy) as conn:
        assert conn.execute("select length(repeat('y', 20*1024*1024))").fetchone()[0] == len(big)
        got = conn.execute("select repeat('z', 20*1024*1024)").fetchone()[0]
        assert len(got) == len(big) and got[:3] == "zzz"
        assert conn.execute("select length(%s)", (big,)).fetchone()[0] == len(big)


# ---------------------------------------------------------------- COPY

N_COPY_ROWS = 100_000


def _copy_payload(n: int) -> bytes:
    """COPY text-format rows in canonical form, so COPY TO must give back the same bytes."""
    rnd = random.Random(1234)
    specials = ["plain", "tab\\there", "nl\\nhere", "back\\\\slash", "ünïcødé ✓", "\\N",
                "quote'\"", "", "cr\\rx"]
    out = io.StringIO()
    for i in range(1, n + 1):
        s = specials[i % len(specials)]
        txt = s if s == "\\N" else f"{s}-{rnd.randrange(10**9)}"
        out.write(f"{i}\t{txt}\t{rnd.randrange(-10**6, 10**6)}\t{i % 7 == 0 and 't' or 'f'}\n")
    return out.getvalue().encode()


@pytest.fixture(scope="module")
def copy_payload():
    return _copy_payload(N_COPY_ROWS)


def _fresh_copy_table(conn, name):
    conn.execute(f"drop table if exists {name}")
    conn.execute(f"create table {name} (id int primary key, txt text, n int, b bool)")


def test_copy_roundtrip_psycopg(proxy, copy_payload):
    with connect(proxy) as conn:
        _fresh_copy_table(conn, "copy_py")
        with conn.cursor() as cur:
            with cur.copy("COPY copy_py FROM STDIN") as cp:
                for i in range(0, len(copy_payload), 65536):
                    cp.write(copy_payload[i:i + 65536])
            assert cur.rowcount == N_COPY_ROWS
        assert conn.execute("select count(*) from copy_py").fetchone()[0] == N_COPY_ROWS
        out = bytearray()
        with conn.cursor() as cur:
            with cur.copy("COPY (SELECT * FROM copy_py ORDER BY id) TO STDOUT") as cp:
                for chunk in cp:
                    out += chunk
        assert bytes(out) == copy_payload
        # The session is still usable after COPY in both directions.
        assert conn.execute("select 1").fetchone()[0] == 1


def test_copy_roundtrip_psql(proxy, copy_payload, tmp_path):
    src, dst = tmp_path / "in.txt", tmp_path / "out.txt"
    src.write_bytes(copy_payload)
    with connect(proxy) as conn:
        _fresh_copy_table(conn, "copy_psql")
    cp = _psql(proxy, "-c", f"\\copy copy_psql from '{src}'")
    assert f"COPY {N_COPY_ROWS}" in cp.stdout, cp.stdout + cp.stderr
    _psql(proxy, "-c", f"\\copy (select * from copy_psql order by id) to '{dst}'")
    assert dst.read_bytes() == copy_payload


def test_copy_binary_and_csv_roundtrip(proxy):
    with connect(proxy) as conn:
        _fresh_copy_table(conn, "copy_fmt")
        conn.execute("insert into copy_fmt select g, 'v,\"' || g, g, g % 2 = 0 "
                     "from generate_series(1, 5000) g")
        for fmt in ("binary", "csv"):
            data = bytearray()
            with conn.cursor().copy(f"COPY (select * from copy_fmt order by id) TO STDOUT "
                                    f"(FORMAT {fmt})") as cp:
                for chunk in cp:
                    data += chunk
            _fresh_copy_table(conn, "copy_fmt2")
            with conn.cursor().copy(f"COPY copy_fmt2 FROM STDIN (FORMAT {fmt})") as cp:
                cp.write(bytes(data))
            diff = conn.execute("select count(*) from (select * from copy_fmt except "
                                "select * from copy_fmt2) d").fetchone()[0]
            n = conn.execute("select count(*) from copy_fmt2").fetchone()[0]
            assert (diff, n) == (0, 5000), fmt


def test_copy_fail_aborts_and_session_continues(proxy):
    with connect(proxy) as conn:
        _fresh_copy_table(conn, "copy_failing")
        with pytest.raises(psycopg.errors.QueryCanceled):
            with conn.cursor().copy("COPY copy_failing FROM STDIN") as cp:
                cp.write(b"1\tx\t1\tt\n")
                raise psycopg.errors.QueryCanceled("client gave up")  # sends CopyFail
        # Malformed COPY data gives an error, not a hang.
        with pytest.raises(psycopg.errors.InvalidTextRepresentation):
            with conn.cursor().copy("COPY copy_failing FROM STDIN") as cp:
                cp.write(b"notanumber\tx\t1\tt\n")
        assert conn.execute("select count(*) from copy_failing").fetchone()[0] == 0


# ---------------------------------------------------------------- cancel

def test_cancel_pg_sleep_within_one_second(proxy):
    with connect(proxy) as conn:
        t_cancel = []

        def cancel():
            time.sleep(0.5)
            t_cancel.append(time.monotonic())
            conn.cancel()

        th = threading.Thread(target=cancel)
        th.start()
        t0 = time.monotonic()
        with pytest.raises(psycopg.errors.QueryCanceled) as ei:
            conn.execute("select pg_sleep(30)")
        t1 = time.monotonic()
        th.join(10)
        assert ei.value.sqlstate == "57014"
        assert t1 - t0 < 5
        assert t1 - t_cancel[0] < 1.0, f"cancel took {t1 - t_cancel[0]:.3f}s"
        # The client's session goes on.
        assert conn.execute("select 'after cancel'").fetchone()[0] == "after cancel"


def test_cancel_reaches_only_its_own_client(proxy):
    """A cancel for client A cancels A's query; B's concurrent query is untouched."""
    a, b = connect(proxy), connect(proxy)
    try:
        result = {}

        def run_b():
            try:
                result["b"] = b.execute("select pg_sleep(2), 'b done'").fetchone()[1]
            except Exception as e:  # noqa: BLE001
                result["b"] = e

        tb = threading.Thread(target=run_b)
        tb.start()
        threading.Timer(0.5, a.cancel).start()
        with pytest.raises(psycopg.errors.QueryCanceled):
            a.execute("select pg_sleep(10)")
        tb.join(15)
        assert result.get("b") == "b done", result
    finally:
        a.close()
        b.close()


def test_cancel_with_wrong_key_is_ignored(proxy):
    with pgwire.RawConn(proxy.host, proxy.port) as c:
        msgs = c.startup("app", "appdb", "secret")
        assert msgs and msgs[-1].type == "Z", msgs
        assert c.backend_key is not None, "no BackendKeyData"
        pid, key = c.backend_key
        c.send(pgwire.query_message("select pg_sleep(1.5), 'survived'"))
        time.sleep(0.3)
        for bad_pid, bad_key in ((pid, key ^ 1), (pid ^ 0x5A5A, key), (0, 0)):
            with socket.create_connection((proxy.host, proxy.port), timeout=5) as s:
                s.sendall(pgwire.cancel_request(bad_pid, bad_key))
                s.settimeout(5)
                try:
                    assert s.recv(100) == b""  # the proxy closes without answering
                except ConnectionResetError:
                    pass
        res = c.read_until_ready(timeout=10)
        assert pgwire.first_error(res) is None, res
        assert pgwire.data_rows(res) == [["", "survived"]]
        # And the right key does cancel.
        c.send(pgwire.query_message("select pg_sleep(20)"))
        time.sleep(0.3)
        t0 = time.monotonic()
        with socket.create_connection((proxy.host, proxy.port), timeout=5) as s:
            s.sendall(pgwire.cancel_request(pid, key))
        res = c.read_until_ready(timeout=10)
        err = pgwire.first_error(res)
        assert err and err["C"] == "57014", res
        assert time.monotonic() - t0 < 1.0
    assert_serves(proxy)


# ---------------------------------------------------------------- memory

def _proc_status_kb(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def _is_sanitized(pid: int) -> bool:
    with open(f"/proc/{pid}/maps") as f:
        return any("libasan" in line for line in f)


def test_huge_row_streams_with_bounded_memory(proxy):
    """A 128 MiB DataRow from the backend passes through without being buffered whole."""
    size = 128 * 1024 * 1024
    pid = proxy.proc.pid
    hwm_before = _proc_status_kb(pid, "VmHWM")
    with pgwire.RawConn(proxy.host, proxy.port, timeout=60) as c:
        assert c.startup("app", "appdb", "secret")[-1].type == "Z"
        c.send(pgwire.query_message(f"select repeat('x', {size})"))
        total, tail = 0, b""
        deadline = time.monotonic() + 120
        c.sock.settimeout(30)
        while time.monotonic() < deadline:
            chunk = c.sock.recv(1 << 20)
            assert chunk, "connection closed mid-result"
            total += len(chunk)
            tail = (tail + chunk)[-6:]
            if tail == b"Z\x00\x00\x00\x05I":
                break
        else:
            raise AssertionError("result not complete within 120s")
    assert total > size, total
    growth_mb = (_proc_status_kb(pid, "VmHWM") - hwm_before) / 1024
    if not _is_sanitized(pid):  # ASan's quarantine keeps freed buffers: no fair bound there
        assert growth_mb < 48, f"proxy peak RSS grew by {growth_mb:.0f} MiB for a 128 MiB row"
