from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class DouyinConfig(AppConfig):
    name = "integrations.douyin"
    label = "douyin"
    verbose_name = _("Douyin shop")
