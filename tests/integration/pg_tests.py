# SPDX-License-Identifier: MIT
"""Integration tests of the PostgreSQL restore against a real server: the
throwaway cluster scripts/test.sh starts (ARCHFS_PG_HOST, ARCHFS_PG_PORT).
Each test creates its own databases: a source whose pg_dump -Fc goes into
an archive in the application's format, and a live target."""
import json
import os
import re
import signal
import subprocess
import tempfile
import threading
import time
import traceback
import urllib.parse
import zipfile

import psycopg2
import psycopg2.extensions

import harness as H
from harness import Failure, Mount, check
from restore_tests import (FINAL, control, gates_env, open_all_gates, open_gate, read, run_command, status,
                           wait_final, wait_gate, wait_state)

LOCK_KEY = (1634886504, 1)
PG_BIN = sorted(d for d in os.listdir("/usr/lib/postgresql"))[-1] if os.path.isdir("/usr/lib/postgresql") else None
SCHEMA = """
CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY);
CREATE TABLE users (id SERIAL PRIMARY KEY, username TEXT NOT NULL UNIQUE, role TEXT);
CREATE TABLE time_entries (id SERIAL PRIMARY KEY, user_id INTEGER REFERENCES users(id), notes TEXT);
"""
_counter = [0]


def server():
    host, port = os.environ.get("ARCHFS_PG_HOST"), os.environ.get("ARCHFS_PG_PORT")
    check(host and port, "no PostgreSQL test cluster: run the tests through scripts/test.sh")
    return host, port


def connect(db, user="postgres", password=None):
    host, port = server()
    c = psycopg2.connect(host=host, port=port, user=user, dbname=db, password=password)
    c.autocommit = True
    return c


def url(db, user="postgres", password=None):
    host, port = server()
    auth = user + (":" + urllib.parse.quote(password, safe="") if password else "")
    return "postgresql://%s@/%s?host=%s&port=%s" % (auth, db, host, port)


def tool(name):
    return "/usr/lib/postgresql/%s/bin/%s" % (PG_BIN, name)


def new_db(users, entries, prefix):
    """A new database with the application's tables and rows; its name."""
    _counter[0] += 1
    name = "t%d_%d_%s" % (os.getpid(), _counter[0], prefix)
    admin = connect("postgres")
    admin.cursor().execute('CREATE DATABASE "%s"' % name)
    admin.close()
    c = connect(name)
    cur = c.cursor()
    cur.execute(SCHEMA)
    cur.execute("INSERT INTO alembic_version VALUES (%s)", (prefix + "rev",))
    cur.execute("INSERT INTO users (username, role) SELECT %s || g, 'user' FROM generate_series(1, %s) g",
                (prefix, users))
    cur.execute("INSERT INTO time_entries (user_id, notes) SELECT 1 + g %% %s, repeat(md5(g::text), 4) "
                "FROM generate_series(1, %s) g", (users, entries))
    c.close()
    return name


def pg_archive(users=25, entries=20000, dump_bytes=None, prepare=None):
    """An archive of a fresh source database: (path, source db name);
    prepare(name) may change the source before it is dumped."""
    src = new_db(users, entries, "new")
    if prepare:
        prepare(src)
    d = tempfile.mkdtemp(prefix="fx-pg-", dir=H.WORK)
    dump = os.path.join(d, "db.dump")
    host, port = server()
    subprocess.run([tool("pg_dump"), "-Fc", "-h", host, "-p", port, "-U", "postgres", "-f", dump, src], check=True)
    data = open(dump, "rb").read()
    if dump_bytes is not None:
        data = dump_bytes(data)
    out = os.path.join(d, "timetracker_backup_20261120_101502.zip")
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("manifest.json", json.dumps({"alembic_revision": "newrev", "app_version": "4.2.0",
                                                "created_at": "2026-11-20T10:15:02", "db_type": "postgresql"},
                                               indent=2, sort_keys=True))
        z.writestr("db.dump", data)
        z.writestr("settings.json", "{}")
    return out, src


def content(db):
    """Row checksums of every application table."""
    c = connect(db)
    cur = c.cursor()
    out = {}
    for t in ("alembic_version", "users", "time_entries"):
        cur.execute("SELECT count(*), md5(coalesce(string_agg(x::text, ',' ORDER BY x::text), '')) FROM %s x" % t)
        out[t] = cur.fetchone()
    c.close()
    return out


def target(db, *extra):
    snapdir = tempfile.mkdtemp(prefix="snap-", dir=H.WORK)
    return ["--database", url(db), "--snapshot-dir", snapdir, *extra], snapdir


def lock_held(db):
    c = connect(db)
    cur = c.cursor()
    cur.execute("SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
                "WHERE l.locktype = 'advisory' AND l.classid = %s AND l.objid = %s AND l.objsubid = 2 "
                "AND d.datname = %s", (LOCK_KEY[0], LOCK_KEY[1], db))
    n = cur.fetchone()[0]
    c.close()
    return n > 0


class Worker(threading.Thread):
    """A thread whose exception is kept for the main thread: done() joins it
    and raises a Failure naming it when it raised or is still running."""

    def __init__(self, name, fn):
        super().__init__(name=name, daemon=True)
        self.fn, self.result, self.error = fn, None, None

    def run(self):
        try:
            self.result = self.fn()
        except BaseException:  # whatever it was, the main thread reports it
            self.error = traceback.format_exc()

    def done(self, timeout=60):
        self.join(timeout)
        check(not self.is_alive(), "%s still runs after %d s" % (self.name, timeout))
        check(self.error is None, "%s failed: %s" % (self.name, self.error))
        return self.result


class OrmLoad:
    """Sessions reading users then time_entries in one transaction, as every
    ORM request does, in a loop; records what each transaction saw.  On a
    clean exit from the with block, a session that could not connect, died,
    saw an error or completed no transaction at all fails the test."""

    def __init__(self, db, n=4):
        self.db, self.stop, self.seen, self.errors = db, threading.Event(), {}, []
        self.lock = threading.Lock()
        self.threads = [Worker("ORM session %d" % i, self.run) for i in range(n)]

    def run(self):
        c = connect(self.db)  # an exception here reaches the main thread through Worker
        c.autocommit = False
        cur = c.cursor()
        ok = 0
        while not self.stop.is_set():
            try:
                cur.execute("SELECT count(*) FROM users")
                u = cur.fetchone()[0]
                cur.execute("SELECT count(*) FROM time_entries")
                e = cur.fetchone()[0]
                c.commit()
                ok += 1
                with self.lock:
                    self.seen[(u, e)] = self.seen.get((u, e), 0) + 1
            except psycopg2.Error as exc:  # every error is a finding
                with self.lock:
                    self.errors.append(str(exc).strip())
                c.rollback()
            time.sleep(0.002)
        c.close()
        return ok

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, exc_type, *exc):
        self.stop.set()
        counts = []
        for t in self.threads:
            try:
                counts.append(t.done())
            except Failure:
                if exc_type is None:
                    raise
        if exc_type is None:
            check(not self.errors, "the application's sessions saw errors: %s" % self.errors[:5])
            check(all(counts), "an ORM session completed no transaction: %s per session" % counts)
        return False


