from django.apps import AppConfig


class BeileConfig(AppConfig):
    """The project itself: its management commands (run_cockpit) live here."""

    name = "beile"
