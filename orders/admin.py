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
