"""The Django admin holds the master data only: products (the product master, with the barcodes
the pack bench verifies) and customers. Orders and everything hanging off them (lines, events,
shipments, tags, notes, after-sales cases, address changes) are deliberately not registered, not
even read-only: every change to an order goes through orders/services.py, where the guards, the
stage clock, the version and the timeline are kept, and orders are read on the card and the
lookup, which mask phone numbers and record who revealed one. The stage rules are edited on the
board's rules page, which refreshes the due times. tests/test_admin_paths.py keeps it so.
"""

from django.contrib import admin

from orders.models import Customer, Product


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ("sku_code", "barcode", "name", "cold_chain", "unit_price")
    search_fields = ("sku_code", "barcode", "name")
    list_filter = ("cold_chain",)


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = ("name", "phone", "membership_level", "created_at")
    search_fields = ("=phone", "name")
    list_filter = ("membership_level",)