SLOW = {"ARCHFS_TEST_DB_STEP_DELAY_MS": "40"}


# ---------------------------------------------------------------- the tests

def t_pg_restore_under_orm_load():
    archive, src = pg_archive(entries=60000)
    live = new_db(3, 10, "old")
    want = content(src)
    listener = connect(live)
    listener.cursor().execute("LISTEN archfs_restore")
    opts, snapdir = target(live)
    samples, locks = [], []
    with OrmLoad(live) as load:
        time.sleep(0.3)
        with Mount(archive, *opts, env=SLOW) as m:
            check(control(m, "restore") == 0, "restore refused: %s" % status(m)["error"])
            wait_state(m, "database", timeout=120)
            while status(m)["state"] not in FINAL:
                samples.append(read(m, ".restore_in_progress"))
                locks.append(lock_held(live))
                time.sleep(0.05)
            s = wait_final(m)
            check(s["state"] == "done", "state %s: %s" % (s["state"], s["error"]))
            check(read(m, ".restore_in_progress") == "0\n", "still in progress after the end")
            check(s["dump"]["archive_version"].startswith("1.") and s["dump"]["pg_restore_major"] >= 15,
                  ".status dump: %s" % s["dump"])
            check("password" not in json.dumps(s), ".status shows a password")
    old, new = (3, 10), (want["users"][0], want["time_entries"][0])
    check(set(load.seen) <= {old, new}, "wrong answers during the restore: %s" % load.seen)
    check(old in load.seen and new in load.seen, "the load saw only %s" % load.seen)
    check(content(live) == want, "the live database differs from the archive's")
    check("1\n" in samples, ".restore_in_progress never read 1 during the database step")
    check(any(locks), "the advisory lock was never visible in pg_locks")
    check(not lock_held(live), "the advisory lock outlived the restore")
    listener.poll()
    events = [json.loads(n.payload) for n in listener.notifies]
    check([e["event"] for e in events] == ["start", "end"], "NOTIFY archfs_restore payloads: %s" % events)
    check(events[1]["state"] == "done" and events[0]["archive"].endswith(".zip"), "NOTIFY payloads: %s" % events)
    listener.close()


TABLES = ("alembic_version", "time_entries", "users")


def table_locks(watcher, pid):
    """{table: lock mode} of the application tables' locks pid holds, asked
    on watcher (a session on the same database)."""
    cur = watcher.cursor()
    cur.execute("SELECT c.relname, l.mode FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                "WHERE l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                "AND l.pid = %s AND l.granted AND c.relname = ANY(%s)", (pid, list(TABLES)))
    return dict(cur.fetchall())


class OrmTxn:
    """One application session's transaction, a step at a time, as an ORM
    request makes it: read users, then time_entries, then COMMIT."""

    def __init__(self, db):
        self.c = connect(db)
        cur = self.c.cursor()
        cur.execute("SET statement_timeout = '60s'; SELECT pg_backend_pid()")
        self.pid, self.seen = cur.fetchone()[0], []
        self.c.autocommit = False

    def read(self, table):
        cur = self.c.cursor()
        cur.execute("SELECT count(*) FROM %s" % table)
        self.seen.append(cur.fetchone()[0])

    def commit(self):
        """COMMIT: the row counts the transaction saw."""
        self.c.commit()
        return tuple(self.seen)

    def whole(self):
        self.read("users")
        self.read("time_entries")
        return self.commit()


def wait_until(cond, what, m, timeout=30, never=None):
    """Polls cond() until true; fails when timeout passes, the run ends, or never() holds."""
    deadline = time.monotonic() + timeout
    while not cond():
        if never:
            never()
        s = status(m)
        check(s["state"] not in FINAL, "the run ended (%s: %s) before %s" % (s["state"], s["error"], what))
        check(time.monotonic() < deadline, "not within %d s: %s" % (timeout, what))
        time.sleep(0.005)


def t_pg_lock_first_under_orm_transactions():
    """The restore locks every table it replaces before it runs a statement
    of the dump, so that the application's transactions (users, then
    time_entries, in one transaction) see the old database or the new one,
    never a mix, a missing table or an error.  Gates hold psql just before
    its lock statement (pg-prelock) and just after it (pg-locked):
    transactions that read users while it stands before the lock must
    hold it off, then finish on the old data; at pg-locked the restore holds
    ACCESS EXCLUSIVE on every table and nothing of the dump ran; the
    transactions that begin then wait, and read the new data.  (Without the
    lock first, this was caught only by chance, by the load test.)"""
    archive, src = pg_archive(entries=2000)
    want = content(src)
    live = new_db(3, 10, "old")
    old, new = (3, 10), (want["users"][0], want["time_entries"][0])
    opts, _ = target(live)
    gates, env = gates_env("pg-prelock", "pg-locked")
    watcher = connect(live)
    early, late, workers = [], [], []
    locked = os.path.join(gates, "pg-locked.reached")
    try:
        with Mount(archive, *opts, env=env) as m:
            try:
                check(control(m, "restore") == 0, "restore refused: %s" % status(m)["error"])
                wait_gate(gates, "pg-prelock", m, timeout=120)
                pids = list(restore_sessions(watcher, live))
                check(len(pids) == 1, "restoring sessions at pg-prelock: %s" % pids)
                pid = pids[0]
                check(table_locks(watcher, pid) == {}, "before its lock statement the restore holds %s"
                      % table_locks(watcher, pid))
                early = [OrmTxn(live) for _ in range(3)]
                for r in early:
                    r.read("users")
                open_gate(gates, "pg-prelock")

                def not_past_the_lock():
                    check(not os.path.exists(locked), "the restore went past its lock statement while the "
                          "application's transactions held users: it locked nothing first")
                wait_until(lambda: restore_sessions(watcher, live).get(pid, set()) & {r.pid for r in early},
                           "the restore waits for the application's transactions", m, never=not_past_the_lock)
                for r in early:
                    r.read("time_entries")
                saw_early = [r.commit() for r in early]
                wait_gate(gates, "pg-locked", m)
                got = table_locks(watcher, pid)
                check(got == {t: "AccessExclusiveLock" for t in TABLES},
                      "after its lock statement the restore holds %s, not ACCESS EXCLUSIVE on %s" % (got, TABLES))
                late = [OrmTxn(live) for _ in range(3)]
                workers = [Worker("transaction %d begun after the lock" % i, r.whole) for i, r in enumerate(late)]
                for w in workers:
                    w.start()
                cur = watcher.cursor()

                def all_wait():
                    cur.execute("SELECT count(*) FROM unnest(%s) p WHERE %s = ANY(pg_blocking_pids(p))",
                                ([r.pid for r in late], pid))
                    return cur.fetchone()[0] == len(late)
                wait_until(all_wait, "the transactions begun after the lock wait for the restore", m)
                open_gate(gates, "pg-locked")
                s = wait_final(m, timeout=120)
            finally:
                open_all_gates(gates, "pg-prelock", "pg-locked")
        check(s["state"] == "done", "state %s: %s" % (s["state"], s["error"]))
        saw_late = [w.done() for w in workers]
    finally:
        for r in early + late:
            r.c.close()
        watcher.close()
    check(saw_early == [old] * len(early), "transactions begun before the lock saw %s, not %s" % (saw_early, old))
    check(saw_late == [new] * len(late), "transactions begun after the lock saw %s, not %s" % (saw_late, new))
    check(content(live) == want, "the live database differs from the archive's")


