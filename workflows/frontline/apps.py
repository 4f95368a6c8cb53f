from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class FrontlineConfig(AppConfig):
    """The front line: customer-service lookup, the PDA packing station, customer self-service."""

    name = "workflows.frontline"
    label = "frontline"
    verbose_name = _("Front line")
