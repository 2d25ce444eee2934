# SPDX-License-Identifier: MIT
"""A small application in the time-tracking application's shape, for the
restore tests of tests/integration/app_tests.py: Flask, Flask-SQLAlchemy,
Flask-Migrate (migrations/: r1 users, time_entries, settings; r2 adds
time_entries.billable and invoices with a foreign key to users).

DATABASE_URL names the database. GET /entries loads whole ORM rows (every
column of the head revision, billable included) and the data set marker in
one statement, so one response shows one database state; GET /health. With ARCHFS_MAINTENANCE set, maintenance.py
answers 503 while a restore runs (ARCHFS_FLAG_FILE: archfs's --flag-file).
`flask seed live|backup` fills an empty database at r1 or r2 with a known
data set."""
import os

import click
from flask import Flask, jsonify
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import event, inspect, literal, select, text

app = Flask(__name__)
app.config["SQLALCHEMY_DATABASE_URI"] = os.environ["DATABASE_URL"]
if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {"connect_args": {"timeout": 60}}
db = SQLAlchemy(app)
migrate = Migrate(app, db, directory=os.path.join(os.path.dirname(os.path.abspath(__file__)), "migrations"))

with app.app_context():
    if db.engine.dialect.name == "sqlite":
        @event.listens_for(db.engine, "connect")
        def _wal(dbapi_con, _record):
            # the application's SQLite database runs in WAL mode
            dbapi_con.execute("PRAGMA journal_mode=WAL")

if os.environ.get("ARCHFS_MAINTENANCE"):  # the maintenance switch of docs/deploy.md, for deploy_tests.py
    import maintenance
    maintenance.install(app, db, os.environ.get("ARCHFS_FLAG_FILE"))


class User(db.Model):
    __tablename__ = "users"
    id = db.Column(db.Integer, primary_key=True)
    username = db.Column(db.String(80), nullable=False, unique=True)
    role = db.Column(db.String(20))


class TimeEntry(db.Model):
    __tablename__ = "time_entries"
    id = db.Column(db.Integer, primary_key=True)
    user_id = db.Column(db.Integer, db.ForeignKey("users.id"), nullable=False)
    start = db.Column(db.String(32))
    end = db.Column(db.String(32))
    notes = db.Column(db.Text)
    billable = db.Column(db.Boolean, nullable=False, server_default=db.false())  # r2


class Invoice(db.Model):  # r2
    __tablename__ = "invoices"
    id = db.Column(db.Integer, primary_key=True)
    user_id = db.Column(db.Integer, db.ForeignKey("users.id"), nullable=False)
    amount_cents = db.Column(db.Integer, nullable=False)


class Setting(db.Model):
    __tablename__ = "settings"
    key = db.Column(db.String(64), primary_key=True)
    value = db.Column(db.String(200))


@app.get("/health")
def health():
    return "ok\n"


@app.get("/entries")
def entries():
    rows = db.session.execute(
        select(TimeEntry, Setting.value, User.username)
        .select_from(TimeEntry)
        .join(Setting, Setting.key == literal("dataset"))
        .join(User, User.id == TimeEntry.user_id)
        .order_by(TimeEntry.id)).all()
    return jsonify({
        "dataset": sorted({v for _, v, _ in rows}),
        "entries": [{"id": e.id, "user": u, "start": e.start, "end": e.end, "notes": e.notes,
                     "billable": e.billable} for e, _, u in rows],
    })


DATASETS = {
    # name: (users, entries); an entry is (user index, notes, billable at r2)
    "live": (["alice", "bob", "carol"],
             [(0, "live: design review", True), (1, "live: support", False), (2, "live: invoicing", True),
              (0, "live: planning", False), (1, "live: on call", True), (2, "live: hiring", False)]),
    "backup": (["dave", "erin", "frank", "grace", "heidi"],
               [(i % 5, "backup: task %d" % i, None) for i in range(9)]),
}


@app.cli.command("seed")
@click.argument("name", type=click.Choice(sorted(DATASETS)))
def seed(name):
    """Fills an empty database (at r1 or r2) with the named data set."""
    users, rows = DATASETS[name]
    cols = {c["name"] for c in inspect(db.engine).get_columns("time_entries")}
    has_invoices = inspect(db.engine).has_table("invoices")
    s = db.session
    for i, u in enumerate(users):
        s.execute(text("INSERT INTO users (id, username, role) VALUES (:id, :u, :r)"),
                  {"id": i + 1, "u": u, "r": "admin" if i == 0 else "user"})
    for n, (ui, notes, billable) in enumerate(rows):
        p = {"id": n + 1, "uid": ui + 1, "s": "2026-11-%02d 09:00" % (n + 1), "e": "2026-11-%02d 17:00" % (n + 1),
             "notes": notes}
        if "billable" in cols:
            p["b"] = bool(billable)
            s.execute(text('INSERT INTO time_entries (id, user_id, start, "end", notes, billable) '
                           "VALUES (:id, :uid, :s, :e, :notes, :b)"), p)
        else:
            s.execute(text('INSERT INTO time_entries (id, user_id, start, "end", notes) '
                           "VALUES (:id, :uid, :s, :e, :notes)"), p)
    if has_invoices:
        for n in range(len(users)):
            s.execute(text("INSERT INTO invoices (id, user_id, amount_cents) VALUES (:id, :uid, :a)"),
                      {"id": n + 1, "uid": n + 1, "a": 1000 * (n + 1)})
    s.execute(text("INSERT INTO settings (key, value) VALUES ('dataset', :v)"), {"v": name})
    s.commit()
    if db.engine.dialect.name == "postgresql":  # explicit ids: move the sequences past them
        for t in ("users", "time_entries") + (("invoices",) if has_invoices else ()):
            s.execute(text("SELECT setval(pg_get_serial_sequence('%s', 'id'), (SELECT max(id) FROM %s))" % (t, t)))
        s.commit()
