"""The signed-in user and their roles come from the shared cache (beile/auth.py), yet a
deactivated user, a removed role, a renamed group or a new password takes effect at the very next
request, in this process and in any other."""

import os
import subprocess
import sys

import pytest
from django.contrib.auth.models import Group, User
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from beile import auth
from tests.conftest import PASSWORD, ROOT


def signed_in(username: str) -> Client:
    client = Client()
    assert client.login(username=username, password=PASSWORD)
    assert client.get("/orders/").status_code == 200  # the user is in the cache from here on
    return client


def sent_to_login(response) -> bool:
    return response.status_code == 302 and response["Location"].startswith("/login/")


@pytest.mark.django_db
def test_a_page_reads_no_user_or_role_once_the_user_is_cached(people):
    client = signed_in("dispatcher")
    with CaptureQueriesContext(connection) as captured:
        assert client.get("/orders/").status_code == 200
    # (the list's own query joins auth_user for the operator's name)
    assert not [query["sql"] for query in captured if 'FROM "auth_user" WHERE' in query["sql"] or "auth_group" in query["sql"]]


@pytest.mark.django_db
def test_a_deactivated_user_is_signed_out_at_the_next_request(people):
    client = signed_in("dispatcher")
    people["dispatcher"].is_active = False
    people["dispatcher"].save()
    assert sent_to_login(client.get("/orders/"))


@pytest.mark.django_db
def test_a_removed_role_is_refused_at_the_next_request(people):
    client = signed_in("supervisor")
    assert client.get("/board/").status_code == 200
    people["supervisor"].groups.remove(Group.objects.get(name="supervisor"))
    assert client.get("/board/").status_code == 403
    # From the group's side too, and a role given back counts at once as well.
    Group.objects.get(name="supervisor").user_set.add(people["supervisor"])
    assert client.get("/board/").status_code == 200
    Group.objects.get(name="supervisor").user_set.clear()
    assert client.get("/board/").status_code == 403


@pytest.mark.django_db
def test_a_renamed_or_deleted_group_is_no_role_at_the_next_request(people):
    client = signed_in("supervisor")
    group = Group.objects.get(name="supervisor")
    group.name = "former supervisors"
    group.save()
    assert client.get("/board/").status_code == 403
    group.name = "supervisor"
    group.save()
    assert client.get("/board/").status_code == 200
    group.delete()
    assert client.get("/board/").status_code == 403


@pytest.mark.django_db
def test_a_new_password_signs_out_every_other_session(people):
    here, elsewhere = signed_in("dispatcher"), signed_in("dispatcher")
    user = User.objects.get(username="dispatcher")
    user.set_password("another-password-456")
    user.save()
    assert sent_to_login(here.get("/orders/")) and sent_to_login(elsewhere.get("/orders/"))


@pytest.mark.django_db
def test_the_cache_keeps_no_password(people):
    signed_in("dispatcher")
    entry = cache.get(auth._entry_key(people["dispatcher"].pk))
    assert entry is not None and people["dispatcher"].password not in repr(entry)


@pytest.mark.django_db
def test_a_change_is_retired_again_when_it_commits(people, django_capture_on_commit_callbacks):
    """A request that read the user between the change and its commit stored the old rows under
    the generation the change set first; the commit sets another."""
    with django_capture_on_commit_callbacks(execute=True):
        people["dispatcher"].is_active = False
        people["dispatcher"].save()
        during = cache.get(auth.GENERATION_KEY)
    assert cache.get(auth.GENERATION_KEY) != during


@pytest.mark.django_db(transaction=True)
def test_a_change_made_in_another_process_counts_at_the_next_request(people):
    dispatcher, supervisor = signed_in("dispatcher"), signed_in("supervisor")
    assert supervisor.get("/board/").status_code == 200
    script = (
        "import django; django.setup()\n"
        "from django.contrib.auth.models import Group, User\n"
        "user = User.objects.get(username='dispatcher'); user.is_active = False; user.save()\n"
        "User.objects.get(username='supervisor').groups.remove(Group.objects.get(name='supervisor'))\n"
    )
    settings_dict = connection.settings_dict
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "beile.settings",
        "DATABASE_URL": f"postgres://{settings_dict['USER']}@{settings_dict['HOST']}:{settings_dict['PORT']}/{settings_dict['NAME']}"
        if connection.vendor == "postgresql"
        else f"sqlite:///{settings_dict['NAME']}",
    }
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=environment, check=True, timeout=120)
    assert sent_to_login(dispatcher.get("/orders/"))
    assert supervisor.get("/board/").status_code == 403