def t_pg_failure_half_way_changes_nothing():
    archive, src = pg_archive()
    live = new_db(3, 10, "old")
    c = connect(live)
    c.cursor().execute("CREATE VIEW user_names AS SELECT username FROM users")  # the dump does not know it
    c.close()
    before = content(live)
    opts, snapdir = target(live)
    s = run_command(archive, opts)
    check(s["state"] == "failed", "state %s" % s["state"])
    check("cannot drop table" in s["error"] and "user_names" in s["error"], "error: %r" % s["error"])
    check(content(live) == before, "the database changed")
    check(not lock_held(live), "the advisory lock outlived the failed restore")

    # a migrate command that fails after the commit: rolled back from the snapshot
    c = connect(live)
    c.cursor().execute("DROP VIEW user_names")
    c.close()
    # a migrate command that fails: it ran on the staging database, so the live one never changed
    s = run_command(archive, [*opts, "--migrate", "echo 'no such revision' >&2; exit 1"])
    check(s["state"] == "failed" and "no such revision" in s["error"], "migrate: %s %r" % (s["state"], s["error"]))
    check(content(live) == before, "migrate failure: the database changed")
    check(os.listdir(snapdir) == [] and s["snapshot"] is None, "migrate failure: a snapshot was kept: %s" % os.listdir(snapdir))
    check(staging_dbs() == [], "migrate failure: staging left: %s" % staging_dbs())

    # another restore holds the advisory lock (another host, say): refused, nothing changed
    holder = connect(live)
    holder.cursor().execute("SELECT pg_advisory_lock(%s, %s)", LOCK_KEY)
    s = run_command(archive, opts)
    holder.close()
    check(s["state"] == "failed" and "advisory lock" in s["error"], "lock held elsewhere: %s %r" % (s["state"], s["error"]))
    check(content(live) == before, "lock held elsewhere: the database changed")


def t_pg_cancel_rolls_back():
    archive, src = pg_archive(entries=300000)  # about 2 s of feeding at the test delay
    live = new_db(3, 10, "old")
    before = content(live)
    opts, snapdir = target(live)
    with Mount(archive, *opts, env=SLOW) as m:
        check(control(m, "restore") == 0, "restore refused")
        wait_state(m, "database", timeout=120)
        time.sleep(0.2)
        check(control(m, "cancel") == 0, "cancel refused during the database step: %s" % status(m)["error"])
        s = wait_final(m)
    check(s["state"] == "cancelled", "state %s (%s)" % (s["state"], s["error"]))
    check(content(live) == before, "cancel: the database changed")
    check(not lock_held(live), "cancel: the advisory lock stayed")
    c = connect(live)
    cur = c.cursor()
    cur.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'archfs-restore-%%'")
    check(cur.fetchone()[0] == 0, "cancel: the restoring session is still there")
    c.close()


def t_pg_snapshot_undoes_the_restore():
    archive, src = pg_archive()
    live = new_db(3, 10, "old")
    before = content(live)
    opts, snapdir = target(live)
    s = run_command(archive, opts)
    check(s["state"] == "done", "restore: %s" % s["error"])
    check(content(live) == content(src), "the restore did not arrive")
    snaps = [os.path.join(snapdir, n) for n in os.listdir(snapdir)]
    check(len(snaps) == 1, "snapshots: %s" % snaps)
    with zipfile.ZipFile(snaps[0]) as z:
        check(z.read("db.dump")[:5] == b"PGDMP", "the snapshot's db.dump is not a custom-format dump")
        check(json.loads(z.read("manifest.json"))["db_type"] == "postgresql", "snapshot manifest")
    with Mount(snaps[0], "--database", url(live), "--no-snapshot") as m:
        check(control(m, "restore") == 0, "restoring the snapshot refused")
        s = wait_final(m)
        check(s["state"] == "done", "restoring the snapshot: %s" % s["error"])
    check(content(live) == before, "the database is not back to its content before the restore")


def restore_sessions(watcher, db):
    """{pid: set of blocking pids} of the restore's own sessions on db
    (application_name archfs-restore-...), asked on watcher."""
    cur = watcher.cursor()
    cur.execute("SELECT pid, pg_blocking_pids(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND application_name LIKE 'archfs-restore-%%'", (db,))
    return {pid: set(blockers) for pid, blockers in cur.fetchall()}


def blocked_spell(m, watcher, db, holder, timeout=60):
    """Polls the restoring session until the run ends: (seen, state), seen
    the seconds between the first and the last poll that found it blocked by
    holder, a lower bound of the time it waited (from the end of the first
    such poll to the start of the last)."""
    first = last = None
    deadline = time.monotonic() + timeout
    while status(m)["state"] not in FINAL:
        check(time.monotonic() < deadline, "the restore did not end within %d s" % timeout)
        t0 = time.monotonic()
        blocked = any(holder in b for b in restore_sessions(watcher, db).values())
        t1 = time.monotonic()
        if blocked:
            first = t1 if first is None else first
            last = t0
        time.sleep(0.01)
    return (last - first if first is not None else 0.0), wait_final(m)


WAITED = re.compile(r"the restore gave up after (\d+\.\d) s waiting for locks held by sessions (.*) "
                    r"\(--lock-wait (\d+)\); nothing was changed")


def t_pg_lock_wait_and_terminate_blockers():
    """A read lock the test holds and --lock-wait 3: the restore waits for
    it no less than 3 s (as the server shows its session blocked by the
    holder) and not much more, then gives up with nothing changed and says
    the time it waited, measured, and who held the lock.  (The message
    echoed the option: a wait cut to 1 s passed.)  With
    --terminate-blockers the holder is ended after the wait instead."""
    wait = 3
    archive, src = pg_archive()
    live = new_db(3, 10, "old")
    before = content(live)
    blocker = connect(live)
    blocker.autocommit = False
    cur = blocker.cursor()
    cur.execute("SELECT count(*) FROM users")  # idle in transaction, holding a read lock
    cur.execute("SELECT pg_backend_pid()")
    pid = cur.fetchone()[0]
    watcher = connect("postgres")
    opts, _ = target(live, "--lock-wait", str(wait))
    with Mount(archive, *opts) as m:
        check(control(m, "restore") == 0, "restore refused")
        seen, s = blocked_spell(m, watcher, live, pid)
    check(s["state"] == "failed", "lock wait: state %s (%s)" % (s["state"], s["error"]))
    said = WAITED.search(s["error"] or "")
    check(said and said.group(2) == "%d (idle in transaction)" % pid and said.group(3) == str(wait),
          "lock wait: the reason does not say the time waited and name the blocker %d: %r" % (pid, s["error"]))
    waited = float(said.group(1))
    # the server showed the session blocked for `seen` s: it waited at least that long
    check(seen >= wait - 0.3, "lock wait: gave up after only %.2f s blocked (--lock-wait %d)" % (seen, wait))
    check(wait <= waited <= wait + 1.0, "lock wait: says it waited %.1f s (--lock-wait %d)" % (waited, wait))
    check(seen <= waited + 1.0, "lock wait: says %.1f s, but the server showed it blocked for %.2f s" % (waited, seen))
    check(content(live) == before, "lock wait: the database changed")
    check(restore_sessions(watcher, live) == {}, "lock wait: the restoring session outlived the give-up")
    opts, _ = target(live, "--lock-wait", "2", "--terminate-blockers")
    s = run_command(archive, opts)
    check(s["state"] == "done", "--terminate-blockers: %s %s" % (s["state"], s["error"]))
    ended = [re.search(r"terminated sessions (.*): they blocked the restore for (\d+\.\d) s \(--lock-wait 2\)", w)
             for w in s["warnings"]]
    ended = [x for x in ended if x]
    check(len(ended) == 1 and ended[0].group(1) == "%d (idle in transaction)" % pid and
          2.0 <= float(ended[0].group(2)) <= 3.0,
          "--terminate-blockers: no warning names the blocker and the time it blocked: %s" % s["warnings"])
    check(content(live) == content(src), "--terminate-blockers: the restore did not arrive")
    try:
        cur.execute("SELECT 1")
        raise Failure("the blocking session survived --terminate-blockers")
    except psycopg2.Error:
        pass
    blocker.close()
    watcher.close()


