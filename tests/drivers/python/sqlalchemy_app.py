#!/usr/bin/python3
"""A request-style SQLAlchemy 1.4 application in its default transactional mode (issue 18).

Nothing here is pgregion-specific: psycopg2 with autocommit off, an ORM `Session`
(autobegin) and Core `engine.connect()` (psycopg2 opens the transaction at the first
statement; the pool rolls it back when the connection is returned). Such applications
wrap every unit of work, reads included, in BEGIN ... COMMIT/ROLLBACK; pgregion's
optimistic transactions are what lets those reads run on a replica.

    sqlalchemy_app.py --port P --setup                  # tables and products (run once)
    sqlalchemy_app.py --port P --clients 4 --units 100  # the workload; prints JSON

Each client thread has its own engine with one pooled connection, so all its units run in
one pgregion session (its read-your-writes token covers its own writes). Every unit is
verified against the client's model (workload_common.py); a unit that gets 40001 is
rolled back and retried (at most MAX_RETRIES times). The last line of output is the JSON
summary.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

from sqlalchemy import BigInteger, Column, Integer, String, create_engine, func, select, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, declarative_base

sys.path.insert(0, str(Path(__file__).resolve().parent))
import workload_common as wc  # noqa: E402

Base = declarative_base()


class Product(Base):
    __tablename__ = "sa_products"
    id = Column(Integer, primary_key=True, autoincrement=False)
    name = Column(String(64), nullable=False)
    price = Column(Integer, nullable=False)


class Account(Base):
    __tablename__ = "sa_accounts"
    id = Column(Integer, primary_key=True, autoincrement=False)
    owner = Column(String(64), nullable=False)
    balance = Column(BigInteger, nullable=False)


class Order(Base):
    __tablename__ = "sa_orders"
    id = Column(BigInteger, primary_key=True)  # bigserial
    owner = Column(String(64), nullable=False)
    account_id = Column(Integer, nullable=False, index=True)
    product_id = Column(Integer, nullable=False)
    price = Column(Integer, nullable=False)


IN_RECOVERY = text("SELECT pg_is_in_recovery()")


def make_engine(args, optimistic_off: bool, pool_size: int = 1):
    url = URL.create("postgresql+psycopg2", username=args.user, password=args.password,
                     host=args.host, port=args.port, database=args.dbname)
    connect_args = {"connect_timeout": 10}
    if optimistic_off:
        connect_args["options"] = "-c pgregion.optimistic=off"
    return create_engine(url, pool_size=pool_size, max_overflow=0, pool_timeout=30,
                         connect_args=connect_args)


def setup(args) -> None:
    engine = make_engine(args, optimistic_off=False)
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    with Session(engine) as s:
        s.add_all(Product(id=p, name=wc.product_name(p), price=wc.product_price(p))
                  for p in range(1, wc.PRODUCTS + 1))
        s.commit()
    engine.dispose()
    print('{"setup": "ok"}', flush=True)


def account_ids(client: int) -> list[int]:
    base = client * wc.ACCOUNTS_PER_CLIENT
    return list(range(base + 1, base + wc.ACCOUNTS_PER_CLIENT + 1))


class Client:
    def __init__(self, args, index: int, summary: wc.Summary, deadline: float):
        self.args = args
        self.summary = summary
        self.deadline = deadline
        self.ids = account_ids(index)
        self.model = wc.ClientModel(args.tag, index, self.ids)
        self.engine = make_engine(args, optimistic_off=args.optimistic == "off")
        self.n = 0

    # ---- units ----
    def reset(self, s: Session) -> None:
        """Owns its accounts again at the initial balance, with no orders (a write unit)."""
        s.execute(text("DELETE FROM sa_orders WHERE account_id = ANY(:ids)"), {"ids": self.ids})
        for a in self.ids:
            s.execute(text("INSERT INTO sa_accounts(id, owner, balance) VALUES (:id, :o, :b) "
                           "ON CONFLICT (id) DO UPDATE SET owner = :o, balance = :b"),
                      {"id": a, "o": self.model.owner, "b": wc.INITIAL_BALANCE})
        s.commit()

    def check(self, what: str, got, want) -> None:
        if got != want:
            self.summary.wrong_result(f"{self.model.owner} unit {self.n}: {what}: got {got!r}, "
                                      f"want {want!r}")

    def read_only_orm(self) -> bool:
        """Several SELECTs in the Session's implicit transaction; ends with COMMIT or
        (Session.close without commit, as request handlers often do) ROLLBACK."""
        rng = self.model.rng
        pids = rng.sample(range(1, wc.PRODUCTS + 1), 3)
        with Session(self.engine) as s:
            accts = s.execute(select(Account).where(Account.id.in_(self.ids))
                              .order_by(Account.id)).scalars().all()
            self.check("balances", {a.id: a.balance for a in accts}, self.model.balances)
            prods = s.execute(select(Product).where(Product.id.in_(pids))).scalars().all()
            self.check("prices", sorted((p.id, p.price) for p in prods),
                       sorted((p, wc.product_price(p)) for p in pids))
            n = s.execute(select(func.count()).select_from(Order)
                          .where(Order.account_id.in_(self.ids))).scalar_one()
            self.check("order count", n, self.model.orders)
            on_replica = s.execute(IN_RECOVERY).scalar_one()
            if self.n % 2 == 0:
                s.commit()
        return on_replica

    def read_only_core(self) -> bool:
        """Core: engine.connect() without begin(); psycopg2 opens the transaction, the
        pool's reset-on-return rolls it back."""
        pid = self.model.rng.randint(1, wc.PRODUCTS)
        with self.engine.connect() as c:
            total = c.execute(text("SELECT sum(balance) FROM sa_accounts WHERE id = ANY(:ids)"),
                              {"ids": self.ids}).scalar_one()
            self.check("sum of balances", total, sum(self.model.balances.values()))
            price = c.execute(text("SELECT price FROM sa_products WHERE id = :p"),
                              {"p": pid}).scalar_one()
            self.check("price", price, wc.product_price(pid))
            spent = c.execute(text("SELECT coalesce(sum(price), 0) FROM sa_orders "
                                   "WHERE account_id = ANY(:ids)"), {"ids": self.ids}).scalar_one()
            self.check("spent", spent,
                       len(self.ids) * wc.INITIAL_BALANCE - sum(self.model.balances.values()))
            on_replica = c.execute(IN_RECOVERY).scalar_one()
        return on_replica

    def read_write(self) -> tuple[bool, int, int]:
        """Reads an account and a product, then orders it: the transaction's first write
        comes after two reads (the optimistic move to the primary)."""
        rng = self.model.rng
        aid, pid = rng.choice(self.ids), rng.randint(1, wc.PRODUCTS)
        with Session(self.engine) as s:
            acct = s.get(Account, aid)
            self.check(f"balance of {aid}", acct.balance, self.model.balances[aid])
            prod = s.get(Product, pid)
            self.check(f"price of {pid}", prod.price, wc.product_price(pid))
            s.add(Order(owner=self.model.owner, account_id=aid, product_id=pid, price=prod.price))
            acct.balance -= prod.price
            s.flush()
            on_replica = s.execute(IN_RECOVERY).scalar_one()
            s.commit()
        return on_replica, aid, wc.product_price(pid)

    # ---- loop ----
    def attempt(self, fn, kind: str) -> None:
        t0 = time.monotonic()
        for attempt in range(wc.MAX_RETRIES + 1):
            state = self.model.rng.getstate()
            try:
                result = fn()
            except DBAPIError as e:
                if not wc.is_serialization_failure(e):
                    raise
                self.summary.serialization_failure()
                if attempt == wc.MAX_RETRIES:
                    self.summary.gave_up += 1
                    return
                self.summary.retry()
                self.model.rng.setstate(state)  # the same unit again
                continue
            if kind == "read_write":
                on_replica, aid, price = result
                self.model.balances[aid] -= price
                self.model.orders += 1
            else:
                on_replica = result
            self.summary.unit_done(kind, bool(on_replica), time.monotonic() - t0)
            return

    def run(self) -> None:
        try:
            with Session(self.engine) as s:
                self.reset(s)
            while self.n < self.args.units and time.monotonic() < self.deadline:
                self.n += 1
                if self.model.rng.random() < self.args.write_ratio:
                    self.attempt(self.read_write, "read_write")
                elif self.n % 3 == 0:
                    self.attempt(self.read_only_core, "read_only")
                else:
                    self.attempt(self.read_only_orm, "read_only")
        except Exception as e:  # noqa: BLE001 - reported in the summary, the test fails
            self.summary.error(f"{self.model.owner} unit {self.n}: {type(e).__name__}: {e}")
        finally:
            self.engine.dispose()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--user", default="app")
    ap.add_argument("--password", default="secret")
    ap.add_argument("--dbname", default="appdb")
    ap.add_argument("--setup", action="store_true", help="create the tables and products")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--units", type=int, default=100, help="units per client (a bound)")
    ap.add_argument("--duration", type=float, default=300.0, help="seconds (a bound)")
    ap.add_argument("--write-ratio", type=float, default=0.1)
    ap.add_argument("--tag", default="sa", help="owner prefix of this run's accounts")
    ap.add_argument("--optimistic", choices=("default", "off"), default="default",
                    help="off: startup options=-c pgregion.optimistic=off")
    args = ap.parse_args()
    if args.setup:
        setup(args)
        return 0
    summary = wc.Summary("sqlalchemy")
    deadline = time.monotonic() + args.duration
    clients = [Client(args, i, summary, deadline) for i in range(args.clients)]
    threads = [threading.Thread(target=c.run, name=f"client{i}") for i, c in enumerate(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=args.duration + 120)
        if t.is_alive():
            summary.error(f"{t.name} still running {args.duration + 120:.0f}s after the deadline")
    summary.print_json()
    return 0


if __name__ == "__main__":
    sys.exit(main())
