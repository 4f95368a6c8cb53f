from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class Kuaidi100Config(AppConfig):
    name = "integrations.kuaidi100"
    label = "kuaidi100"
    verbose_name = _("Kuaidi100 tracking")

    def ready(self) -> None:
        from integrations.kuaidi100 import services
        from orders.services import status_changed

        # Subscribing reacts to the committed "shipped" status instead of living in order_ship.
        status_changed.connect(services.on_order_status_changed, dispatch_uid="kuaidi100-subscribe-on-ship")
