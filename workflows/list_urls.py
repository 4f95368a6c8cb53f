from django.urls import path

from workflows import list_views

urlpatterns = [
    path("views/", list_views.saved_view_create, name="saved_view_create"),
    path("views/counts/", list_views.saved_view_counts, name="saved_view_counts"),
    path("views/<int:view_id>/", list_views.saved_view_open, name="saved_view_open"),
    path("views/<int:view_id>/delete/", list_views.saved_view_delete, name="saved_view_delete"),
    path("views/<int:view_id>/pin/", list_views.saved_view_pin, name="saved_view_pin"),
    path("bulk/", list_views.bulk_start, name="bulk_start"),
    path("bulk/<int:batch_id>/", list_views.bulk_batch, name="bulk_batch"),
    path("bulk/<int:batch_id>/retry/", list_views.bulk_retry, name="bulk_retry"),
    path("export.csv", list_views.export_csv, name="export_csv"),
    path("export.xlsx", list_views.export_xlsx, name="export_xlsx"),
    path("exports/<int:export_id>/", list_views.export_run, name="export_run"),
    path("exports/<int:export_id>/download/", list_views.export_download, name="export_download"),
]
