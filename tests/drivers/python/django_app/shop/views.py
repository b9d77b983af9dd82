"""Request handlers. With ATOMIC_REQUESTS each runs in one transaction; the last
statement of each is SELECT pg_is_in_recovery(), so the response says where the
transaction ran."""

import json

from django.db import connection
from django.db.models import Count, Sum
from django.http import HttpResponseBadRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from shop.models import Account, Order, Product, account_ids


def _in_recovery() -> bool:
    with connection.cursor() as c:
        c.execute("SELECT pg_is_in_recovery()")
        return c.fetchone()[0]


@require_GET
def summary(request, client):
    """A read-only page: the client's accounts, a few products and its orders."""
    ids = account_ids(client)
    try:
        pids = [int(x) for x in request.GET.get("products", "").split(",") if x]
    except ValueError:
        return HttpResponseBadRequest("products: comma-separated ids")
    balances = {str(a.id): a.balance for a in Account.objects.filter(id__in=ids).order_by("id")}
    prices = {str(p.id): p.price for p in Product.objects.filter(id__in=pids)}
    orders = Order.objects.filter(account_id__in=ids).aggregate(n=Count("id"), spent=Sum("price"))
    return JsonResponse({"balances": balances, "prices": prices, "orders": orders["n"],
                         "spent": orders["spent"] or 0, "in_recovery": _in_recovery()})


@csrf_exempt
@require_POST
def buy(request):
    """Reads an account and a product, then orders it (the first write after reads)."""
    body = json.loads(request.body)
    account = Account.objects.get(id=body["account"])
    product = Product.objects.get(id=body["product"])
    balance_before = account.balance
    Order.objects.create(owner=account.owner, account=account, product=product,
                         price=product.price)
    account.balance -= product.price
    account.save(update_fields=["balance"])
    return JsonResponse({"balance_before": balance_before, "price": product.price,
                         "balance": account.balance, "in_recovery": _in_recovery()})
