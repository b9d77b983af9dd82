"""Client authentication and client-facing TLS."""

from __future__ import annotations

import re

import psycopg
import pytest

import pgwire
from conftest import assert_serves, connect
from pgwire import md5_hash, scram_verifier

CLUSTER_KW = {"ssl": True}

FAILED_MSG = 'password authentication failed for user "{}"'


def _tls(cluster, mode):
    return {"mode": mode, "cert_file": cluster.cert_file, "key_file": cluster.key_file}


def _raw_login(p, user, password, db="appdb", **kw):
    with pgwire.RawConn(p.host, p.port) as c:
        return c.startup(user, db, password, **kw)


def _assert_auth_failed(msgs, user):
    err = pgwire.first_error(msgs)
    assert err is not None, msgs
    assert err.get("S") == "FATAL", err
    assert err.get("C") == "28P01", err
    assert err.get("M") == FAILED_MSG.format(user), err
    assert not any(m.type == "Z" for m in msgs)


# ---------------------------------------------------------------- passwords

def test_scram_login(cluster, start_proxy):
    p = start_proxy(cluster)
    msgs = _raw_login(p, "app", "secret")
    assert msgs[0].type == "R" and msgs[0].auth_code == pgwire.AUTH_SASL, msgs
    assert b"SCRAM-SHA-256\0" in msgs[0].body
    assert msgs[-1].type == "Z", msgs
    assert any(m.type == "K" for m in msgs), "no BackendKeyData"
    with connect(p) as conn:
        assert conn.execute("select current_user").fetchone()[0] == "app"


def test_wrong_password(cluster, start_proxy):
    p = start_proxy(cluster)
    _assert_auth_failed(_raw_login(p, "app", "wrong"), "app")
    with pytest.raises(psycopg.OperationalError) as ei:
        connect(p, password="wrong")
    assert FAILED_MSG.format("app") in str(ei.value)
    assert "FATAL" in str(ei.value)
    assert_serves(p)


def test_unknown_user_same_error(cluster, start_proxy):
    p = start_proxy(cluster)
    known = _raw_login(p, "app", "wrong")
    unknown = _raw_login(p, "mallory", "whatever")
    _assert_auth_failed(unknown, "mallory")
    # No user enumeration: the unknown user is asked the same way as a known one.
    assert unknown[0].type == "R" and unknown[0].auth_code == known[0].auth_code, (known, unknown)
    with pytest.raises(psycopg.OperationalError) as ei:
        connect(p, user="mallory", password="whatever")
    assert FAILED_MSG.format("mallory") in str(ei.value)


def test_md5_client_auth(cluster, start_proxy):
    p = start_proxy(cluster, users=[{"name": "app", "password": "secret", "auth": "md5"}])
    msgs = _raw_login(p, "app", "secret")
    assert msgs[0].auth_code == pgwire.AUTH_MD5, msgs
    assert msgs[-1].type == "Z", msgs
    _assert_auth_failed(_raw_login(p, "app", "bad"), "app")
    with connect(p) as conn:
        assert conn.execute("select current_user").fetchone()[0] == "app"


def test_md5_stored_hash(cluster, start_proxy):
    p = start_proxy(cluster, users=[{"name": "app", "password": md5_hash("secret", "app"),
                                     "auth": "md5", "server_password": "secret"}])
    with connect(p) as conn:
        assert conn.execute("select 1").fetchone()[0] == 1
    _assert_auth_failed(_raw_login(p, "app", "bad"), "app")


def test_trust_client_auth(cluster, start_proxy):
    p = start_proxy(cluster, users=[{"name": "app", "auth": "trust",
                                     "server_password": "secret"}])
    msgs = _raw_login(p, "app", None)
    assert msgs[0].type == "R" and msgs[0].auth_code == pgwire.AUTH_OK, msgs
    assert msgs[-1].type == "Z", msgs
    with connect(p, password="") as conn:
        assert conn.execute("select current_user").fetchone()[0] == "app"


def test_scram_verifier_in_place_of_password(cluster, start_proxy):
    p = start_proxy(cluster, users=[{"name": "app", "password": scram_verifier("secret"),
                                     "server_password": "secret"}])
    with connect(p) as conn:
        assert conn.execute("select current_user").fetchone()[0] == "app"
    _assert_auth_failed(_raw_login(p, "app", "bad"), "app")


