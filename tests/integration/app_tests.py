# SPDX-License-Identifier: MIT
"""Restores into a real application while it serves (issue 10): the Flask +
Flask-SQLAlchemy + Flask-Migrate application of tests/integration/app/,
at its newest Alembic revision (r2), served by gunicorn with 2 workers to 4
HTTP clients, while archfs restores a backup made at r1 with
--migrate 'flask db upgrade'.  Every response must be 200 and show the whole
old data set or the whole restored and migrated one, never a mix or an
error.

The migrate command first waits on a FIFO the test holds, and the test lets
it go only after the clients have made requests while .status shows the
migrate step: a restore that swapped before migrating serves the unmigrated
schema in that window, and those requests fail."""
import errno
import json
import os
import shlex
import signal
import socket
import sqlite3
import stat
import subprocess
import tempfile
import threading
import time
import urllib.parse
import zipfile

import harness as H
from harness import Mount, check
from restore_tests import FINAL, control, read, status, wait_final, wait_state

APP_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "app")
PY = "/usr/bin/python3"  # Debian's: it sees python3-flask-migrate and gunicorn
R1, R2 = "3c1d5e7f9a01", "7e2f4a6b8c02"
LIVE_NOTES = ["live: design review", "live: support", "live: invoicing", "live: planning", "live: on call",
              "live: hiring"]
LIVE_BILLABLE = [True, False, True, False, True, False]
BACKUP_USERS = ["dave", "erin", "frank", "grace", "heidi"]
BACKUP_NOTES = ["backup: task %d" % i for i in range(9)]
_counter = [0]


def app_env(url):
    return dict(os.environ, DATABASE_URL=url, FLASK_APP="app", PYTHONDONTWRITEBYTECODE="1")


def flask(url, *args):
    r = subprocess.run([PY, "-m", "flask", *args], cwd=APP_DIR, env=app_env(url), stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=120)
    check(r.returncode == 0, "flask %s: exit %d: %s" % (" ".join(args), r.returncode, r.stderr[-2000:]))


def migrate_command(gate, then=""):
    """--migrate: wait for the test to open gate, then 'flask db upgrade' (DATABASE_URL from archfs)."""
    return ("timeout 60 cat %s >/dev/null || exit 9; cd %s && FLASK_APP=app PYTHONDONTWRITEBYTECODE=1 "
            "%s -m flask db upgrade%s" % (shlex.quote(gate), shlex.quote(APP_DIR), PY, then))


def new_gate():
    d = tempfile.mkdtemp(prefix="gate-", dir=H.WORK)
    p = os.path.join(d, "gate")
    os.mkfifo(p)
    return p


