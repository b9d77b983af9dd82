"""Hostile and broken clients at the wire level. Nothing they send may crash pgregion,
be processed when it must not be, or hang a connection forever."""

from __future__ import annotations

import random
import socket
import ssl
import struct
import time

import pytest

import pgwire
from conftest import assert_serves, connect
from pgwire import RawConn, startup_message, tagged

CLUSTER_KW = {"ssl": True}
MAX_MESSAGE_BYTES = 1 << 20


@pytest.fixture(scope="module")
def proxy(cluster, pgregion_bin):
    from pgregion import Pgregion
    p = Pgregion(cluster, binary=pgregion_bin,
                 tls={"mode": "allow", "cert_file": cluster.cert_file,
                      "key_file": cluster.key_file},
                 proxy={"max_message_bytes": MAX_MESSAGE_BYTES,
                        "client_login_timeout_ms": 3000},
                 pool={"size": 5})
    yield p
    p.stop(check=True)


@pytest.fixture(autouse=True)
def _still_serves(proxy):
    yield
    assert_serves(proxy, sslmode="disable")


def _logged_in(proxy) -> RawConn:
    c = RawConn(proxy.host, proxy.port)
    msgs = c.startup("app", "appdb", "secret")
    assert msgs and msgs[-1].type == "Z", msgs
    return c


# ---------------------------------------------------------------- SSLRequest / GSSENC

def test_bytes_after_ssl_request_are_never_processed(proxy):
    """CVE-2021-23214 / CVE-2021-43767: a plaintext StartupMessage stuffed behind the
    SSLRequest in the same packet must not be answered as if it came over TLS."""
    with RawConn(proxy.host, proxy.port) as c:
        c.send(pgwire.ssl_request() + startup_message({"user": "app", "database": "appdb"}))
        data, closed = c.read_until_closed(timeout=4)
    assert data[:1] in (b"S", b"E", b""), data[:40]
    rest = data[1:] if data[:1] == b"S" else data
    # After 'S' only a TLS alert or an ErrorResponse is acceptable, never an auth request.
    assert rest[:1] in (b"", b"E", b"\x15"), f"injected startup was processed: {data[:60]!r}"
    assert b"R\x00\x00\x00" not in rest[:16], data[:60]
    if rest[:1] == b"":
        # The proxy may also just wait for a ClientHello that never comes; it must not
        # have answered the injected startup in any case, and must close eventually.
        assert closed or len(data) <= 1


def test_bytes_after_ssl_request_then_real_tls_still_safe(proxy, cluster):
    """Even if the client then goes on with a TLS handshake, the stuffed plaintext
    startup is not executed (the handshake fails or the connection is closed)."""
    with RawConn(proxy.host, proxy.port) as c:
        c.send(pgwire.ssl_request() + startup_message({"user": "app", "database": "appdb"}))
        answer = c.read_bytes(1, timeout=5)
        if answer != b"S":
            return
        try:
            c.start_tls(cafile=cluster.ca_file)
        except (ssl.SSLError, OSError, pgwire.WireError):
            return
        # TLS somehow up: the server must now expect a StartupMessage, not send 'R'.
        c.sock.settimeout(1.5)
        try:
            got = c.sock.recv(100)
        except (socket.timeout, TimeoutError, ssl.SSLError, OSError):
            got = b""
        assert not got.startswith(b"R"), got


def test_gssenc_request_gets_n(proxy):
    with RawConn(proxy.host, proxy.port) as c:
        c.send(pgwire.gssenc_request())
        assert c.read_bytes(1, timeout=5) == b"N"
        msgs = c.startup("app", "appdb", "secret")  # and the connection goes on
        assert msgs[-1].type == "Z", msgs


def test_gssenc_then_ssl_request(proxy, cluster):
    with RawConn(proxy.host, proxy.port) as c:
        c.send(pgwire.gssenc_request())
        assert c.read_bytes(1, timeout=5) == b"N"
        assert c.request_ssl(cafile=cluster.ca_file) == b"S"
        msgs = c.startup("app", "appdb", "secret")
        assert msgs[-1].type == "Z", msgs
        assert pgwire.data_rows(c.query("select 'tls'")) == [["tls"]]


