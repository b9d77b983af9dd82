"""manage.py seed_shop: the products every request reads (after `migrate`)."""

from django.core.management.base import BaseCommand
from django.db import transaction

from shop.models import PRODUCTS, Order, Product, product_price


class Command(BaseCommand):
    help = "Creates the shop's products (deletes orders and products first)."

    def handle(self, *args, **options):
        with transaction.atomic():
            Order.objects.all().delete()
            Product.objects.all().delete()
            Product.objects.bulk_create(
                Product(id=p, name=f"product-{p:03d}", price=product_price(p))
                for p in range(1, PRODUCTS + 1))
        self.stdout.write('{"setup": "ok"}')