def test_server_credentials_mapping(cluster, start_proxy):
    p = start_proxy(cluster, users=[{"name": "front", "password": "frontpw",
                                     "server_user": "app", "server_password": "secret"}])
    with connect(p, user="front", password="frontpw") as conn:
        assert conn.execute("select current_user").fetchone()[0] == "app"
    _assert_auth_failed(_raw_login(p, "front", "secret"), "front")


# ---------------------------------------------------------------- TLS

def test_tls_require_refuses_plaintext(cluster, start_proxy):
    p = start_proxy(cluster, tls=_tls(cluster, "require"))
    with pgwire.RawConn(p.host, p.port) as c:
        c.send(pgwire.startup_message({"user": "app", "database": "appdb"}))
        msgs, closed = c.messages_until_closed(timeout=5)
    assert closed, msgs
    assert not any(m.type == "R" for m in msgs), msgs
    err = pgwire.first_error(msgs)
    assert err is not None, f"no ErrorResponse before close: {msgs}"
    assert err["S"] == "FATAL", err
    assert re.search(r"ssl|tls|encrypt", err["M"], re.I), err
    with pytest.raises(psycopg.OperationalError) as ei:
        connect(p, sslmode="disable")
    assert re.search(r"ssl|tls|encrypt", str(ei.value), re.I), str(ei.value)


def test_tls_require_accepts_sslmode_require(cluster, start_proxy):
    p = start_proxy(cluster, tls=_tls(cluster, "require"))
    with connect(p, sslmode="require") as conn:
        assert conn.pgconn.ssl_in_use
        assert conn.execute("select current_user").fetchone()[0] == "app"


def test_tls_verify_full(cluster, start_proxy):
    p = start_proxy(cluster, tls=_tls(cluster, "require"))
    with connect(p, sslmode="verify-full", sslrootcert=cluster.ca_file, host="localhost",
                 hostaddr="127.0.0.1") as conn:
        assert conn.pgconn.ssl_in_use
        assert conn.execute("select 1").fetchone()[0] == 1
    # Verification really happens: a name not in the certificate is refused by libpq.
    with pytest.raises(psycopg.OperationalError):
        connect(p, sslmode="verify-full", sslrootcert=cluster.ca_file, host="127.0.0.2",
                hostaddr="127.0.0.1")


def test_channel_binding_require(cluster, start_proxy):
    p = start_proxy(cluster, tls=_tls(cluster, "require"))
    with connect(p, sslmode="require", channel_binding="require") as conn:
        assert conn.execute("select 1").fetchone()[0] == 1
    # And at the wire level: SCRAM-SHA-256-PLUS offered and completed.
    with pgwire.RawConn(p.host, p.port) as c:
        assert c.request_ssl(cafile=cluster.ca_file) == b"S"
        msgs = c.startup("app", "appdb", "secret", channel_binding=True)
        assert b"SCRAM-SHA-256-PLUS\0" in msgs[0].body, msgs
        assert msgs[-1].type == "Z", msgs
        rows = pgwire.data_rows(c.query("select 'bound'"))
        assert rows == [["bound"]]


def test_channel_binding_mismatch_rejected(cluster, start_proxy):
    p = start_proxy(cluster, tls=_tls(cluster, "require"))
    with pgwire.RawConn(p.host, p.port) as c:
        assert c.request_ssl(cafile=cluster.ca_file) == b"S"
        c.peer_cert_der = b"not the certificate the proxy presented"
        msgs = c.startup("app", "appdb", "secret", channel_binding=True)
        assert pgwire.first_error(msgs) is not None, msgs
        assert not any(m.type == "Z" for m in msgs), msgs


def test_tls_allow_accepts_both(cluster, start_proxy):
    p = start_proxy(cluster, tls=_tls(cluster, "allow"))
    with connect(p, sslmode="disable") as conn:
        assert not conn.pgconn.ssl_in_use
        assert conn.execute("select 1").fetchone()[0] == 1
    with connect(p, sslmode="require") as conn:
        assert conn.pgconn.ssl_in_use
        assert conn.execute("select 1").fetchone()[0] == 1


def test_tls_disable_answers_n_then_plaintext(cluster, start_proxy):
    p = start_proxy(cluster)
    with pgwire.RawConn(p.host, p.port) as c:
        assert c.request_ssl() == b"N"
        msgs = c.startup("app", "appdb", "secret")
        assert msgs[-1].type == "Z", msgs
    with pytest.raises(psycopg.OperationalError):
        connect(p, sslmode="require")
    with connect(p, sslmode="prefer") as conn:
        assert not conn.pgconn.ssl_in_use