def verify(archive, *opts):
    r = subprocess.run([H.ARCHFS, "verify", archive, *opts], capture_output=True, text=True, timeout=120)
    return r.returncode, r.stderr


def t_pg_bad_dumps_refused_at_verify():
    archive, _ = pg_archive()
    live = new_db(3, 10, "old")
    before = content(live)
    trunc, _ = pg_archive(dump_bytes=lambda d: d[: len(d) * 2 // 3])
    rc, err = verify(trunc, "--database", url(live))
    check(rc == 3 and "pg_restore cannot read db.dump to its end" in err, "truncated dump: %d %s" % (rc, err[-500:]))

    def as_1_15(d):
        # archive version 1.15 stores the compression as one byte, not an int
        intsize = d[8]
        return d[:6] + bytes([15]) + d[7:11] + b"\x00" + d[11 + 1 + intsize:]
    newer, _ = pg_archive(dump_bytes=as_1_15)
    rc, err = verify(newer, "--database", url(live))
    check(rc == 1 and "1.15" in err and "PostgreSQL 16" in err, "dump of version 1.15: %d %s" % (rc, err[-500:]))
    check(content(live) == before, "a refused verify changed the database")
    rc, err = verify(archive, "--database", url(live))
    check(rc == 0, "verify of a sound archive: %s" % err[-500:])


def t_pg_connection_errors_at_verify():
    archive, _ = pg_archive()
    live = new_db(3, 10, "old")
    secret = "p@ss w/rd%"
    rc, err = verify(archive, "--database", url(live, "app_pw", secret))
    check(rc == 0, "percent-encoded password: %s" % err[-500:])
    rc, err = verify(archive, "--database", url(live, "app_pw", "wrong-Secret"))
    check(rc == 4 and "password authentication failed" in err, "wrong password: %d %s" % (rc, err[-300:]))
    check("wrong-Secret" not in err, "the password is on stderr")
    host, port = server()
    rc, err = verify(archive, "--database", "postgresql://postgres@/%s?host=%s&port=1" % (live, host))
    check(rc == 4 and "cannot connect" in err, "unreachable server: %d %s" % (rc, err[-300:]))
    rc, err = verify(archive, "--database", url("no_such_database"))
    check(rc == 4 and "does not exist" in err, "missing database: %d %s" % (rc, err[-300:]))
    # the password reaches the children only in their environment: no child's argv holds it, as spawned
    argv_log = os.path.join(tempfile.mkdtemp(prefix="argv-", dir=H.WORK), "argv")
    with Mount(archive, "--database", url(live, "app_pw", secret), "--no-snapshot",
               env={"ARCHFS_TEST_ARGV_LOG": argv_log}) as m:
        check(control(m, "restore") == 0, "restore refused")
        s = wait_final(m, timeout=120)
        check(s["state"] == "done", "restore with a password: %s" % s["error"])
        check("w/rd" not in read(m, ".log") + read(m, ".status"), "the password is in .log or .status")
    check_no_secret_spawned(argv_log, SECRET_PARTS, {"pg_restore", "psql"})


def db_exists(name):
    c = connect("postgres")
    cur = c.cursor()
    cur.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (name,))
    n = cur.fetchone()[0]
    c.close()
    return n == 1


def t_pg_missing_database_and_create():
    archive, src = pg_archive()
    want = content(src)
    _counter[0] += 1
    name = "t%d_%d_created" % (os.getpid(), _counter[0])
    # without --create: refused at verify, CLI and mount, nothing created or written
    opts, snapdir = target(name)
    for command in ("verify", "restore"):
        r = subprocess.run([H.ARCHFS, command, archive, *opts], capture_output=True, text=True, timeout=120)
        last = r.stderr.strip().splitlines()[-1]
        check(r.returncode == 4 and "the postgresql database %s does not exist" % name in last and "--create" in last,
              "%s into a missing database: %d %r" % (command, r.returncode, last))
    with Mount(archive, *opts) as m:
        check(control(m, "restore") == 0, "restore refused at the write")
        s = wait_final(m)
        check(s["state"] == "failed" and "%s does not exist" % name in s["error"], "mount: %s %r" % (s["state"], s["error"]))
        check(s["target"]["exists"] is False and s["snapshot"] is None, "mount: .status target %s" % s["target"])
    check(not db_exists(name) and os.listdir(snapdir) == [], "a refused restore created the database or a snapshot")

    # a role that may not create databases: refused at verify, even with --create
    role = "archfs_nocreate_%d" % os.getpid()
    admin = connect("postgres")
    admin.cursor().execute("DROP ROLE IF EXISTS %s" % role)
    admin.cursor().execute("CREATE ROLE %s LOGIN NOCREATEDB" % role)
    try:
        r = subprocess.run([H.ARCHFS, "restore", archive, "--database", url(name, role), "--create",
                            "--snapshot-dir", snapdir], capture_output=True, text=True, timeout=120)
    finally:
        admin.cursor().execute("DROP ROLE %s" % role)
        admin.close()
    check(r.returncode == 4 and "%s may not create databases" % role in r.stderr,
          "--create without CREATEDB: %d %s" % (r.returncode, r.stderr[-400:]))
    check(not db_exists(name) and os.listdir(snapdir) == [], "--create without CREATEDB created something")

    # --create on the command line: created, restored, reported
    r = subprocess.run([H.ARCHFS, "verify", archive, *opts, "--create"], capture_output=True, text=True, timeout=120)
    check(r.returncode == 0 and not db_exists(name), "verify --create: %d %s" % (r.returncode, r.stderr[-400:]))
    r = subprocess.run([H.ARCHFS, "restore", archive, *opts, "--create"], capture_output=True, text=True, timeout=120)
    check(r.returncode == 0, "restore --create: %d %s" % (r.returncode, r.stderr[-600:]))
    check(db_exists(name) and content(name) == want, "restore --create: the new database's rows differ")
    check(any("target: postgresql database %s does not exist: --create" % name in x for x in r.stderr.splitlines()[:6]),
          "the first lines do not name the target: %s" % r.stderr.splitlines()[:6])
    check("created the database %s" % name in r.stderr and "Alembic revision newrev" in r.stderr,
          "creation or result not reported: %s" % r.stderr[-800:])

    # through a mount with -o create
    _counter[0] += 1
    name2 = "t%d_%d_created" % (os.getpid(), _counter[0])
    opts2, snapdir2 = target(name2)
    with Mount(archive, "-o", "create", *opts2) as m:
        check(control(m, "restore") == 0, "restore refused")
        s = wait_final(m, timeout=120)
        check(s["state"] == "done", "restore -o create: %s %s" % (s["state"], s["error"]))
        t = s["target"]
        check(t["created"] is True and t["exists"] is True and t["revision"] == "newrev" and t["size"] > 0,
              ".status target: %s" % t)
        check("created the database %s" % name2 in read(m, ".log"), ".log: " + read(m, ".log")[-600:])
    check(content(name2) == want, "restore -o create: the rows differ")
    # an existing database is reported with its size and revision, and --create changes nothing for it
    r = subprocess.run([H.ARCHFS, "verify", archive, *opts2, "--create"], capture_output=True, text=True, timeout=120)
    check(r.returncode == 0 and "target: postgresql database %s, " % name2 in r.stderr and
          "Alembic revision newrev (what a restore replaces)" in r.stderr, "existing: %s" % r.stderr[-600:])


def t_pg_create_then_cancel_drops_it():
    archive, src = pg_archive(entries=300000)  # about 2 s of feeding at the test delay
    _counter[0] += 1
    name = "t%d_%d_created" % (os.getpid(), _counter[0])
    opts, snapdir = target(name, "--create")
    with Mount(archive, *opts, env=SLOW) as m:
        check(control(m, "restore") == 0, "restore refused")
        wait_state(m, "database", timeout=120)
        check(db_exists(name) and status(m)["target"]["created"] is True, "the database was not created first")
        time.sleep(0.2)
        check(control(m, "cancel") == 0, "cancel refused: %s" % status(m)["error"])
        s = wait_final(m)
        check(s["state"] == "cancelled" and s["target"]["created"] is False, "cancel: %s %s" % (s["state"], s["target"]))
        check("dropped the database %s, created for this restore" % name in read(m, ".log"), ".log: " + read(m, ".log")[-600:])
    check(not db_exists(name), "cancel: the database created for the restore is still there")
    check(os.listdir(snapdir) == [], "cancel: a snapshot was left: %s" % os.listdir(snapdir))


# ------------------------------------------------- --migrate on a staging database

NEWER = ("ALTER TABLE users ADD COLUMN x INTEGER; "
         "CREATE TABLE invoices (id SERIAL PRIMARY KEY, user_id INTEGER REFERENCES users(id)); "
         "UPDATE alembic_version SET version_num = 'headrev'")


def staging_dbs():
    c = connect("postgres")
    cur = c.cursor()
    cur.execute("SELECT datname FROM pg_database WHERE datname LIKE '%%archfs_staging%%' ORDER BY 1")
    out = [r[0] for r in cur.fetchall()]
    c.close()
    return out


def app_rows(db):
    """Row checksums of the archive's tables and columns (a migration may add columns)."""
    c = connect(db)
    cur = c.cursor()
    out = {}
    for t, cols in (("alembic_version", "version_num"), ("users", "id, username, role"),
                    ("time_entries", "id, user_id, notes")):
        cur.execute("SELECT count(*), md5(coalesce(string_agg(x::text, ',' ORDER BY x::text), '')) "
                    "FROM (SELECT %s FROM %s) x" % (cols, t))
        out[t] = cur.fetchone()
    c.close()
    return out


def schema(db):
    host, port = server()
    out = subprocess.run([tool("pg_dump"), "--schema-only", "-h", host, "-p", port, "-U", "postgres", db],
                          check=True, capture_output=True, text=True).stdout
    # without the random key of \restrict and \unrestrict (pg_dump 15.14 and newer)
    return "\n".join(l for l in out.splitlines() if not l.startswith(("\\restrict ", "\\unrestrict ")))


def newer_live():
    """A live database at the application's newer revision: a new column and
    a new table with a foreign key to users, with a row in it."""
    live = new_db(3, 10, "old")
    c = connect(live)
    c.cursor().execute(NEWER + "; INSERT INTO invoices (user_id) VALUES (1)")
    c.close()
    return live


def migrate_cmd(before=""):
    """A migrate command that brings the database at DATABASE_URL (any
    SQLAlchemy scheme) to the newer revision with psql."""
    return ('%s u=$(printf %%s "$DATABASE_URL" | sed "s/^postgresql+[a-z0-9]*:/postgresql:/"); '
            '%s -X -q -v ON_ERROR_STOP=1 -d "$u" -c "%s"' % (before, tool("psql"), NEWER))


def t_pg_migrate_staging_then_swap():
    archive, src = pg_archive()
    live = newer_live()
    want = app_rows(src)
    seen = os.path.join(tempfile.mkdtemp(prefix="mig-", dir=H.WORK), "url")
    dburl = url(live).replace("postgresql://", "postgresql+psycopg2://")
    snapdir = tempfile.mkdtemp(prefix="snap-", dir=H.WORK)
    opts = ["--database", dburl, "--snapshot-dir", snapdir,
            "--migrate", migrate_cmd('printf %%s "$DATABASE_URL" > %s;' % seen)]
    with Mount(archive, *opts) as m:
        check(control(m, "restore") == 0, "restore refused: %s" % status(m)["error"])
        s = wait_final(m, timeout=120)
        log = read(m, ".log")
    check(s["state"] == "done", "state %s: %s" % (s["state"], s["error"]))
    check("archive at Alembic revision newrev, live at headrev: migrating a staged copy before the swap" in log and
          "holds db.dump at Alembic revision newrev (live at headrev): running the migrate command" in log,
          ".log: " + log[-1500:])
    check("dropped the staging database %s__archfs_staging" % live in log, ".log: " + log[-800:])
    check(app_rows(live) == dict(want, alembic_version=(1, app_rows(live)["alembic_version"][1])),
          "the live database does not have the archive's rows")
    c = connect(live)
    cur = c.cursor()
    cur.execute("SELECT version_num FROM alembic_version")
    check(cur.fetchall() == [("headrev",)], "revision not at the new one")
    cur.execute("SELECT count(*) FROM information_schema.columns WHERE table_name = 'users' AND column_name = 'x'")
    check(cur.fetchone()[0] == 1, "the new column is missing")
    cur.execute("SELECT count(*) FROM invoices")
    check(cur.fetchone()[0] == 0, "invoices is not the migrated (empty) table of the backup's state")
    cur.execute("SELECT count(*) FROM pg_constraint WHERE conname = 'invoices_user_id_fkey'")
    check(cur.fetchone()[0] == 1, "the foreign key of invoices is missing")
    cur.execute("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s", (live,))
    check(cur.fetchone()[0] is None, "the staging mark reached the live database")
    c.close()
    used = open(seen).read()
    check(used.startswith("postgresql+psycopg2://postgres@/%s__archfs_staging?host=" % live),
          "DATABASE_URL of the migration: %s" % used)
    check(staging_dbs() == [], "staging left: %s" % staging_dbs())
    check(len(os.listdir(snapdir)) == 1, "no snapshot of the restore: %s" % os.listdir(snapdir))


def t_pg_migrate_failure_changes_nothing():
    archive, src = pg_archive()
    live = newer_live()
    before, before_schema = content(live), schema(live)
    opts, snapdir = target(live, "--migrate", migrate_cmd() + "; echo 'no such revision' >&2; exit 3")
    s = run_command(archive, opts)
    check(s["state"] == "failed" and "no such revision" in s["error"] and "status 3" in s["error"],
          "state %s: %r" % (s["state"], s["error"]))
    check(content(live) == before and schema(live) == before_schema, "the live database changed")
    check(staging_dbs() == [], "staging left: %s" % staging_dbs())
    check(os.listdir(snapdir) == [], "a snapshot was kept: %s" % os.listdir(snapdir))
    check(not lock_held(live), "the advisory lock outlived the failed restore")


def t_pg_migrate_cancel_drops_staging():
    archive, src = pg_archive()
    live = newer_live()
    before, before_schema = content(live), schema(live)
    d = tempfile.mkdtemp(prefix="mig-", dir=H.WORK)
    fifo, started = os.path.join(d, "gate"), os.path.join(d, "started")
    os.mkfifo(fifo)
    opts, snapdir = target(live, "--migrate", migrate_cmd("touch %s; cat %s >/dev/null;" % (started, fifo)))
    with Mount(archive, *opts) as m:
        check(control(m, "restore") == 0, "restore refused")
        deadline = time.time() + 120
        while not os.path.exists(started):  # the command runs on staging and waits on the gate
            check(time.time() < deadline and status(m)["state"] not in FINAL,
                  "the migrate command never started: %s" % status(m))
            time.sleep(0.02)
        check(status(m)["state"] == "migrate", "state: %s" % status(m)["state"])
        check(staging_dbs() == ["%s__archfs_staging" % live], "no staging database: %s" % staging_dbs())
        check(control(m, "cancel") == 0, "cancel refused during migrate: %s" % status(m)["error"])
        s = wait_final(m)
        log = read(m, ".log")
    try:  # release the gate, should the command still wait on it
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:
        pass
    check(s["state"] == "cancelled", "state %s (%s)" % (s["state"], s["error"]))
    check("dropped the staging database" in log, ".log: " + log[-800:])
    check(content(live) == before and schema(live) == before_schema, "cancel: the live database changed")
    check(staging_dbs() == [], "cancel: staging left: %s" % staging_dbs())
    check(os.listdir(snapdir) == [], "cancel: a snapshot was kept")
    check(not lock_held(live), "cancel: the advisory lock stayed")


def t_pg_migrate_leftover_staging():
    archive, src = pg_archive()
    live = newer_live()
    name = "%s__archfs_staging" % live
    admin = connect("postgres")
    cur = admin.cursor()
    # a leftover of a crashed run: archfs's mark, dropped, and the restore goes on
    cur.execute('CREATE DATABASE "%s"' % name)
    cur.execute("COMMENT ON DATABASE \"%s\" IS 'archfs staging for %s'" % (name, live))
    opts, snapdir = target(live, "--migrate", migrate_cmd())
    rc, err = verify(archive, *opts)
    check(rc == 0 and "leftover" in err and staging_dbs() == [name], "verify with a leftover: %d %s" % (rc, err[-600:]))
    with Mount(archive, *opts) as m:
        check(control(m, "restore") == 0, "restore refused")
        s = wait_final(m, timeout=120)
        log = read(m, ".log")
    check(s["state"] == "done", "with a leftover: %s %s" % (s["state"], s["error"]))
    check("dropping the staging database %s, a leftover of an earlier run" % name in log, ".log: " + log[-1500:])
    check(staging_dbs() == [], "staging left: %s" % staging_dbs())
    check(app_rows(live)["users"] == app_rows(src)["users"], "the restore did not arrive")
    # a database of that name that is not archfs's: refused at verify and restore, left alone
    cur.execute('CREATE DATABASE "%s"' % name)
    before = content(live)
    rc, err = verify(archive, *opts)
    last = err.strip().splitlines()[-1] if err.strip() else ""
    check(rc == 1 and "%s exists and is not archfs's staging database" % name in last, "unmarked: %d %s" % (rc, err[-600:]))
    s = run_command(archive, opts)
    check(s["state"] == "failed" and "not archfs's staging database" in s["error"], "unmarked restore: %s" % s["error"])
    check(staging_dbs() == [name] and content(live) == before, "the unmarked database or the live one changed")
    cur.execute('DROP DATABASE "%s"' % name)
    admin.close()


def t_pg_migrate_needs_createdb():
    archive, src = pg_archive()
    live = new_db(3, 10, "old")
    before = content(live)
    role = "archfs_nomig_%d" % os.getpid()
    admin = connect("postgres")
    admin.cursor().execute("DROP ROLE IF EXISTS %s" % role)
    admin.cursor().execute("CREATE ROLE %s LOGIN NOCREATEDB" % role)
    try:
        opts = ["--database", url(live, role), "--migrate", "true", "--no-snapshot"]
        rc, err = verify(archive, *opts)
        r = subprocess.run([H.ARCHFS, "restore", archive, *opts], capture_output=True, text=True, timeout=120)
    finally:
        admin.cursor().execute("DROP ROLE %s" % role)
        admin.close()
    last = err.strip().splitlines()[-1]
    check(rc == 1 and "--migrate needs a role that may create databases (CREATEDB)" in last and role in last,
          "verify without CREATEDB: %d %r" % (rc, last))
    check(r.returncode == 1 and "--migrate needs a role that may create databases" in r.stderr,
          "restore without CREATEDB: %d %s" % (r.returncode, r.stderr[-400:]))
    check(content(live) == before and staging_dbs() == [], "a refused --migrate changed something")


def t_pg_migrate_needs_a_url():
    """--migrate hands the staging database to the command as DATABASE_URL:
    a key=value connection string target is refused at verify, clearly,
    with nothing changed (it used to fail after the snapshot)."""
    archive, _ = pg_archive()
    live = new_db(3, 10, "old")
    before = content(live)
    host, port = server()
    kv = "host=%s port=%s user=postgres dbname=%s" % (host, port, live)
    rc, err = verify(archive, "--database", kv, "--migrate", "true")
    check(rc == 1 and "--migrate needs the database as a postgresql:// URL" in err.strip().splitlines()[-1],
          "verify: %d %r" % (rc, err[-400:]))
    rc, err = verify(archive, "--database", kv)
    check(rc == 0, "verify of a key=value target without --migrate: %d %s" % (rc, err[-400:]))
    check(content(live) == before and staging_dbs() == [], "a refused --migrate changed something")


# ------------------------------- secrets and hostile text (issue 11 items 5, 13 and 15)

SECRET = "p@ss w/rd%"  # app_pw's password (scripts/pgcluster.sh), scram-sha-256: really needed
SECRET_PARTS = ("p@ss", "w/rd", "p%40ss", "w%2Frd", "w%2frd", "ss%20w", "rd%25", "ss w")


def spawned(path):
    """The argv of every child the daemon spawned (its ARCHFS_TEST_ARGV_LOG hook)."""
    data = open(path, "rb").read() if os.path.exists(path) else b""
    return [rec.split(b"\0") for rec in data.split(b"\0\n") if rec]


def check_no_secret_spawned(argv_log, parts, progs, what=""):
    """No part of the secret in the argv of any child the daemon spawned (the
    ARCHFS_TEST_ARGV_LOG hook records each at its spawn, so none is missed
    as a sampled ps would), and the hook saw the programs progs."""
    data = open(argv_log, "rb").read() if os.path.exists(argv_log) else b""
    for part in parts:
        check(part.encode() not in data, "%s'%s' of the password is in a child's argv: %r" % (what, part, data[-800:]))
    seen = {os.path.basename(c[0].decode()) for c in spawned(argv_log)}
    check(progs <= seen, "%sthe hook did not see every child: %s" % (what, sorted(seen)))


def t_pg_password_never_shown():
    archive, _ = pg_archive(entries=2000)
    host, port = server()
    quoted = urllib.parse.quote(SECRET, safe="")
    role = "archfs_q_%d" % os.getpid()
    admin = connect("postgres")
    admin.cursor().execute("DROP ROLE IF EXISTS %s" % role)
    # trust auth for this role: its password is accepted, not needed, and must not appear either
    admin.cursor().execute("CREATE ROLE %s LOGIN SUPERUSER PASSWORD %%s" % role, ("it's s3cr\\et",))
    forms = (
        ("URL user-info", lambda db: url(db, "app_pw", SECRET), True, SECRET_PARTS),
        ("URL ?password=", lambda db: "postgresql+psycopg2://app_pw@/%s?host=%s&port=%s&password=%s"
         % (db, host, port, quoted), True, SECRET_PARTS),
        ("key=value", lambda db: "host=%s port=%s user=app_pw dbname=%s password='%s'" % (host, port, db, SECRET),
         False, SECRET_PARTS),
        ("key=value with \\' escapes", lambda db: "host=%s port=%s user=%s dbname=%s password = 'it\\'s s3cr\\\\et'"
         % (host, port, role, db), False, ("s3cr",)),
    )
    lives = []
    try:
        for name, make, migrate, parts in forms:
            live = new_db(3, 10, "old")
            lives.append(live)
            d = tempfile.mkdtemp(prefix="argv-", dir=H.WORK)
            argv_log = os.path.join(d, "argv")
            opts = ["--database", make(live), "--snapshot-dir", d] + (["--migrate", "true"] if migrate else [])
            mount = Mount(archive, *opts, env={"ARCHFS_TEST_ARGV_LOG": argv_log})
            with mount as m:
                cmdline = open("/proc/%d/cmdline" % mount.proc.pid, "rb").read()
                check(control(m, "restore") == 0, "%s: restore refused: %s" % (name, status(m)["error"]))
                s = wait_final(m, timeout=120)
                shown = {".status": read(m, ".status"), ".log": read(m, ".log")}
            check(s["state"] == "done", "%s: %s %s" % (name, s["state"], s["error"]))
            shown["the daemon's stderr"] = mount.stderr()
            shown["the daemon's /proc/PID/cmdline"] = cmdline.decode(errors="replace")
            for where, text in shown.items():
                for part in parts:
                    check(part not in text, "%s: '%s' of the password is in %s: %r" % (name, part, where, text[-800:]))
            check(b"xxx" in cmdline, "%s: the daemon's argv is not masked: %r" % (name, cmdline))
            check_no_secret_spawned(argv_log, parts, {"pg_restore", "psql", "pg_dump"} | ({"sh"} if migrate else set()),
                                    name + ": ")
    finally:
        for db in lives:
            admin.cursor().execute('DROP DATABASE IF EXISTS "%s"' % db)
        admin.cursor().execute("DROP ROLE IF EXISTS %s" % role)
        admin.close()


def header_strings(d):
    """(offset, length) of the database name, server version and pg_dump
    version strings of a custom-format dump's header."""
    vmin, intsize, pos = d[6], d[8], 11

    def read_int(pos):
        v = int.from_bytes(d[pos + 1:pos + 1 + intsize], "little")
        return (-v if d[pos] else v), pos + 1 + intsize
    pos = pos + 1 if vmin >= 15 else read_int(pos)[1]
    for _ in range(7):
        pos = read_int(pos)[1]
    out = []
    for _ in range(3):
        n, pos = read_int(pos)
        out.append((pos, n))
        pos += n
    return out


def log_escaped(b):
    return b.replace(b"\n", b"\\n").replace(b"\r", b"\\r").replace(b"\t", b"\\t").replace(b"\x1b", b"\\x1b") \
        .replace(b"\x7f", b"\\x7f")


def t_pg_dump_header_text_escaped():
    evil = {}

    def patch(d):
        d = bytearray(d)
        for i, text in ((0, b'app"\ndb'), (1, b'9 "q" \\\nX forged\r\t\x1b[1m'), (2, b"7 '\"\x7f\nY forged")):
            off, n = header_strings(d)[i]
            evil[i] = (text + b"z" * n)[:n]
            d[off:off + n] = evil[i]
        return bytes(d)
    archive, _ = pg_archive(entries=100, dump_bytes=patch)
    live = new_db(3, 10, "old")
    mount = Mount(archive, "--database", url(live))
    with mount as m:
        check(control(m, "verify") == 0, "verify refused")
        s = wait_final(m)
        log = open(os.path.join(m, ".log"), "rb").read()
    check(s["state"] == "done", "verify: %s %s" % (s["state"], s["error"]))
    dump = s["dump"]
    check(dump is not None and dump["server_version"] == evil[1].decode() and
          dump["pg_dump_version"] == evil[2].decode(), ".status dump: %r" % dump)
    want = b"made by pg_dump %s from PostgreSQL %s" % (log_escaped(evil[2]), log_escaped(evil[1]))
    check(want in log, ".log does not show the escaped versions %r: %r" % (want, log[-1500:]))
    lines = log.split(b"\n")[:-1]
    stamp = re.compile(rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d ")
    check(all(stamp.match(x) for x in lines) and b"\r" not in log and b"\x1b" not in log,
          ".log has a forged or raw line: %r" % [x for x in lines if not stamp.match(x)])
    err = mount.stderr()
    check(all(x.startswith("archfs: ") for x in err.splitlines()) and "\r" not in err and "\x1b" not in err,
          "the daemon's stderr has a forged line: %r" % err[-1500:])


FAKE_OLD_PG_RESTORE = """#!/bin/bash
# pg_restore as it was before the fix of CVE-2025-8714: no \\\\restrict in its scripts
set -o pipefail
%s "$@" | sed -e '/^\\\\restrict /d' -e '/^\\\\unrestrict /d' -e '/restrict-key/d'
"""


def hostile_dump_archive(d):
    """An archive whose db.dump hides psql meta-commands: one in the
    definition of a comment (bytes of the table of contents that pg_restore
    prints as they are), one in a table name.  Each would create a file in d."""
    filler = "A" * 200
    pwned = (os.path.join(d, "pwned-definition"), os.path.join(d, "pwned-name"))

    def prepare(src):
        c = connect(src)
        c.cursor().execute("COMMENT ON TABLE users IS %s", (filler,))
        c.cursor().execute('CREATE TABLE "x\n\\! touch %s\n" (b int)' % pwned[1])
        c.close()

    def inject(data):
        inj = "';\n\\! touch %s\n-- " % pwned[0]
        check(data.count(filler.encode()) == 1, "the comment is not in the dump once")
        return data.replace(filler.encode(), (inj + filler)[:len(filler)].encode())
    archive, _ = pg_archive(entries=100, dump_bytes=inject, prepare=prepare)
    return archive, pwned


def t_pg_psql_meta_commands_not_run():
    d = tempfile.mkdtemp(prefix="pwn-", dir=H.WORK)
    archive, pwned = hostile_dump_archive(d)
    live = new_db(3, 10, "old")
    before, before_schema = content(live), schema(live)
    # the installed tools (with the fix): psql refuses the commands, the transaction rolls back
    opts, _ = target(live)
    s = run_command(archive, opts)
    check(not any(os.path.exists(p) for p in pwned), "a meta-command of db.dump ran: %s" % os.listdir(d))
    check(s["state"] == "failed" and "backslash commands are restricted" in s["error"],
          "hostile dump: %s %r" % (s["state"], s["error"]))
    check(content(live) == before and schema(live) == before_schema, "the live database changed")
    # tools without the fix (a pg_restore whose scripts have no \restrict): refused at verify
    fake = os.path.join(d, "bin")
    os.makedirs(fake)
    with open(os.path.join(fake, "pg_restore"), "w") as f:
        f.write(FAKE_OLD_PG_RESTORE % tool("pg_restore"))
    os.chmod(os.path.join(fake, "pg_restore"), 0o755)
    for name in ("psql", "pg_dump"):
        os.symlink(tool(name), os.path.join(fake, name))
    opts, _ = target(live, "--pg-bindir", fake)
    s = run_command(archive, opts)
    check(not any(os.path.exists(p) for p in pwned), "with an unfixed pg_restore a meta-command of db.dump ran: %s"
          % os.listdir(d))
    check(s["state"] == "failed" and "CVE-2025-8714" in s["error"] and fake in s["error"],
          "unfixed pg_restore: %s %r" % (s["state"], s["error"]))
    rc, err = verify(archive, "--database", url(live), "--pg-bindir", fake)
    check(rc == 1 and "lacks the fix of CVE-2025-8714" in err, "verify with an unfixed pg_restore: %d %s" % (rc, err[-400:]))
    check(content(live) == before and schema(live) == before_schema, "the live database changed")


def child_named(pid, name):
    """The pid of a child of pid whose command is name, or None."""
    for d in os.listdir("/proc"):
        try:
            text = open("/proc/%s/stat" % d).read() if d.isdigit() else ""
        except OSError:
            continue
        if text and text[text.index("(") + 1:text.rindex(")")] == name and \
                int(text[text.rindex(")") + 2:].split()[1]) == pid:
            return int(d)
    return None


def sessions(db, where):
    c = connect("postgres")
    cur = c.cursor()
    cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND " + where, (db,))
    n = len(cur.fetchall())
    c.close()
    return n


def allow_connections(db, yes):
    c = connect("postgres")
    c.cursor().execute('ALTER DATABASE "%s" ALLOW_CONNECTIONS %s' % (db, "true" if yes else "false"))
    c.close()


def t_pg_commit_outcome_asked_of_the_server():
    """A cancel, a killed psql or a lost connection around the restore's
    COMMIT (psql held at a gate just before or just after it): archfs asks
    the server what became of the transaction before it reports anything,
    the report matches what the database holds, and the snapshot is kept
    whenever the database changed or may have.  (A cancel that raced the
    COMMIT was reported as "nothing was changed" and the snapshot deleted
    although the server had committed.)"""
    archive, src = pg_archive()
    want = content(src)
    cases = [("pg-commit", "cancel", "done"),
             ("pg-commit", "kill psql", "done"),
             ("pg-precommit", "terminate its session", "rolled back"),
             ("pg-commit", "kill psql, the server unreachable", "unknown")]
    failures = []
    for gate, act, outcome in cases:
        try:
            one_commit_outcome(archive, want, gate, act, outcome)
        except Failure as e:
            failures.append(str(e))
    check(not failures, "; ".join(failures))


def one_commit_outcome(archive, want, gate, act, outcome):
    """One case of t_pg_commit_outcome_asked_of_the_server: act at gate, then the outcome expected."""
    live = new_db(3, 10, "old")
    before = content(live)
    opts, snapdir = target(live)
    gates, env = gates_env(gate)
    mount = Mount(archive, *opts, env=env)
    try:
        with mount as m:
            check(control(m, "restore") == 0, "%s: restore refused: %s" % (act, status(m)["error"]))
            try:
                wait_gate(gates, gate, m)
                if act == "cancel":
                    check(control(m, "cancel") == 0, "cancel refused before the outcome was known")
                    deadline = time.time() + 10  # until archfs has acted on it: waits, or stops psql
                    while "waiting for its outcome" not in read(m, ".log") and \
                            child_named(mount.proc.pid, "psql") is not None and time.time() < deadline:
                        time.sleep(0.02)
                elif act.startswith("kill psql"):
                    if "unreachable" in act:  # archfs's own session too, and no new one
                        allow_connections(live, False)
                        check(sessions(live, "application_name = 'archfs'") == 1, "archfs's own session not found")
                    psql = child_named(mount.proc.pid, "psql")
                    check(psql is not None, "no psql child of archfs")
                    os.kill(psql, signal.SIGKILL)
                else:
                    check(sessions(live, "application_name LIKE 'archfs-restore-%%'") == 1, "no restoring session")
            finally:
                open_gate(gates, gate)
            s = wait_final(m)
    finally:
        allow_connections(live, True)
    got, snaps = content(live), os.listdir(snapdir)
    if outcome == "done":
        check(s["state"] == "done", "%s: state %s (%s)" % (act, s["state"], s["error"]))
        check(got == want, "%s: reported done, but the database is not the archive's" % act)
        check(len(snaps) == 1 and s["snapshot"], "%s: the snapshot of a changed database is gone" % act)
    elif outcome == "rolled back":
        check(s["state"] == "failed" and "rolled back" in s["error"], "%s: %s %r" % (act, s["state"], s["error"]))
        check(got == before, "%s: reported rolled back, but the database changed" % act)
        check(snaps == [], "%s: a snapshot of an unchanged database was kept: %s" % (act, snaps))
    else:
        check(s["state"] == "failed" and "cannot say" in s["error"], "%s: %s %r" % (act, s["state"], s["error"]))
        check(got == want, "%s: the COMMIT went through: the database should be the archive's" % act)
        check(len(snaps) == 1 and s["snapshot"], "%s: the outcome is unknown, yet the snapshot is gone" % act)
