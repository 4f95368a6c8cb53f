from django.urls import path

from integrations.erp import views

# The ERP home page and running the sync check: workflows/erp_bridge.py (routed in beile/urls.py).

urlpatterns = [
    path("erp/imports/", views.import_upload, name="erp_import_upload"),
    path("erp/imports/<int:run_id>/", views.import_detail, name="erp_import_detail"),
    path("erp/imports/<int:run_id>/confirm/", views.import_confirm, name="erp_import_confirm"),
    path("erp/imports/<int:run_id>/retry/", views.import_retry, name="erp_import_retry"),
    path("erp/imports/<int:run_id>/errors.csv", views.import_errors, name="erp_import_errors"),
    path("erp/imports/<int:run_id>/missing-products.csv", views.missing_products, name="erp_missing_products"),
    path("products/", views.product_list, name="product_list"),
    path("products/import/", views.product_upload, name="product_upload"),
    path("erp/exports/", views.export_produce, name="erp_export_produce"),
    path("erp/exports/<str:business_date>.xlsx", views.export_download, name="erp_export_download"),
    path("erp/exports/<str:business_date>/", views.export_status, name="erp_export_status"),
    path("erp/reconciliations/<int:run_id>/", views.reconciliation_detail, name="erp_reconciliation_detail"),
    path("api/v1/events", views.inbound_event, name="erp_inbound_event"),
]
