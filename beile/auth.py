"""The signed-in user and their role names from the shared cache instead of two queries a request.

Every signed-in request loaded its user (an ORM query, ~1 ms of CPU to build here) and its role
names (a second query; issue 14). Both are kept in the cache under the user's id together with
the generation they were read under; one cache read (an MGET) fetches the entry and the current
generation, and an entry from an older generation is read again from the database.

The generation changes after every change to a user or a group that is committed (a save or a
delete of either, a change of someone's groups), so a deactivated user, a removed role or a new
password takes effect at the next request in every process. It is bumped when the change is made
and again after its transaction commits: a request that read the rows in between stored them
under the first bump's generation, which the second one retires. `QuerySet.update()` on users or
groups sends no signal and would bypass this; the code base has none (restore bumps it itself).

The password hash stays out of the cache: the entry keeps the session's auth hash instead (what
Django compares with the session), and the password is a deferred field read from the database
if a form or a save needs it.
"""

from __future__ import annotations

import functools
import logging
import uuid

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Group, User
from django.core.cache import cache
from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save
from django.utils.crypto import salted_hmac

from orders.access import load_roles

logger = logging.getLogger(__name__)

GENERATION_KEY = "auth:generation"
# An entry outlives its generation check only if a bump failed (the cache was unreachable at the
# change and came back with its data): bounded by this.
ENTRY_SECONDS = 60
FIELDS = [field.attname for field in User._meta.concrete_fields if field.attname != "password"]


def _entry_key(user_id) -> str:
    # Under the secret's fingerprint: an entry keeps a session hash made with SECRET_KEY.
    return f"auth:user:{_fingerprint(settings.SECRET_KEY)}:{user_id}"


@functools.cache
def _fingerprint(secret: str) -> str:
    return salted_hmac("beile.auth", "", secret=secret).hexdigest()[:12]


def bump_generation() -> None:
    try:
        cache.set(GENERATION_KEY, uuid.uuid4().hex, None)
    except Exception:
        logger.warning("auth: the cache is unavailable; cached users expire within %s s", ENTRY_SECONDS)


def users_changed(**kwargs) -> None:
    bump_generation()
    transaction.on_commit(bump_generation)


post_save.connect(users_changed, sender=User, dispatch_uid="beile.auth.user_saved")
post_delete.connect(users_changed, sender=User, dispatch_uid="beile.auth.user_deleted")
post_save.connect(users_changed, sender=Group, dispatch_uid="beile.auth.group_saved")  # roles are group names
post_delete.connect(users_changed, sender=Group, dispatch_uid="beile.auth.group_deleted")
m2m_changed.connect(users_changed, sender=User.groups.through, dispatch_uid="beile.auth.groups_changed")


class CachedModelBackend(ModelBackend):
    """Django's ModelBackend (the login itself is unchanged); get_user reads the cache first."""

    def get_user(self, user_id):
        key = _entry_key(user_id)
        try:
            found = cache.get_many([GENERATION_KEY, key])
        except Exception:
            logger.warning("auth: the cache is unavailable; reading the user from the database")
            return super().get_user(user_id)
        generation, entry = found.get(GENERATION_KEY), found.get(key)
        if generation is None or entry is None or entry["generation"] != generation:
            return self._read(user_id, key, generation)
        user = User.from_db(User.objects.db, FIELDS, entry["values"])
        _set_session_hash(user, entry["session_hash"])
        user._beile_roles = frozenset(entry["roles"])  # orders/access.py user_roles
        return user if self.user_can_authenticate(user) else None

    def _read(self, user_id, key: str, generation: str | None):
        if generation is None:
            # Taken before the rows are read, like every generation an entry is stored under.
            try:
                cache.add(GENERATION_KEY, uuid.uuid4().hex, None)
                generation = cache.get(GENERATION_KEY)
            except Exception:
                logger.warning("auth: the cache is unavailable; the user is not kept")
        try:
            user = User.objects.get(pk=user_id)
        except User.DoesNotExist:
            return None
        user._beile_roles = roles = load_roles(user.pk)
        entry = {
            "generation": generation,
            "values": [getattr(user, name) for name in FIELDS],
            "session_hash": user.get_session_auth_hash(),
            "roles": sorted(roles),
        }
        if generation is not None:
            try:
                cache.set(key, entry, ENTRY_SECONDS)
            except Exception:
                logger.warning("auth: the cache is unavailable; the user is not kept")
        return user if self.user_can_authenticate(user) else None


def _set_session_hash(user: User, session_hash: str) -> None:
    """The cached session hash while the password is not loaded; once it is (a form checks it,
    set_password changes it before update_session_auth_hash), Django's own from it."""
    computed = user.get_session_auth_hash

    def get_session_auth_hash() -> str:
        return computed() if "password" in user.__dict__ else session_hash

    user.get_session_auth_hash = get_session_auth_hash
