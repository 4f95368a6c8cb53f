from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.templatetags.static import static
from django.urls import include, path
from django.utils.translation import gettext_lazy as _

from beile.health import healthz
from orders import live
from orders.access import public_endpoint
from workflows import address_change_views, erp_bridge, list_views, tracking


@public_endpoint("the browser's icon request, for pages that do not link the icon (the admin, JSON answers)")
def favicon(request: HttpRequest) -> HttpResponse:
    return redirect(static("favicon.svg"))


admin.site.site_header = _("Beile Order Cockpit")
admin.site.site_title = _("Beile Order Cockpit")

urlpatterns = [
    # The live screens' check (orders/live.py), answered by beile/middleware.py LiveMiddleware.
    path("live/", live.check, name="live_check"),
    # The landing page: a pinned saved view (workflows/list_views.py), else the role's start page.
    path("", list_views.landing, name="home"),
    path(
        "login/",
        public_endpoint("the login page")(auth_views.LoginView.as_view(redirect_authenticated_user=True)),
        name="login",
    ),
    path("logout/", public_endpoint("logging out needs no role")(auth_views.LogoutView.as_view()), name="logout"),
    # No trailing slash: SECURE_REDIRECT_EXEMPT lets probes use plain HTTP on exactly this path.
    path("healthz", healthz, name="healthz"),
    path("favicon.ico", favicon, name="favicon"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
    path("health/", include("workflows.health.urls")),
    path("", include("workflows.frontline.urls")),
    path("", include("orders.urls")),
    path("", include("integrations.erp.urls")),
    # The ERP pages that raise alerts (workflows/erp_bridge.py), beside the ERP integration's own.
    path("erp/", erp_bridge.erp_home, name="erp_home"),
    path("erp/reconciliations/", erp_bridge.reconciliation_run, name="erp_reconciliation_run"),
    path("tickets/", include("workflows.ticket_urls")),
    path("lists/", include("workflows.list_urls")),
    # Kuaidi100's push is read by integrations/kuaidi100/callback.py and reacted to by workflows/tracking.py.
    path("integrations/kuaidi100/callback/", tracking.kuaidi100_callback, name="kuaidi100_callback"),
    path(
        "integrations/kuaidi100/intercept/",
        address_change_views.kuaidi100_intercept_callback,
        name="kuaidi100_intercept_callback",
    ),
    path("address-changes/", address_change_views.inbox, name="address_change_inbox"),
    path("address-changes/<int:pk>/<slug:action>/", address_change_views.handle, name="address_change_action"),
    path("integrations/wechat/", include("integrations.wechat.urls")),
    path("integrations/sms/", include("integrations.sms.urls")),
    path("integrations/douyin/", include("integrations.douyin.urls")),
    path("", include("workflows.urls")),
]
