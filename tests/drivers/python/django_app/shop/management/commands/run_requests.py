"""manage.py run_requests: request-style load through Django's test Client against the
real database (not a test database), several client threads at once, each request in
one transaction (ATOMIC_REQUESTS). Prints the JSON summary of workload_common.Summary.

Each thread owns its accounts (account_ids(client)), resets them first, and checks
every response against its model; a request that fails with 40001 is retried as a
whole (at most MAX_RETRIES times), as an application's retry middleware would.
"""

import json
import sys
import threading
import time
from pathlib import Path

from django.core.management.base import BaseCommand
from django.db import connection, transaction
from django.test import Client

from shop.models import INITIAL_BALANCE, PRODUCTS, Account, Order, account_ids

sys.path.insert(0, str(Path(__file__).resolve().parents[4]))
import workload_common as wc  # noqa: E402


class Runner:
    def __init__(self, opts, index, summary, deadline):
        self.opts = opts
        self.index = index
        self.summary = summary
        self.deadline = deadline
        self.ids = account_ids(index)
        self.model = wc.ClientModel(opts["tag"], index, self.ids)
        self.client = Client(raise_request_exception=True)
        self.n = 0

    def reset(self):
        with transaction.atomic():
            Order.objects.filter(account_id__in=self.ids).delete()
            for a in self.ids:
                Account.objects.update_or_create(
                    id=a, defaults={"owner": self.model.owner, "balance": INITIAL_BALANCE})

    def check(self, what, got, want):
        if got != want:
            self.summary.wrong_result(f"{self.model.owner} request {self.n}: {what}: "
                                      f"got {got!r}, want {want!r}")

    def page(self):
        pids = self.model.rng.sample(range(1, PRODUCTS + 1), 3)
        r = self.client.get(f"/summary/{self.index}/",
                            {"products": ",".join(map(str, pids))})
        if r.status_code != 200:
            raise RuntimeError(f"GET /summary: HTTP {r.status_code}")
        d = r.json()
        self.check("balances", {int(k): v for k, v in d["balances"].items()},
                   self.model.balances)
        self.check("prices", {int(k): v for k, v in d["prices"].items()},
                   {p: wc.product_price(p) for p in pids})
        self.check("orders", d["orders"], self.model.orders)
        self.check("spent", d["spent"],
                   len(self.ids) * wc.INITIAL_BALANCE - sum(self.model.balances.values()))
        return d["in_recovery"]

    def buy(self):
        aid, pid = self.model.rng.choice(self.ids), self.model.rng.randint(1, PRODUCTS)
        r = self.client.post("/buy/", json.dumps({"account": aid, "product": pid}),
                             content_type="application/json")
        if r.status_code != 200:
            raise RuntimeError(f"POST /buy: HTTP {r.status_code}")
        d = r.json()
        self.check(f"balance of {aid}", d["balance_before"], self.model.balances[aid])
        self.check(f"price of {pid}", d["price"], wc.product_price(pid))
        return d["in_recovery"], aid, wc.product_price(pid)

    def attempt(self, fn, kind):
        t0 = time.monotonic()
        for attempt in range(wc.MAX_RETRIES + 1):
            state = self.model.rng.getstate()
            try:
                result = fn()
            except Exception as e:  # noqa: BLE001 - Django wraps psycopg2's error
                if not wc.is_serialization_failure(e):
                    raise
                self.summary.serialization_failure()
                if attempt == wc.MAX_RETRIES:
                    self.summary.gave_up += 1
                    return
                self.summary.retry()
                self.model.rng.setstate(state)
                continue
            if kind == "read_write":
                on_replica, aid, price = result
                self.model.balances[aid] -= price
                self.model.orders += 1
            else:
                on_replica = result
            self.summary.unit_done(kind, bool(on_replica), time.monotonic() - t0)
            return

    def run(self):
        try:
            self.reset()
            while self.n < self.opts["requests"] and time.monotonic() < self.deadline:
                self.n += 1
                if self.model.rng.random() < self.opts["write_ratio"]:
                    self.attempt(self.buy, "read_write")
                else:
                    self.attempt(self.page, "read_only")
        except Exception as e:  # noqa: BLE001 - reported in the summary, the test fails
            self.summary.error(f"{self.model.owner} request {self.n}: {type(e).__name__}: {e}")
        finally:
            connection.close()  # this thread's connection


class Command(BaseCommand):
    help = "Runs request-style load through the views and prints a JSON summary."

    def add_arguments(self, parser):
        parser.add_argument("--clients", type=int, default=4)
        parser.add_argument("--requests", type=int, default=100, help="per client (a bound)")
        parser.add_argument("--duration", type=float, default=300.0, help="seconds (a bound)")
        parser.add_argument("--write-ratio", type=float, default=0.1)
        parser.add_argument("--tag", default="dj")

    def handle(self, *args, **opts):
        summary = wc.Summary("django")
        deadline = time.monotonic() + opts["duration"]
        runners = [Runner(opts, i, summary, deadline) for i in range(opts["clients"])]
        threads = [threading.Thread(target=r.run, name=f"client{i}")
                   for i, r in enumerate(runners)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=opts["duration"] + 120)
            if t.is_alive():
                summary.error(f"{t.name} still running after the deadline")
        self.stdout.write(json.dumps(summary.as_dict(), sort_keys=True))
