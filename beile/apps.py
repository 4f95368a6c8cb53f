from django.apps import AppConfig


class BeileConfig(AppConfig):
    """The project itself: its management commands (run_cockpit) live here."""

    name = "beile"

    def ready(self) -> None:
        # Connects the signals that retire cached users (web, worker and shell alike).
        from beile import auth  # noqa: F401
