from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class HealthConfig(AppConfig):
    """The health self-check: the business's measures, computed daily from event data."""

    name = "workflows.health"
    label = "health"
    verbose_name = _("Health self-check")
