from django.urls import path

from workflows.frontline import views

urlpatterns = [
    path("service/lookup/", views.lookup, name="lookup"),
    path("service/lookup/<str:order_number>/forms/", views.lookup_forms, name="lookup_forms"),
    path("service/lookup/<str:order_number>/<slug:action>/", views.lookup_action, name="lookup_action"),
    path("pda/", views.pda, name="pda"),
    path("pda/scan/", views.pda_scan, name="pda_scan"),
    path("pda/<str:order_number>/", views.pda, name="pda_order"),
    path("pda/<str:order_number>/acknowledge/", views.pda_acknowledge, name="pda_acknowledge"),
    path("pda/<str:order_number>/restart/", views.pda_restart, name="pda_restart"),
    path("pda/<str:order_number>/reprint/", views.pda_reprint, name="pda_reprint"),
    path("pda/<str:order_number>/pack/", views.pda_pack, name="pda_pack"),
    path("track/", views.track, name="track"),
    path("track/address/", views.track_address_change, name="track_address_change"),
    path("track/s/<str:token>/", views.track_link, name="track_link"),
]
