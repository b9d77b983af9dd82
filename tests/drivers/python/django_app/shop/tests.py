"""The app's own tests, run by `manage.py test` (through pgregion: the runner creates
test_<db>, migrates it, runs these, and drops it)."""

import json

from django.db import connection, transaction
from django.test import TestCase

from shop.models import Account, Order, Product, account_ids


class ShopTests(TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.product = Product.objects.create(name="widget", price=250)
        for a in account_ids(0):
            Account.objects.create(id=a, owner="test", balance=1000)

    def test_product_read_back(self):
        p = Product.objects.get(name="widget")
        self.assertEqual(p.price, 250)
        self.assertEqual(Product.objects.count(), 1)

    def test_write_then_read(self):
        Product.objects.create(name="gadget", price=99)
        self.assertEqual(Product.objects.get(name="gadget").price, 99)
        Product.objects.filter(name="gadget").update(price=101)
        self.assertEqual(Product.objects.get(name="gadget").price, 101)

    def test_buy_view_then_summary(self):
        aid = account_ids(0)[0]
        r = self.client.post("/buy/", json.dumps({"account": aid, "product": self.product.id}),
                             content_type="application/json")
        self.assertEqual(r.status_code, 200)
        self.assertEqual(r.json()["balance"], 750)
        r = self.client.get("/summary/0/", {"products": str(self.product.id)})
        self.assertEqual(r.status_code, 200)
        d = r.json()
        self.assertEqual(d["balances"][str(aid)], 750)
        self.assertEqual(d["orders"], 1)
        self.assertEqual(d["spent"], 250)
        self.assertEqual(Order.objects.get().price, 250)

    def test_nested_atomic_rollback(self):
        aid = account_ids(0)[1]
        try:
            with transaction.atomic():
                Account.objects.filter(id=aid).update(balance=0)
                raise RuntimeError("roll back the savepoint")
        except RuntimeError:
            pass
        self.assertEqual(Account.objects.get(id=aid).balance, 1000)
        with connection.cursor() as c:
            c.execute("SELECT current_database()")
            self.assertTrue(c.fetchone()[0].startswith("test_"))
