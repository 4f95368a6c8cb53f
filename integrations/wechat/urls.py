from django.urls import path

from integrations.wechat import views

urlpatterns = [
    path("callback/", views.callback, name="wechat_callback"),
]
