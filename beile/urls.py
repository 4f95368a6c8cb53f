from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.utils.translation import gettext_lazy as _

from orders import views as order_views

admin.site.site_header = _("Beile Order Cockpit")
admin.site.site_title = _("Beile Order Cockpit")

urlpatterns = [
    path("", order_views.home, name="home"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
    path("", include("orders.urls")),
    path("", include("workflows.urls")),
]