def release(gate, mnt=None, timeout=30):
    """Opens gate for writing once its reader (the migrate command) is there, and closes it:
    the reader sees EOF.  Gives up when the restore ended (mnt) or after timeout: True if released."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            os.close(os.open(gate, os.O_WRONLY | os.O_NONBLOCK))
            return True
        except OSError as e:
            if e.errno != errno.ENXIO:
                raise
        if mnt is not None and status(mnt)["state"] in FINAL:
            return False
        time.sleep(0.01)
    return False


class Gunicorn:
    """The application under gunicorn (2 workers) on a free 127.0.0.1 port it is handed as a
    listening socket, with env added to its environment; the whole process group is stopped on exit."""

    def __init__(self, url, env=None):
        self.url, self.env = url, env or {}

    def __enter__(self):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        self.port = sock.getsockname()[1]
        self.log = tempfile.TemporaryFile(dir=H.WORK)
        try:
            self.proc = subprocess.Popen(
                [PY, "-m", "gunicorn", "-w", "2", "-b", "fd://%d" % sock.fileno(), "--chdir", APP_DIR,
                 "--graceful-timeout", "5", "app:app"],
                env=dict(app_env(self.url), **self.env), pass_fds=[sock.fileno()], start_new_session=True,
                stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        finally:
            sock.close()
        try:
            H.wait_answering(self.proc, self.port, "/health", "gunicorn", self.output, status=200)
        except BaseException:
            self.stop()
            raise
        return self

    def output(self, tail=3000):
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-tail:]

    def stop(self):
        H.end_group(self.proc)

    def __exit__(self, *exc):
        self.stop()
        try:  # a worker that outlived the arbiter
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return False


def get(port, path):
    """(status, body) of GET path on 127.0.0.1:port."""
    code, _, body = H.http_get(port, path)
    return code, body


class Clients:
    """4 threads that GET /entries as fast as they can: [(start, end, status, body or error)]."""

    def __init__(self, port, n=4):
        self.port, self.results, self.stop_ev = port, [], threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run) for _ in range(n)]

    def run(self):
        while not self.stop_ev.is_set():
            t0 = time.time()
            try:
                code, body = get(self.port, "/entries")
            except Exception as e:  # a refused or broken connection is a failed request too
                code, body = None, repr(e)
            with self.lock:
                self.results.append((t0, time.time(), code, body))

    def count(self):
        with self.lock:
            return len(self.results)

    def __enter__(self):
        [t.start() for t in self.threads]
        return self

    def __exit__(self, *exc):
        self.stop_ev.set()
        [t.join(timeout=120) for t in self.threads]
        return False

    def wait_more(self, n, timeout=30):
        """Until n more responses arrived than now."""
        want, deadline = self.count() + n, time.time() + timeout
        while self.count() < want:
            check(time.time() < deadline, "the clients made no %d requests within %d s" % (n, timeout))
            time.sleep(0.01)


def entries(port):
    code, body = get(port, "/entries")
    check(code == 200, "GET /entries: %d %s" % (code, body[:500]))
    return json.loads(body)


def check_old(page):
    check(page["dataset"] == ["live"] and [e["notes"] for e in page["entries"]] == LIVE_NOTES
          and [e["billable"] for e in page["entries"]] == LIVE_BILLABLE, "the live data set is not served: %s" % page)


def check_new(page):
    check(page["dataset"] == ["backup"] and [e["notes"] for e in page["entries"]] == BACKUP_NOTES
          and all(e["billable"] is False for e in page["entries"])
          and [e["user"] for e in page["entries"]] == [BACKUP_USERS[i % 5] for i in range(9)],
          "the restored and migrated data set is not served: %s" % page)


def check_responses(g, results, old, new=None, new_after=None):
    """Every response 200 and exactly old or new; requests started after new_after all new."""
    check(results, "no responses at all")
    bad = [c if c else b[:200] for _, _, c, b in results if c != 200]
    errors = [ln for ln in g.output(1 << 30).splitlines() if "Error:" in ln][-1:]
    check(not bad, "%d of %d requests failed (%s), the application logged: %s" % (
        len(bad), len(results), sorted(set(map(str, bad)))[:3], errors))
    allowed = [old] + ([new] if new else [])
    mixed = [b[:300] for _, _, _, b in results if json.loads(b) not in allowed]
    check(not mixed, "%d of %d responses show neither the old nor the new data set, e.g. %s" % (
        len(mixed), len(results), mixed[:2]))
    if new_after is not None:
        late_old = [t0 for t0, _, _, b in results if t0 > new_after and json.loads(b) == old]
        check(not late_old, "%d requests started after the restore ended still saw the old data set" % len(late_old))
    n_old = sum(1 for *_, b in results if json.loads(b) == old)
    return n_old, len(results) - n_old


def write_archive(out, db_name, db_path, db_type, revision):
    """The application's backup archive: manifest.json, the database, settings.json, uploads/."""
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", json.dumps({"alembic_revision": revision, "app_version": "4.1.0",
                                                 "created_at": "2026-11-20T10:15:02", "db_type": db_type},
                                                indent=2, sort_keys=True))
        zf.writestr("settings.json", json.dumps({"company_name": "Backup Co", "timezone": "UTC"}))
        zf.write(db_path, db_name)
        for name, (data, when) in BACKUP_UPLOADS.items():
            zi = zipfile.ZipInfo("uploads/" + name, when)
            zi.external_attr = 0o100644 << 16
            zi.create_system = 3
            zf.writestr(zi, data, zipfile.ZIP_DEFLATED)


# uploads/ of the backup archive: {path: (bytes, DOS time)}, each 0644
BACKUP_UPLOADS = {name: (("upload %d from the backup\n" % i).encode() * 50, (2026, 11, 20, 10, i, 0))
                  for i, name in enumerate(["logos/backup.png", "attachments/2026/11/r1.txt", "avatars/dave.jpg"])}