def test_direct_tls_with_alpn(proxy, cluster):
    """PostgreSQL 17 sslnegotiation=direct: TLS ClientHello first, ALPN "postgresql"."""
    with RawConn(proxy.host, proxy.port) as c:
        c.start_tls(cafile=cluster.ca_file, alpn=["postgresql"])
        assert c.sock.selected_alpn_protocol() == "postgresql"
        msgs = c.startup("app", "appdb", "secret", channel_binding=True)
        assert msgs[-1].type == "Z", msgs
        assert pgwire.data_rows(c.query("select 'direct'")) == [["direct"]]


# ---------------------------------------------------------------- startup packets

def _expect_rejected(proxy, payload: bytes, timeout: float = 5.0, shut_wr: bool = False):
    with RawConn(proxy.host, proxy.port) as c:
        c.send(payload)
        if shut_wr:
            c.sock.shutdown(socket.SHUT_WR)
        data, closed = c.read_until_closed(timeout=timeout)
    assert closed, f"connection not closed within {timeout}s; got {data[:60]!r}"
    # Either nothing or an ErrorResponse; never an auth request or ReadyForQuery.
    assert data[:1] in (b"", b"E"), data[:80]
    return data


def _error_fields(data: bytes) -> dict:
    assert data[:1] == b"E"
    (n,) = struct.unpack("!i", data[1:5])
    return pgwire.parse_fields(data[5:1 + n])


@pytest.mark.parametrize("name,payload", [
    ("length_below_minimum", struct.pack("!i", 4)),
    ("length_zero", struct.pack("!i", 0)),
    ("length_negative", struct.pack("!i", -8) + b"\0" * 8),
    ("unknown_protocol", struct.pack("!ii", 8, 0x12345678)),
    ("protocol_2", struct.pack("!ii", 8, 2 << 16)),
    ("protocol_4", startup_message({"user": "app", "database": "appdb"}, 4 << 16)),
    ("params_not_terminated", struct.pack("!ii", 8 + 9, 3 << 16) + b"user\0app"),
    ("value_missing", struct.pack("!ii", 8 + 6, 3 << 16) + b"user\0\0"),
    ("no_user", startup_message({"database": "appdb"})),
    ("cancel_request_too_short", struct.pack("!ii", 12, pgwire.CANCEL_REQUEST_CODE) + b"\0" * 4),
])
def test_malformed_startup(proxy, name, payload):
    data = _expect_rejected(proxy, payload, shut_wr=True)
    if data:
        assert _error_fields(data).get("S") in ("FATAL", "ERROR")


def test_truncated_startup_then_eof(proxy):
    full = startup_message({"user": "app", "database": "appdb"})
    for cut in (1, 3, 4, 7, len(full) - 1):
        _expect_rejected(proxy, full[:cut], shut_wr=True)


def test_oversized_startup_length(proxy):
    for length in (MAX_MESSAGE_BYTES + 100, 0x7FFFFFFF):
        data = _expect_rejected(proxy, struct.pack("!ii", length, 3 << 16) + b"user\0app\0\0")
        if data:
            assert _error_fields(data).get("C") in ("08P01", "54000"), data


def test_random_garbage_instead_of_startup(proxy):
    rnd = random.Random(20231214)
    for _ in range(25):
        garbage = bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 600)))
        if garbage[:1] == b"\x16":  # would start a direct TLS handshake: fine, but slower
            garbage = b"\x00" + garbage
        with RawConn(proxy.host, proxy.port) as c:
            c.send(garbage)
            c.sock.shutdown(socket.SHUT_WR)
            data, closed = c.read_until_closed(timeout=5)
        assert closed, garbage[:20]
        assert not data.startswith(b"R"), (garbage[:20], data[:40])


# ---------------------------------------------------------------- after login

def test_oversized_message_after_login(proxy):
    with _logged_in(proxy) as c:
        t0 = time.monotonic()
        c.send(b"Q" + struct.pack("!i", MAX_MESSAGE_BYTES + 1000) + b"select ")
        msgs, closed = c.messages_until_closed(timeout=5)
    assert closed, msgs
    assert time.monotonic() - t0 < 5
    err = pgwire.first_error(msgs)
    assert err is not None and err["C"] in ("08P01", "54000"), msgs


