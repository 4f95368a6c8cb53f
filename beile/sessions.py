"""Sessions read from the shared cache, kept in the database (Django's cached_db), and still
working while the cache is away.

Every signed-in request reads its session: from Redis that is a GET, from PostgreSQL an ORM
query costing ~1 ms of CPU to build on this machine (issue 14). Django's cached_db already falls
back to the database when the cache read fails, but then fails the request on the cache write
that follows (and on logout's cache delete); a Redis outage must not sign anyone out or answer
500 (tests/test_faults.py), so those two are guarded here.
"""

import logging

from django.contrib.sessions.backends import cached_db, db

logger = logging.getLogger(__name__)


class SessionStore(cached_db.SessionStore):
    def load(self):
        try:
            return super().load()
        except Exception:
            logger.warning("sessions: the cache is unavailable; reading the session from the database")
            return db.SessionStore.load(self)

    def delete(self, session_key=None):
        try:
            super().delete(session_key)
        except Exception:
            logger.warning("sessions: the cache is unavailable; the session is deleted from the database only")
            db.SessionStore.delete(self, session_key)
