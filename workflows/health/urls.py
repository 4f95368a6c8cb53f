from django.urls import path

from workflows.health import views

app_name = "health"
urlpatterns = [
    path("", views.health_page, name="page"),
    path("measures.csv", views.health_csv, name="csv"),
    path("checks/", views.status_checks, name="checks"),
    path("checks/<int:task_id>/answer/", views.status_check_answer, name="check_answer"),
    path("douyin-feed/", views.douyin_feed_page, name="douyin_feed"),
    path("<slug:key>/", views.health_behind, name="behind"),
]
