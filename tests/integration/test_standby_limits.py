"""What a standby cannot run, or shows differently, goes to the primary (issue 17, items
4 and 6): each scenario runs on a direct connection to the primary and through pgregion
(transaction pooling, a replica serving reads), and the answers must be equal."""

from __future__ import annotations

import psycopg
import pytest

CLUSTER_KW = {"replicas": 1}


def run(conn: psycopg.Connection, statements: list[str]) -> list:
    """Each statement's rows (or status), or the SQLSTATE of its error."""
    out = []
    for sql in statements:
        try:
            cur = conn.execute(sql)
            out.append(cur.fetchall() if cur.description else cur.statusmessage)
        except psycopg.Error as e:
            out.append(("error", e.sqlstate))
    return out


@pytest.fixture(scope="module")
def both(cluster, proxy):
    cluster.primary.psql("drop table if exists sl_t; create table sl_t (x int); "
                         "grant all on sl_t to app; drop sequence if exists sl_seq; "
                         "create sequence sl_seq; grant all on sl_seq to app", dbname="appdb")
    cluster.wait_streaming()

    def compare(statements: list[str], cleanup: str | None = None):
        results = []
        for dsn in (cluster.primary.dsn(user="app", dbname="appdb"), proxy.dsn()):
            with psycopg.connect(dsn, autocommit=True) as conn:
                results.append(run(conn, statements))
            if cleanup:
                cluster.primary.psql(cleanup, dbname="appdb")
        assert results[1] == results[0], f"direct {results[0]}\npgregion {results[1]}"
        return results[1]
    return compare


SCENARIOS = {
    "begin read only, then read write": [
        "BEGIN READ ONLY", "SET TRANSACTION READ WRITE", "INSERT INTO sl_t VALUES (1)",
        "COMMIT", "SELECT count(*) FROM sl_t"],
    "read-only session default, then read write": [
        "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY", "BEGIN",
        "SET TRANSACTION READ WRITE", "INSERT INTO sl_t VALUES (2)", "COMMIT",
        "SELECT count(*) FROM sl_t"],
    "serializable read only": [
        "BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY", "SELECT count(*) FROM sl_t", "COMMIT"],
    "serializable set transaction": [
        "BEGIN", "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", "SELECT count(*) FROM sl_t",
        "COMMIT"],
    "serializable session default": [
        "SET default_transaction_isolation = serializable", "SELECT count(*) FROM sl_t",
        "SHOW transaction_isolation"],
    "read write too late": [
        "BEGIN READ ONLY", "SELECT 1", "SET TRANSACTION READ WRITE", "ROLLBACK"],
    "sequence relation after nextval": [
        "SELECT nextval('sl_seq') > 0", "SELECT last_value > 0, log_cnt FROM sl_seq"],
    "advisory locks in pg_locks": [
        "SELECT pg_advisory_lock(4711)",
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 4711",
        "SELECT pg_advisory_unlock(4711)"],
    "wal receiver": ["SELECT count(*) FROM pg_stat_wal_receiver"],
    "transaction_read_only": ["SHOW transaction_read_only"],
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_same_answer_as_the_primary(both, name):
    both(SCENARIOS[name], cleanup="truncate sl_t; alter sequence sl_seq restart")
