from django.core.management.base import BaseCommand

from workflows import sla


class Command(BaseCommand):
    help = "Run one SLA sweep now: mark overdue orders red, alert the supervisor in the app and by e-mail."

    def handle(self, *args, **options):
        result = sla.sla_sweep()
        self.stdout.write(f"{result.breached} new breach(es); {result.emailed} alert e-mail(s) sent.")
