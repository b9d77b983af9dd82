"""The shop: products everyone reads, accounts each written by one client, orders."""

from django.db import models

PRODUCTS = 40
ACCOUNTS_PER_CLIENT = 4
INITIAL_BALANCE = 100000


def product_price(pid: int) -> int:  # the same as workload_common.product_price
    return 100 + (pid * 37) % 900


def account_ids(client: int) -> list:
    base = client * ACCOUNTS_PER_CLIENT
    return list(range(base + 1, base + ACCOUNTS_PER_CLIENT + 1))


class Product(models.Model):
    name = models.CharField(max_length=64)
    price = models.IntegerField()


class Account(models.Model):
    id = models.IntegerField(primary_key=True)
    owner = models.CharField(max_length=64)
    balance = models.BigIntegerField()


class Order(models.Model):
    owner = models.CharField(max_length=64)
    account = models.ForeignKey(Account, on_delete=models.CASCADE)
    product = models.ForeignKey(Product, on_delete=models.PROTECT)
    price = models.IntegerField()
