from django.urls import path

from orders import views

urlpatterns = [
    path("orders/", views.order_list, name="order_list"),
    path("orders/<str:order_number>/", views.order_card, name="order_card"),
    path("orders/<str:order_number>/phone/", views.phone_reveal, name="phone_reveal"),
    path("orders/<str:order_number>/<slug:action>/", views.order_action, name="order_action"),
]
