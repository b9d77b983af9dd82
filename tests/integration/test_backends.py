"""pgregion authenticating to backends (SCRAM, md5, trust, password) and TLS to backends."""

from __future__ import annotations

import subprocess

import psycopg
import pytest

from cluster import Cluster
from conftest import connect


@pytest.fixture(scope="module", params=["scram-sha-256", "md5", "trust", "password"])
def auth_cluster(request):
    with Cluster(auth=request.param) as c:
        yield c


@pytest.fixture(scope="module")
def ssl_cluster():
    with Cluster(ssl=True) as c:
        yield c


def test_backend_auth_method(auth_cluster, start_proxy):
    """The client logs in to pgregion with SCRAM; pgregion answers whatever the backend asks."""
    c = auth_cluster
    if c.auth == "md5":
        # md5 in pg_hba.conf only means md5 on the wire if the stored password is md5.
        assert c.primary.psql("select rolpassword like 'md5%' from pg_authid "
                              "where rolname = 'app'") == "t"
    p = start_proxy(c, pool={"size": 3})
    for _ in range(3):
        with connect(p) as conn:
            row = conn.execute("select current_user, current_database()").fetchone()
            assert row == ("app", "appdb")
    # Several server connections at once (each one authenticates).
    conns = [connect(p, autocommit=False) for _ in range(3)]
    try:
        pids = {cn.execute("select pg_backend_pid()").fetchone()[0] for cn in conns}
        assert len(pids) == 3
    finally:
        for cn in conns:
            cn.close()


def test_backend_wrong_server_password(auth_cluster, start_proxy):
    """Server credentials that the backend rejects give the client an error, not a hang."""
    c = auth_cluster
    p = start_proxy(c, users=[{"name": "app", "password": "secret",
                               "server_password": "not-the-password"}],
                    pool={"size": 2, "connect_timeout_ms": 3000})
    if c.auth == "trust":  # trust accepts any password
        with connect(p) as conn:
            assert conn.execute("select 1").fetchone()[0] == 1
        return
    with pytest.raises(psycopg.Error) as ei:
        with connect(p) as conn:
            conn.execute("select 1")
    assert "password authentication failed" in str(ei.value) or \
        (getattr(ei.value, "sqlstate", None) or "").startswith(("08", "28")), repr(ei.value)


def _ssl_in_use(p) -> bool:
    with connect(p) as conn:
        return conn.execute("select ssl from pg_stat_ssl where pid = pg_backend_pid()"
                            ).fetchone()[0]


def test_server_tls_disable(ssl_cluster, start_proxy):
    p = start_proxy(ssl_cluster, server_tls={"mode": "disable"})
    assert _ssl_in_use(p) is False


def test_server_tls_prefer(ssl_cluster, start_proxy):
    p = start_proxy(ssl_cluster, server_tls={"mode": "prefer"})
    assert _ssl_in_use(p) is True


def test_server_tls_require(ssl_cluster, start_proxy):
    p = start_proxy(ssl_cluster, server_tls={"mode": "require"})
    assert _ssl_in_use(p) is True


def test_server_tls_verify_full(ssl_cluster, start_proxy):
    p = start_proxy(ssl_cluster, server_tls={"mode": "verify-full",
                                             "ca_file": ssl_cluster.ca_file})
    assert _ssl_in_use(p) is True


def test_server_tls_verify_full_wrong_ca_refused(ssl_cluster, start_proxy, tmp_path):
    key, crt = tmp_path / "other.key", tmp_path / "other.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=some-other-ca", "-keyout", str(key), "-out", str(crt)],
                   check=True, capture_output=True, timeout=60)
    p = start_proxy(ssl_cluster, server_tls={"mode": "verify-full", "ca_file": str(crt)},
                    pool={"connect_timeout_ms": 3000, "acquire_timeout_ms": 3000})
    with pytest.raises(psycopg.Error):
        with connect(p) as conn:
            conn.execute("select 1")
    # Nothing reached the server as app over an unverified channel.
    assert ssl_cluster.primary.backend_pids(user="app") == []


def test_server_tls_require_against_plaintext_backend(start_proxy):
    with Cluster(ssl=False) as c:
        p = start_proxy(c, server_tls={"mode": "require"},
                        pool={"connect_timeout_ms": 3000, "acquire_timeout_ms": 3000})
        with pytest.raises(psycopg.Error):
            with connect(p) as conn:
                conn.execute("select 1")
        p.stop()
