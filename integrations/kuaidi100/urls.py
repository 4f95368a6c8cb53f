from django.urls import path

from integrations.kuaidi100 import views

urlpatterns = [
    path("callback/", views.callback, name="kuaidi100_callback"),
]
