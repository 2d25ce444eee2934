# SPDX-License-Identifier: MIT
"""The application's maintenance switch while archfs restores its backup:
every request but /health is answered 503 with Retry-After while the
restore's --flag-file exists or, on PostgreSQL, while archfs holds its
advisory lock (1634886504, 1). docs/deploy.md shows this file as it is."""
import os

from flask import request
from sqlalchemy import text

RETRY_AFTER = "30"  # seconds a client should wait before it asks again
# archfs's PostgreSQL flag, looked at in pg_locks and never taken: a session
# holding it, even shared and for a moment, makes a restore starting then fail.
RESTORE_LOCK = text(
    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory'"
    " AND classid = 1634886504 AND objid = 1 AND objsubid = 2"
    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))")


def restore_in_progress(db, flag_file):
    if flag_file:
        try:
            os.stat(flag_file)  # a directory it cannot search raises: a 500 naming it, not silence
            return True
        except FileNotFoundError:
            pass
    if db.engine.dialect.name == "postgresql":
        with db.engine.connect() as con:
            return bool(con.execute(RESTORE_LOCK).scalar())
    return False


def install(app, db, flag_file=None):
    """Registers the switch on app; flag_file is archfs's --flag-file (None: the lock alone)."""
    @app.before_request
    def refuse_while_restoring():
        if request.path != "/health" and restore_in_progress(db, flag_file):
            return "Restoring a backup: try again shortly.\n", 503, {"Retry-After": RETRY_AFTER}
