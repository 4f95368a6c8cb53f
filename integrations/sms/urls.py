from django.urls import path

from integrations.sms import views

urlpatterns = [
    path("report/", views.report, name="sms_report"),
    path("reply/", views.reply, name="sms_reply"),
]
