from django.urls import path

from integrations.douyin import views

urlpatterns = [
    path("push/", views.push, name="douyin_push"),
    path("orders/<str:order_number>/receiver/", views.receiver, name="douyin_receiver"),
]
