from django.urls import path

from workflows import views

urlpatterns = [
    path("board/", views.board, name="board"),
    path("board/rules/", views.stage_rules, name="stage_rules"),
    path("board/alerts/<int:alert_id>/acknowledge/", views.alert_acknowledge, name="alert_acknowledge"),
    path("board/orders/<str:order_number>/assign/", views.order_assign, name="order_assign"),
    # A short link sales can pin in WeChat Work.
    path("r/", views.rush, name="rush"),
    path("r/orders/", views.rush_candidates, name="rush_candidates"),
]
