from django.urls import path

from shop import views

urlpatterns = [
    path("summary/<int:client>/", views.summary),
    path("buy/", views.buy),
]
