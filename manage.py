#!/usr/bin/env python
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "beile.settings")
    # manage.py is the developer's tool: without an explicit DEBUG it runs in development mode, so
    # `python manage.py makemigrations` works on a fresh checkout. The production processes
    # (gunicorn via beile.wsgi, celery via beile.celery) keep DEBUG off unless told otherwise, and
    # production's own manage.py calls (migrate, collectstatic, check --deploy) set DEBUG=0.
    os.environ.setdefault("DEBUG", "1")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
