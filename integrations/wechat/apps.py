from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class WeChatConfig(AppConfig):
    name = "integrations.wechat"
    label = "wechat"
    verbose_name = _("WeChat service account")

    def ready(self) -> None:
        from integrations.wechat import services
        from orders.services import status_changed

        status_changed.connect(services.on_order_status_changed, dispatch_uid="wechat-push-on-ship")
