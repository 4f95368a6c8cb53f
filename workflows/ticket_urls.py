from django.urls import path

from workflows import ticket_views

urlpatterns = [
    path("", ticket_views.ticket_list, name="ticket_list"),
    path("<int:pk>/", ticket_views.ticket_detail, name="ticket_detail"),
    path("<int:pk>/<slug:action>/", ticket_views.ticket_action, name="ticket_action"),
]