def test_huge_declared_length_after_login(proxy):
    with _logged_in(proxy) as c:
        c.send(b"Q" + struct.pack("!i", 0x7FFFFFF0))
        msgs, closed = c.messages_until_closed(timeout=5)
    assert closed, msgs
    err = pgwire.first_error(msgs)
    assert err is not None and err["C"] in ("08P01", "54000"), msgs


def test_negative_length_after_login(proxy):
    with _logged_in(proxy) as c:
        c.send(b"Q" + struct.pack("!i", 2))  # below the 4-byte minimum
        msgs, closed = c.messages_until_closed(timeout=5)
    assert closed, msgs
    err = pgwire.first_error(msgs)
    assert err is not None and err["C"] == "08P01", msgs


def test_message_just_under_limit_passes(proxy):
    with _logged_in(proxy) as c:
        filler = "x" * (MAX_MESSAGE_BYTES - 200)
        res = c.query(f"select length('{filler}')", timeout=30)
        assert pgwire.data_rows(res) == [[str(len(filler))]], res[:3]


def test_unknown_message_type_after_login(proxy):
    with _logged_in(proxy) as c:
        c.send(tagged("z", b"abc"))
        msgs, closed = c.messages_until_closed(timeout=5)
    assert closed, msgs
    err = pgwire.first_error(msgs)
    assert err is not None, msgs
    assert err["C"] == "08P01", err
    assert err["S"] == "FATAL", err


def test_backend_only_message_type_from_client(proxy):
    """'Z' (ReadyForQuery) is a backend message; a client sending it breaks the protocol."""
    with _logged_in(proxy) as c:
        c.send(tagged("Z", b"I"))
        msgs, closed = c.messages_until_closed(timeout=5)
    assert closed, msgs
    err = pgwire.first_error(msgs)
    assert err is not None and err["C"] == "08P01", msgs


def test_client_eof_mid_message(proxy):
    with _logged_in(proxy) as c:
        c.send(b"Q" + struct.pack("!i", 100) + b"select 1")  # 92 bytes promised, 8 sent
        c.sock.shutdown(socket.SHUT_WR)
        _, closed = c.read_until_closed(timeout=5)
    assert closed


def test_terminate_closes_cleanly(proxy):
    with _logged_in(proxy) as c:
        c.send(pgwire.terminate_message())
        data, closed = c.read_until_closed(timeout=5)
    assert closed and data == b""


# ---------------------------------------------------------------- protocol versions

@pytest.mark.parametrize("minor", [2, 9999])
def test_negotiate_protocol_version(proxy, minor):
    with RawConn(proxy.host, proxy.port) as c:
        msgs = c.startup("app", "appdb", "secret", version=(3 << 16) | minor,
                         extra={"_pq_.bogus": "1", "_pq_.other_bogus": "x"})
        assert msgs, "no answer"
        v = msgs[0]
        assert v.type == "v", msgs
        (newest,) = struct.unpack("!i", v.body[:4])
        newest_minor = newest & 0xFFFF
        assert newest >> 16 in (0, 3), newest
        assert newest_minor <= minor, newest
        if minor == 9999:
            assert newest_minor < 9999
        (n_opts,) = struct.unpack("!i", v.body[4:8])
        opts = [o.decode() for o in v.body[8:].split(b"\0") if o]
        assert n_opts == len(opts) == 2 and set(opts) == {"_pq_.bogus", "_pq_.other_bogus"}, \
            v.body
        # Then authentication goes on as usual.
        assert msgs[1].type == "R", msgs
        assert msgs[-1].type == "Z", msgs
        assert pgwire.data_rows(c.query("select 'negotiated'")) == [["negotiated"]]


def test_newer_minor_without_options(proxy):
    with RawConn(proxy.host, proxy.port) as c:
        msgs = c.startup("app", "appdb", "secret", version=(3 << 16) | 9999)
        assert msgs[-1].type == "Z", msgs
        vs = [m for m in msgs if m.type == "v"]
        assert len(vs) == 1 and msgs[0].type == "v", msgs
        assert struct.unpack("!i", vs[0].body[4:8])[0] == 0


def test_psql_via_tls_allow_proxy(proxy, cluster):
    with connect(proxy, sslmode="verify-full", sslrootcert=cluster.ca_file, host="localhost",
                 hostaddr="127.0.0.1") as conn:
        assert conn.pgconn.ssl_in_use
