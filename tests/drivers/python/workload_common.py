"""Shared by the ORM driver programs (sqlalchemy_app.py, django_app's run_requests command):
the expected model each client keeps, the per-unit record, and the JSON summary.

Data model (the same tables for both ORMs, created by each program's setup):
  products(id, name, price)        written once by setup, read by everyone
  accounts(id, owner, balance)     ACCOUNTS_PER_CLIENT rows per client, written only by
                                   that client, so its model is authoritative
  orders(id, owner, account_id, product_id, price)   inserted by the client that owns them

A client's units are request-style: a read-only unit reads its accounts, some products
and its order count in one transaction; a read-write unit reads an account and a
product, inserts an order and debits the account. Every value read is compared with the
model; a difference is a wrong result (pgregion must surface a replay mismatch as 40001,
never as different data). The LAST statement of every transaction is
SELECT pg_is_in_recovery(): where the transaction ended.
"""

from __future__ import annotations

import json
import random
import threading
import time

PRODUCTS = 40
ACCOUNTS_PER_CLIENT = 4
INITIAL_BALANCE = 100000
MAX_RETRIES = 5  # per unit, on 40001


def product_price(pid: int) -> int:
    return 100 + (pid * 37) % 900


def product_name(pid: int) -> str:
    return f"product-{pid:03d}"


def owner_name(tag: str, client: int) -> str:
    return f"{tag}-c{client}"


class ClientModel:
    """What one client expects the database to hold for its own rows."""

    def __init__(self, tag: str, client: int, account_ids: list[int]):
        self.owner = owner_name(tag, client)
        self.balances = {a: INITIAL_BALANCE for a in account_ids}
        self.orders = 0
        self.rng = random.Random(f"{tag}/{client}")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    v = sorted(values)
    i = min(len(v) - 1, max(0, int(round(q * len(v) + 0.5)) - 1))
    return v[i]


class Summary:
    """Thread-safe counters and per-kind latencies; `as_dict()` is the JSON printed."""

    def __init__(self, driver: str):
        self.driver = driver
        self.lock = threading.Lock()
        self.units = 0
        self.read_only = 0
        self.read_only_on_replica = 0
        self.read_write = 0
        self.read_write_on_replica = 0  # must stay 0: a write cannot commit on a standby
        self.wrong = 0
        self.serialization_failures = 0  # 40001 seen (each retried)
        self.retries = 0
        self.gave_up = 0  # units that failed MAX_RETRIES times
        self.errors: list[str] = []
        self.wrong_samples: list[str] = []
        self.latency = {"read_only": [], "read_write": []}
        self.started = time.monotonic()

    def unit_done(self, kind: str, on_replica: bool, seconds: float) -> None:
        with self.lock:
            self.units += 1
            if kind == "read_only":
                self.read_only += 1
                self.read_only_on_replica += int(on_replica)
            else:
                self.read_write += 1
                self.read_write_on_replica += int(on_replica)
            self.latency[kind].append(seconds * 1000.0)

    def wrong_result(self, what: str) -> None:
        with self.lock:
            self.wrong += 1
            if len(self.wrong_samples) < 20:
                self.wrong_samples.append(what)

    def serialization_failure(self) -> None:
        with self.lock:
            self.serialization_failures += 1

    def retry(self) -> None:
        with self.lock:
            self.retries += 1

    def error(self, what: str) -> None:
        with self.lock:
            if len(self.errors) < 40:
                self.errors.append(what)

    def as_dict(self) -> dict:
        with self.lock:
            kinds = {}
            for kind, lat in self.latency.items():
                kinds[kind] = {"count": len(lat), "p50_ms": round(percentile(lat, 0.50), 3),
                               "p99_ms": round(percentile(lat, 0.99), 3),
                               "mean_ms": round(sum(lat) / len(lat), 3) if lat else 0.0}
            share = (self.read_only_on_replica / self.read_only) if self.read_only else 0.0
            return {
                "driver": self.driver,
                "units": self.units,
                "read_only_units": self.read_only,
                "read_only_on_replica": self.read_only_on_replica,
                "read_only_replica_share": round(share, 4),
                "read_write_units": self.read_write,
                "read_write_on_replica": self.read_write_on_replica,
                "wrong_results": self.wrong,
                "serialization_failures": self.serialization_failures,
                "retries": self.retries,
                "gave_up": self.gave_up,
                "errors": self.errors,
                "wrong_samples": self.wrong_samples,
                "kinds": kinds,
                "elapsed_s": round(time.monotonic() - self.started, 3),
            }

    def print_json(self) -> None:
        print(json.dumps(self.as_dict(), sort_keys=True), flush=True)


def is_serialization_failure(exc: BaseException) -> bool:
    """psycopg2's pgcode, possibly wrapped by SQLAlchemy (.orig) or Django (__cause__)."""
    seen = 0
    while exc is not None and seen < 5:
        if getattr(exc, "pgcode", None) == "40001":
            return True
        exc = getattr(exc, "orig", None) or exc.__cause__
        seen += 1
    return False