def uploads_tree(root):
    """{path below root: (mode, bytes, mtime)} of every file, and the directories: what a restore may change."""
    out = {}
    for d, dirs, files in os.walk(root):
        for n in dirs:
            out[os.path.relpath(os.path.join(d, n), root)] = "dir"
        for n in files:
            p = os.path.join(d, n)
            st = os.lstat(p)
            with open(p, "rb") as f:
                out[os.path.relpath(p, root)] = (stat.S_IMODE(st.st_mode), f.read(), int(st.st_mtime))
    return out


def merged_uploads(before):
    """The uploads tree before, with the backup's uploads merged in."""
    out = dict(before)
    for name, (data, when) in BACKUP_UPLOADS.items():
        out.update({name.rsplit("/", k)[0]: "dir" for k in range(1, name.count("/") + 1)})
        out[name] = (0o644, data, int(time.mktime(when + (0, 0, -1))))
    return out


class SqliteApp:
    """A live SQLite application at r2 (WAL) with the live data set, and a backup archive at r1."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="app-live-", dir=H.WORK)
        self.db = os.path.join(self.dir, "app.db")
        self.url = "sqlite:///" + self.db
        self.uploads = tempfile.mkdtemp(prefix="app-uploads-", dir=H.WORK)
        self.snapdir = tempfile.mkdtemp(prefix="app-snap-", dir=H.WORK)
        with open(os.path.join(self.uploads, "keep.txt"), "w") as f:
            f.write("live upload\n")
        flask(self.url, "db", "upgrade")
        flask(self.url, "seed", "live")
        check(sqlite_one(self.db, "PRAGMA journal_mode") == "wal", "the live database is not in WAL mode")
        d = tempfile.mkdtemp(prefix="app-backup-", dir=H.WORK)
        src = os.path.join(d, "src.db")
        flask("sqlite:///" + src, "db", "upgrade", R1)
        flask("sqlite:///" + src, "seed", "backup")
        check(sqlite_one(src, "SELECT version_num FROM alembic_version") == R1, "the backup is not at r1")
        self.archive = os.path.join(d, "timetracker_backup_20261120_101502.zip")
        write_archive(self.archive, "db.sqlite", src, "sqlite", R1)

    def opts(self, *extra):
        return ["--database", self.url, "--uploads", self.uploads, "--snapshot-dir", self.snapdir, *extra]

    def beside(self):
        """What lies beside the live database other than it and its WAL files (a staged copy would)."""
        return sorted(n for n in os.listdir(self.dir) if n not in ("app.db", "app.db-wal", "app.db-shm"))


def sqlite_one(path, sql):
    con = sqlite3.connect(path)
    try:
        row = con.execute(sql).fetchone()
        return row[0] if row else None
    finally:
        con.close()


def sqlite_columns(path, table):
    con = sqlite3.connect(path)
    try:
        return [r[1] for r in con.execute("PRAGMA table_info(%s)" % table)]
    finally:
        con.close()


def run_restore(m, gate, clients):
    """restore; hold the migrate command at its gate until the clients made requests while .status
    shows the migrate step; then let it go and wait for the end. (final status, time it was seen)"""
    check(control(m, "restore") == 0, "restore refused: %s" % status(m)["error"])
    try:
        wait_state(m, "migrate", timeout=120)
        clients.wait_more(40)
    finally:
        released = release(gate, m)
    s = wait_final(m)
    check(released, "the migrate command never waited on its gate: %s" % read(m, ".log")[-1500:])
    return s, time.time()


# ---------------------------------------------------------------- the tests

def t_app_sqlite_restore_older_backup_while_serving():
    a = SqliteApp()
    gate = new_gate()
    uploads = uploads_tree(a.uploads)
    with Gunicorn(a.url) as g:
        old = entries(g.port)
        check_old(old)
        with Mount(a.archive, *a.opts("--migrate", migrate_command(gate))) as m:
            with Clients(g.port) as cl:
                s, ended = run_restore(m, gate, cl)
                check(s["state"] == "done", "state %s: %s\n%s" % (s["state"], s["error"], read(m, ".log")[-2000:]))
                cl.wait_more(20)
            log = read(m, ".log")
        new = entries(g.port)
        check_new(new)
        n_old, n_new = check_responses(g, cl.results, old, new, ended)
        check(n_old >= 40 and n_new >= 20, "old %d, new %d responses" % (n_old, n_new))
    check(sqlite_one(a.db, "SELECT version_num FROM alembic_version") == R2, "the live database is not at r2")
    check("billable" in sqlite_columns(a.db, "time_entries"), "time_entries has no billable column")
    check(sqlite_columns(a.db, "invoices") == ["id", "user_id", "amount_cents"], "no invoices table")
    check(sqlite_one(a.db, "SELECT count(*) FROM invoices") == 0, "invoices holds rows the backup has not")
    check(sqlite_one(a.db, "SELECT group_concat(username, ',') FROM (SELECT username FROM users ORDER BY id)")
          == ",".join(BACKUP_USERS), "the live users are not the backup's")
    check(sqlite_one(a.db, "PRAGMA integrity_check") == "ok", "integrity_check after the restore")
    check(sqlite_one(a.db, "PRAGMA journal_mode") == "wal", "the live database left WAL mode")
    check(a.beside() == [], "left beside the live database: %s" % a.beside())
    got, want = uploads_tree(a.uploads), merged_uploads(uploads)
    check(got == want, "the uploads are not the live ones with the backup's merged in: differ at %s" % sorted(
        p for p in set(got) | set(want) if got.get(p) != want.get(p))[:5])
    check(R1 in log and "migrate" in log, "the log does not show the migration: " + log[-1500:])


def t_app_sqlite_failed_migration_changes_nothing():
    a = SqliteApp()
    gate = new_gate()
    raw = H.sha(a.db)
    uploads = uploads_tree(a.uploads)
    # the migration runs (on whatever DATABASE_URL names), then the command fails
    cmd = migrate_command(gate, "; echo 'alembic: broken revision 9z' >&2; exit 3")
    with Gunicorn(a.url) as g:
        old = entries(g.port)
        check_old(old)
        with Mount(a.archive, *a.opts("--migrate", cmd)) as m:
            with Clients(g.port) as cl:
                s, _ = run_restore(m, gate, cl)
                cl.wait_more(20)
        check(s["state"] == "failed", "state %s (%s)" % (s["state"], s["error"]))
        check("status 3" in (s["error"] or "") and "broken revision 9z" in s["error"], "error: %r" % s["error"])
        check_responses(g, cl.results, old)
        check(H.sha(a.db) == raw, "the live database file changed")
        check(a.beside() == [], "left beside the live database: %s" % a.beside())
        check(entries(g.port) == old, "the application does not serve the old data set afterwards")
    check(H.sha(a.db) == raw, "the live database file changed when the application stopped")
    check(sqlite_one(a.db, "SELECT version_num FROM alembic_version") == R2, "the live revision changed")
    check(uploads_tree(a.uploads) == uploads, "the uploads changed: %s" % sorted(uploads_tree(a.uploads)))
    check(os.listdir(a.snapdir) == [], "a snapshot was kept though nothing changed: %s" % os.listdir(a.snapdir))


def t_app_sqlite_cancel_during_migrate():
    a = SqliteApp()
    gate = new_gate()
    raw = H.sha(a.db)
    uploads = uploads_tree(a.uploads)
    with Gunicorn(a.url) as g:
        old = entries(g.port)
        with Mount(a.archive, *a.opts("--migrate", migrate_command(gate))) as m:
            with Clients(g.port) as cl:
                check(control(m, "restore") == 0, "restore refused: %s" % status(m)["error"])
                try:
                    wait_state(m, "migrate", timeout=120)
                    cl.wait_more(20)
                    rc = control(m, "cancel")
                finally:
                    release(gate, m)
                check(rc == 0, "cancel during the migrate step refused: %s (%s)" % (
                    errno.errorcode.get(rc, rc), status(m)["error"]))
                s = wait_final(m)
                cl.wait_more(20)
            check(s["state"] == "cancelled", "state %s (%s)" % (s["state"], s["error"]))
            check(read(m, ".restore_in_progress") == "0\n", "still in progress after the cancel")
        check_responses(g, cl.results, old)
        check(H.sha(a.db) == raw, "the live database file changed")
        check(a.beside() == [], "left beside the live database: %s" % a.beside())
    check(H.sha(a.db) == raw, "the live database file changed when the application stopped")
    check(uploads_tree(a.uploads) == uploads, "the uploads changed: %s" % sorted(uploads_tree(a.uploads)))


# ---------------------------------------------------------------- PostgreSQL

def pg_server():
    host, port = os.environ.get("ARCHFS_PG_HOST"), os.environ.get("ARCHFS_PG_PORT")
    check(host and port, "no PostgreSQL test cluster: run the tests through scripts/test.sh")
    return host, port


def pg_url(db):
    host, port = pg_server()
    return "postgresql://postgres@/%s?host=%s&port=%s" % (db, urllib.parse.quote(host, safe="/"), port)


def pg_bin(name):
    vers = sorted(os.listdir("/usr/lib/postgresql"), key=lambda v: [int(x) for x in v.split(".") if x.isdigit()])
    return "/usr/lib/postgresql/%s/bin/%s" % (vers[-1], name)


def pg_connect(db):
    import psycopg2
    host, port = pg_server()
    c = psycopg2.connect(host=host, port=port, user="postgres", dbname=db)
    c.autocommit = True
    return c


def pg_one(db, sql):
    c = pg_connect(db)
    try:
        cur = c.cursor()
        cur.execute(sql)
        row = cur.fetchone()
        return row[0] if row else None
    finally:
        c.close()


def pg_databases():
    c = pg_connect("postgres")
    try:
        cur = c.cursor()
        cur.execute("SELECT datname FROM pg_database")
        return {r[0] for r in cur.fetchall()}
    finally:
        c.close()


def pg_admin(sql):
    c = pg_connect("postgres")
    try:
        c.cursor().execute(sql)
    finally:
        c.close()


def t_app_postgresql_restore_older_backup_while_serving():
    pg_server()
    _counter[0] += 1
    live, src = "app%d_%d_live" % (os.getpid(), _counter[0]), "app%d_%d_backup" % (os.getpid(), _counter[0])
    before = pg_databases()
    made = []
    try:
        for name in (live, src):
            pg_admin('CREATE DATABASE "%s"' % name)
            made.append(name)
        flask(pg_url(live), "db", "upgrade")
        flask(pg_url(live), "seed", "live")
        check(pg_one(live, "SELECT count(*) FROM invoices") == 3, "the live data set has no invoices")
        flask(pg_url(src), "db", "upgrade", R1)
        flask(pg_url(src), "seed", "backup")
        d = tempfile.mkdtemp(prefix="app-pg-", dir=H.WORK)
        dump = os.path.join(d, "db.dump")
        host, port = pg_server()
        r = subprocess.run([pg_bin("pg_dump"), "-Fc", "-h", host, "-p", port, "-U", "postgres", "-f", dump, src],
                           capture_output=True, text=True, timeout=120)
        check(r.returncode == 0, "pg_dump: " + r.stderr)
        archive = os.path.join(d, "timetracker_backup_20261120_101502.zip")
        write_archive(archive, "db.dump", dump, "postgresql", R1)
        uploads = tempfile.mkdtemp(prefix="app-uploads-", dir=H.WORK)
        snapdir = tempfile.mkdtemp(prefix="app-snap-", dir=H.WORK)
        gate = new_gate()
        opts = ["--database", pg_url(live), "--uploads", uploads, "--snapshot-dir", snapdir,
                "--migrate", migrate_command(gate)]
        with Gunicorn(pg_url(live)) as g:
            old = entries(g.port)
            check_old(old)
            with Mount(archive, *opts) as m:
                with Clients(g.port) as cl:
                    s, ended = run_restore(m, gate, cl)
                    check(s["state"] == "done", "state %s: %s\n%s" % (s["state"], s["error"], read(m, ".log")[-2000:]))
                    cl.wait_more(20)
            new = entries(g.port)
            check_new(new)
            n_old, n_new = check_responses(g, cl.results, old, new, ended)
            check(n_old >= 40 and n_new >= 20, "old %d, new %d responses" % (n_old, n_new))
        check(pg_one(live, "SELECT version_num FROM alembic_version") == R2, "the live database is not at r2")
        check(pg_one(live, "SELECT count(*) FROM information_schema.columns WHERE table_name = 'time_entries' "
                           "AND column_name = 'billable'") == 1, "time_entries has no billable column")
        check(pg_one(live, "SELECT count(*) FROM invoices") == 0, "invoices holds rows the backup has not")
        check(pg_one(live, "SELECT count(*) FROM information_schema.table_constraints WHERE table_name = 'invoices' "
                           "AND constraint_type = 'FOREIGN KEY'") == 1, "invoices lost its foreign key to users")
        check(pg_one(live, "SELECT string_agg(username, ',' ORDER BY id) FROM users") == ",".join(BACKUP_USERS),
              "the live users are not the backup's")
        left = pg_databases() - before - {live, src}
        check(not left, "databases left behind (staging?): %s" % sorted(left))
    finally:
        for name in made:
            pg_admin('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)
