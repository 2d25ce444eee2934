# SPDX-License-Identifier: MIT
"""Integration tests of the restore: real mounts, a real live SQLite target
in WAL mode with other processes on it, the control files, the command line.
Each test builds its own live target in a scratch directory."""
import errno
import json
import os
import random
import re
import signal
import sqlite3
import stat
import subprocess
import tempfile
import threading
import time
import zipfile

import harness as H
from harness import Failure, Mount, check, fixture, mkarchive

OLD_USERS = 3
OLD_ENTRIES = 10
FINAL = ("done", "failed", "cancelled")

READER = r'''
import json, os, sqlite3, sys
db, out, stop = sys.argv[1:4]
con = sqlite3.connect(db, timeout=60, isolation_level=None)
seen, errors = {}, []
while not os.path.exists(stop):
    try:
        con.execute("BEGIN")
        n, first = con.execute("SELECT count(*), min(username) FROM users").fetchone()
        e = con.execute("SELECT count(*) FROM time_entries").fetchone()[0]
        con.execute("COMMIT")
        key = "%d/%s/%d" % (n, first, e)
        seen[key] = seen.get(key, 0) + 1
    except Exception as exc:
        errors.append(str(exc))
        try:
            con.execute("ROLLBACK")
        except Exception:
            pass
json.dump({"seen": seen, "errors": errors[:20], "nerrors": len(errors)}, open(out, "w"))
'''


class Live:
    """A live application target: a WAL-mode SQLite database with other rows
    than the archive's, and an uploads tree with a file the archive replaces
    and one it does not have."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="live-", dir=H.WORK)
        self.db = os.path.join(self.dir, "app.db")
        self.uploads = os.path.join(self.dir, "uploads")
        self.flag = os.path.join(self.dir, "restore.flag")
        self.snapdir = os.path.join(self.dir, "snapshots")
        os.makedirs(os.path.join(self.uploads, "logos"))
        os.makedirs(self.snapdir)
        con = sqlite3.connect(self.db)
        con.execute("PRAGMA journal_mode=WAL")
        con.executescript(mkarchive.SQLITE_SCHEMA)
        con.execute("INSERT INTO alembic_version VALUES ('old000')")
        con.executemany("INSERT INTO users (username, role) VALUES (?, 'user')",
                        [("old%d" % i,) for i in range(OLD_USERS)])
        con.executemany("INSERT INTO time_entries (user_id, notes) VALUES (1, ?)",
                        [("old entry %d" % i,) for i in range(OLD_ENTRIES)])
        con.commit()
        con.close()
        self.write("keep.txt", b"only in the live tree\n", 0o640, 1700000000)
        self.write("logos/f00004.dat", b"the live logo, replaced by the archive's\n", 0o600, 1700000000)

    def write(self, rel, data, mode=0o644, mtime=None):
        p = os.path.join(self.uploads, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(data)
        os.chmod(p, mode)
        if mtime:
            os.utime(p, (mtime, mtime))

    def opts(self, *extra):
        return ["--database", "sqlite:///" + self.db, "--uploads", self.uploads, "--flag-file", self.flag,
                "--snapshot-dir", self.snapdir, *extra]

    def state(self):
        """The target's whole content: the database's SQL dump and every upload path."""
        return db_dump(self.db), tree(self.uploads)

    def snapshots(self):
        return sorted(os.path.join(self.snapdir, n) for n in os.listdir(self.snapdir))


def db_dump(path):
    r = subprocess.run(["sqlite3", path, ".dump"], capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, "sqlite3 .dump %s: %s" % (path, r.stderr))
    return r.stdout


def integrity(path):
    r = subprocess.run(["sqlite3", path, "PRAGMA integrity_check"], capture_output=True, text=True, timeout=60)
    return r.stdout.strip()


def tree(root):
    """{relative path: (kind, mode, size, mtime, sha256)} of everything below root, not following symlinks."""
    out = {}
    for d, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(d, n)
            st = os.lstat(p)
            rel = os.path.relpath(p, root)
            if stat.S_ISREG(st.st_mode):
                out[rel] = ("file", stat.S_IMODE(st.st_mode), st.st_size, int(st.st_mtime), H.sha(p))
            elif stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(p))
            else:
                out[rel] = ("dir", stat.S_IMODE(st.st_mode))
    return out


def read(mnt, name):
    with open(os.path.join(mnt, name)) as f:
        return f.read()


def status(mnt):
    return json.loads(read(mnt, ".status"))


def control(mnt, command):
    """Writes one command to .control; returns 0 or the errno of the refused write."""
    try:
        fd = os.open(os.path.join(mnt, ".control"), os.O_WRONLY | os.O_TRUNC)
    except OSError as e:
        return e.errno
    try:
        os.write(fd, (command + "\n").encode())
        return 0
    except OSError as e:
        return e.errno
    finally:
        os.close(fd)


def wait_final(mnt, timeout=180):
    deadline = time.time() + timeout
    while time.time() < deadline:
        s = status(mnt)
        if s["state"] in FINAL:
            return s
        time.sleep(0.05)
    raise Failure("the restore did not end within %d s: %s" % (timeout, read(mnt, ".log")[-2000:]))


def wait_state(mnt, want, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        s = status(mnt)
        if s["state"] == want:
            return s
        check(s["state"] not in FINAL, "the restore ended (%s) before reaching %s: %s" % (s["state"], want, s["error"]))
        time.sleep(0.01)
    raise Failure("state %s not reached within %d s" % (want, timeout))


def gates_env(*names, faults=()):
    """(directory, environment) of test gates (restore/job.h afs_job_test_gate) and faults."""
    d = tempfile.mkdtemp(prefix="gates-", dir=H.WORK)
    env = {"ARCHFS_TEST_GATE_DIR": d, "ARCHFS_TEST_GATES": ",".join(names)}
    if faults:
        env["ARCHFS_TEST_FAULTS"] = ",".join(faults)
    return d, env


def wait_gate(gates, name, mnt, timeout=60):
    """Waits until the job stands at gate name (it waits there until open_gate)."""
    deadline = time.time() + timeout
    while not os.path.exists(os.path.join(gates, name + ".reached")):
        s = status(mnt)
        check(s["state"] not in FINAL, "the run ended (%s: %s) before the gate %s" % (s["state"], s["error"], name))
        check(time.time() < deadline, "gate %s not reached within %d s: %s" % (name, timeout, read(mnt, ".log")[-1500:]))
        time.sleep(0.01)


def at_gate(gates, name, mnt, timeout=60):
    """True once the job stands at gate name (it waits there until open_gate),
    False when the run ended without reaching it: the test then goes on to
    check what the run left, so that a step that never ran fails it on the
    target's content."""
    deadline = time.time() + timeout
    while not os.path.exists(os.path.join(gates, name + ".reached")):
        if status(mnt)["state"] in FINAL:
            return os.path.exists(os.path.join(gates, name + ".reached"))
        check(time.time() < deadline, "gate %s not reached within %d s: %s" % (
            name, timeout, read(mnt, ".log")[-1500:]))
        time.sleep(0.01)
    return True


def open_gate(gates, name):
    open(os.path.join(gates, name + ".go"), "w").close()


def open_all_gates(gates, *names):
    """Lets every one of names pass, now and later: after a test's failure, so that the daemon can end."""
    for name in names:
        open_gate(gates, name)


def run_command(archive, opts, command="restore", env=None):
    """Mounts archive with archfs options opts, runs command, returns the final .status."""
    with Mount(archive, *opts, env=env) as m:
        check(control(m, command) == 0, command + " refused: " + str(status(m)["error"]))
        return wait_final(m)


def restore_and_wait(archive, live, *extra, command="restore", env=None):
    """Mounts archive with live as the target, runs command, returns the final .status."""
    return run_command(archive, live.opts(*extra), command, env)


def check_uploads_merged(live, archive, src, before):
    """The live uploads tree is exactly before merged with the archive's
    uploads/ (src/uploads, its source): every archive upload with its bytes,
    size, mode less setuid/setgid/sticky/world-write and mtime (the
    archive's, DOS time); every live path the archive lacks as it was; no
    other path (no temporary file)."""
    up = os.path.join(src, "uploads")
    exp = mkarchive.expected(archive)
    after = tree(live.uploads)
    want_paths = set(before)
    for d, _, files in os.walk(up):
        for n in files:
            rel = os.path.relpath(os.path.join(d, n), up)
            want_paths.add(rel)
            want_paths.update(rel.rsplit("/", k)[0] for k in range(1, rel.count("/") + 1))
            st = os.stat(os.path.join(d, n))
            got = after.get(rel)
            check(got is not None and got[0] == "file", "uploads/%s missing after the restore" % rel)
            want_mode = stat.S_IMODE(st.st_mode) & ~(stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX | stat.S_IWOTH)
            check(got[1] == want_mode, "uploads/%s: mode %o, expected %o" % (rel, got[1], want_mode))
            want_mtime = exp["uploads/" + rel]["mtime"]
            check(got[3] == want_mtime, "uploads/%s: mtime %d, expected %d" % (rel, got[3], want_mtime))
            check(got[2] == st.st_size, "uploads/%s: %d bytes, the archive's has %d" % (rel, got[2], st.st_size))
            check(got[4] == H.sha(os.path.join(d, n)), "uploads/%s: content differs from the archive" % rel)
    for rel, was in before.items():
        if not os.path.isfile(os.path.join(up, rel)):
            check(after.get(rel) == was, "uploads/%s (no file of the archive) was changed: %s, was %s" % (
                rel, after.get(rel), was))
    check(set(after) == want_paths, "the live uploads hold other paths than the old and the archive's: extra %s, "
          "missing %s" % (sorted(set(after) - want_paths)[:5], sorted(want_paths - set(after))[:5]))


def big_fixture():
    """The application archive with a database of a few MB: many backup steps."""
    return fixture("app", db_size=4 << 20)


SLOW = {"ARCHFS_TEST_DB_STEP_DELAY_MS": "20"}


# ---------------------------------------------------------------- the tests

def t_restore_sqlite_wal_under_reader():
    archive, src = big_fixture()
    live = Live()
    before = live.state()
    marker = os.path.join(live.dir, "migrated")
    stop, out = os.path.join(live.dir, "stop"), os.path.join(live.dir, "reader.json")
    reader = subprocess.Popen(["python3", "-c", READER, live.db, out, stop])
    samples, flag_seen, sampling = [], [], threading.Event()
    new_users = sqlite3.connect(os.path.join(src, "db.sqlite")).execute(
        "SELECT count(*), min(username), (SELECT count(*) FROM time_entries) FROM users").fetchone()
    try:
        with Mount(archive, *live.opts("--migrate", "echo \"$DATABASE_URL\" > " + marker), env=SLOW) as m:
            check(read(m, ".restore_in_progress") == "0\n", ".restore_in_progress before the restore")
            check(read(m, ".progress") == "0 idle\n", ".progress before: %r" % read(m, ".progress"))

            def sample():
                while not sampling.is_set():
                    samples.append((read(m, ".progress"), read(m, ".restore_in_progress")))
                    flag_seen.append(os.path.exists(live.flag))
                    time.sleep(0.005)

            time.sleep(0.5)  # the reader is in its loop
            th = threading.Thread(target=sample)
            th.start()
            check(control(m, "restore") == 0, "restore refused: %s" % status(m)["error"])
            s = wait_final(m)
            sampling.set()
            th.join()
            check(s["state"] == "done", "state %s: %s" % (s["state"], s["error"]))
            check(s["percent"] == 100 and read(m, ".progress") == "100 done\n", ".progress at the end: %r" % read(m, ".progress"))
            check(read(m, ".restore_in_progress") == "0\n", ".restore_in_progress after the restore")
            check(s["snapshot"] and os.path.exists(s["snapshot"]), "no snapshot: %s" % s["snapshot"])
            check(s["target"]["type"] == "sqlite" and s["target"]["uploads"] == live.uploads, "target: %s" % s["target"])
            check(s["manifest"]["alembic_revision"] == "a1b2c3d4e5f6", "manifest: %s" % s["manifest"])
            log = read(m, ".log")
            check("integrity_check" in log and "migrate" in log, "the log lacks steps: " + log[-1500:])
    finally:
        open(stop, "w").close()
        reader.wait(timeout=60)
    r = json.load(open(out))
    old_key = "%d/old0/%d" % (OLD_USERS, OLD_ENTRIES)
    new_key = "%d/%s/%d" % new_users
    check(r["nerrors"] == 0, "the reader saw %d errors: %s" % (r["nerrors"], r["errors"]))
    check(set(r["seen"]) <= {old_key, new_key}, "the reader saw a mix: %s" % r["seen"])
    check(old_key in r["seen"] and new_key in r["seen"], "the reader saw only %s" % r["seen"])
    check(db_dump(live.db) == db_dump(os.path.join(src, "db.sqlite")), "the live database differs from the archive's")
    check(integrity(live.db) == "ok", "integrity_check after the restore")
    # the migration ran on a staged copy beside the live database, before the swap, and the copy is gone
    staged = open(marker).read().strip()
    check(staged.startswith("sqlite:///" + os.path.dirname(live.db) + "/.") and ".archfs-" in staged,
          "the migrate command did not run against a staged copy: DATABASE_URL=%r" % staged)
    check(not os.path.exists(staged[len("sqlite:///"):]), "the staged copy was left behind: " + staged)
    check_uploads_merged(live, archive, src, before[1])
    pcts = [int(p.split()[0]) for p, _ in samples]
    check(all(a <= b for a, b in zip(pcts, pcts[1:])), ".progress went backwards: %s" % pcts)
    check(any(p.split()[1] == "database" for p, _ in samples), ".progress never showed the database step")
    check(not any(p.startswith("100") for p, _ in samples[:-1] if not p.endswith("done\n")), "100 before done")
    check("1\n" in [f for _, f in samples], ".restore_in_progress never read 1")
    flag_when = [(f, seen) for (_, f), seen in zip(samples, flag_seen)]
    check(any(seen for _, seen in flag_when), "the flag file never existed")
    check(not os.path.exists(live.flag), "the flag file outlived the restore")
    done_at = next(i for i, (p, _) in enumerate(samples) if p.endswith("done\n")) if any(
        p.endswith("done\n") for p, _ in samples) else len(samples)
    check(not any(seen for _, seen in flag_when[done_at:]), "the flag file existed after the state was done")


def t_snapshot_mount_undoes_the_restore():
    """The restore makes the target the archive's (database dump equal,
    uploads merged exactly); restoring its snapshot puts back exactly what
    was there before, database and uploads tree."""
    archive, src = fixture("app")
    live = Live()
    before = live.state()
    s = restore_and_wait(archive, live)
    check(s["state"] == "done", "restore: %s %s" % (s["state"], s["error"]))
    check(db_dump(live.db) == db_dump(os.path.join(src, "db.sqlite")), "after the restore the database is not the "
          "archive's (%s)" % ("unchanged" if db_dump(live.db) == before[0] else "changed otherwise"))
    check_uploads_merged(live, archive, src, before[1])
    snaps = live.snapshots()
    check(len(snaps) == 1 and os.path.basename(snaps[0]).startswith("archfs_pre_restore_"), "snapshots: %s" % snaps)
    with zipfile.ZipFile(snaps[0]) as z:
        names = set(z.namelist())
        check({"manifest.json", "db.sqlite", "uploads/logos/f00004.dat"} <= names, "snapshot holds %s" % names)
        man = json.loads(z.read("manifest.json"))
        check(man["db_type"] == "sqlite" and man["alembic_revision"] == "old000", "snapshot manifest: %s" % man)
    s = restore_and_wait(snaps[0], live, "--no-snapshot")
    check(s["state"] == "done", "restoring the snapshot: %s %s" % (s["state"], s["error"]))
    after = live.state()
    check(after[0] == before[0], "the database is not back to its pre-restore content")
    check(after[1] == before[1], "the uploads are not back: extra %s, missing %s" % (
        sorted(set(after[1]) - set(before[1]))[:5], sorted(set(before[1]) - set(after[1]))[:5]))


def t_restore_database_and_restore_uploads_commands():
    """`restore database` and `restore uploads` through .control (the
    command line has only `restore`): each makes its own part of the target
    the archive's and leaves the other exactly as it was (the database file
    byte for byte, the uploads tree path for path); its snapshot holds only
    its part, and restoring that with the same command undoes it exactly."""
    archive, src = fixture("app")
    want_db = db_dump(os.path.join(src, "db.sqlite"))
    for command in ("restore database", "restore uploads"):
        live = Live()
        before = live.state()
        raw = H.sha(live.db)
        s = restore_and_wait(archive, live, command=command)
        check(s["state"] == "done" and s["command"] == command and s["percent"] == 100,
              "%s: %s %s (%s)" % (command, s["command"], s["state"], s["error"]))
        snaps = live.snapshots()
        check(len(snaps) == 1 and s["snapshot"] == snaps[0], "%s: snapshots %s" % (command, snaps))
        with zipfile.ZipFile(snaps[0]) as z:
            names = set(z.namelist())
        if command == "restore database":
            check(db_dump(live.db) == want_db, "restore database: the database is not the archive's")
            check(tree(live.uploads) == before[1], "restore database: the uploads changed")
            check("db.sqlite" in names and not any(n.startswith("uploads/") for n in names),
                  "restore database: the snapshot holds %s" % sorted(names))
        else:
            check(H.sha(live.db) == raw and db_dump(live.db) == before[0], "restore uploads: the database changed")
            check_uploads_merged(live, archive, src, before[1])
            check("uploads/logos/f00004.dat" in names and "db.sqlite" not in names,
                  "restore uploads: the snapshot holds %s" % sorted(names))
        s = restore_and_wait(snaps[0], live, "--no-snapshot", command=command)
        check(s["state"] == "done", "%s of the snapshot: %s %s" % (command, s["state"], s["error"]))
        after = live.state()
        check(after[0] == before[0], "%s of the snapshot: the database is not back" % command)
        check(after[1] == before[1], "%s of the snapshot: the uploads are not back: extra %s, missing %s" % (
            command, sorted(set(after[1]) - set(before[1]))[:5], sorted(set(before[1]) - set(after[1]))[:5]))


def unsafe_modes_archive():
    """An archive of this test's own (the shared fixture has none of these):
    uploads with modes 0666 and 4777 below a 0777 directory entry, a 300 KiB
    upload (two 256 KiB copy chunks) and a 700 KiB one (three) that
    replaces a live upload.  (archive, source dir, {upload: (size, mode it must get)})."""
    d = tempfile.mkdtemp(prefix="fx-modes-", dir=H.WORK)
    src = os.path.join(d, "src")
    os.makedirs(src)
    mkarchive.make_sqlite(os.path.join(src, "db.sqlite"))
    rng = random.Random(18)
    files = [  # (path below uploads/, bytes, mode in the archive, mode restored, DOS time)
        ("shared/open.txt", b"written by anyone\n" * 40, 0o666, 0o664, (2026, 3, 4, 5, 6, 8)),
        ("shared/run.sh", b"#!/bin/sh\necho hi\n" * 30, 0o4777, 0o775, (2026, 3, 4, 5, 6, 10)),
        ("attachments/big.bin", rng.randbytes((300 << 10) + 1), 0o640, 0o640, (2026, 2, 1, 0, 0, 2)),
        ("logos/f00004.dat", rng.randbytes((700 << 10) + 13), 0o644, 0o644, (2025, 12, 31, 23, 59, 58)),
    ]
    out = os.path.join(d, "backup.zip")
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("manifest.json", json.dumps({"alembic_revision": "a1b2c3d4e5f6", "app_version": "4.2.0",
                                                "created_at": "2026-11-20T10:15:02", "db_type": "sqlite"}))
        z.write(os.path.join(src, "db.sqlite"), "db.sqlite")
        zi = zipfile.ZipInfo("uploads/shared/", (2026, 3, 4, 5, 6, 0))
        zi.create_system, zi.external_attr = 3, (0o40777 << 16) | 0x10
        z.writestr(zi, b"")
        for rel, data, mode, _, when in files:
            p = os.path.join(src, "uploads", rel)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "wb") as f:
                f.write(data)
            os.chmod(p, mode)
            zi = zipfile.ZipInfo("uploads/" + rel, when)
            zi.create_system, zi.external_attr = 3, (stat.S_IFREG | mode) << 16
            z.writestr(zi, data, zipfile.ZIP_DEFLATED)
    return out, src, {rel: (len(data), want) for rel, data, _, want, _ in files}


def t_uploads_unsafe_modes_and_large_files():
    """A restore writes uploads without world-write, setuid or sticky bits
    (0666 gives 0664, 4777 gives 0775; the 0777 directory is made without
    world-write), and writes every byte of uploads larger than one 256 KiB
    copy chunk, new or replacing a live file."""
    archive, src, want = unsafe_modes_archive()
    live = Live()
    before = live.state()
    s = restore_and_wait(archive, live)
    check(s["state"] == "done", "restore: %s %s" % (s["state"], s["error"]))
    after = tree(live.uploads)
    for rel, (size, mode) in want.items():
        got = after.get(rel)
        check(got and got[0] == "file", "uploads/%s: %s, expected a file" % (rel, got))
        check(got[1] == mode and got[2] == size, "uploads/%s: mode %o and %d bytes, expected %o and %d" % (
            rel, got[1], got[2], mode, size))
    shared = os.lstat(os.path.join(live.uploads, "shared"))
    check(stat.S_ISDIR(shared.st_mode) and not shared.st_mode & (stat.S_IWOTH | stat.S_ISVTX | stat.S_ISUID),
          "uploads/shared (0777 in the archive): mode %o" % shared.st_mode)
    check_uploads_merged(live, archive, src, before[1])
    check(db_dump(live.db) == db_dump(os.path.join(src, "db.sqlite")), "the database is not the archive's")


def corrupt_db_archive():
    """An archive whose db.sqlite has damaged pages but a correct CRC."""
    d = tempfile.mkdtemp(prefix="fx-corruptdb-", dir=H.WORK)
    db = os.path.join(d, "db.sqlite")
    mkarchive.make_sqlite(db, 256 << 10)
    data = bytearray(open(db, "rb").read())
    rng = random.Random(3)
    for page in range(2, len(data) // 4096, 3):
        for k in range(64):
            data[page * 4096 + rng.randrange(4096)] = rng.randrange(256)
    out = os.path.join(d, "backup.zip")
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("manifest.json", json.dumps({"db_type": "sqlite", "alembic_revision": None,
                                                "app_version": None, "created_at": "2026-11-20T10:15:02"}))
        z.writestr("db.sqlite", bytes(data))
        z.writestr("uploads/new.txt", b"must not arrive\n")
    return out


def t_failures_change_nothing():
    archive, src = fixture("app")
    # a damaged database in the archive: refused at verify
    live = Live()
    before = live.state()
    s = restore_and_wait(corrupt_db_archive(), live)
    check(s["state"] == "failed" and ("integrity_check" in (s["error"] or "") or "malformed" in (s["error"] or "")),
          "corrupt db.sqlite: %s %s" % (s["state"], s["error"]))
    check(live.state() == before, "corrupt db.sqlite: the target changed")
    check(live.snapshots() == [], "corrupt db.sqlite: a snapshot was left for a restore that changed nothing")

    # a symlink planted in the live uploads tree, pointing outside it
    live = Live()
    outside = tempfile.mkdtemp(prefix="outside-", dir=H.WORK)
    os.symlink(outside, os.path.join(live.uploads, "attachments"))
    before = live.state()
    s = restore_and_wait(archive, live)
    check(s["state"] == "failed" and "attachments" in (s["error"] or ""), "planted symlink: %s %s" % (s["state"], s["error"]))
    check(os.listdir(outside) == [], "planted symlink: files were written outside the uploads tree")
    check(live.state() == before, "planted symlink: the target changed")

    # an upload path with '..': the archive is refused before anything starts
    live = Live()
    before = live.state()
    bad, _ = fixture("dotdot")
    r = subprocess.run([H.ARCHFS, "restore", bad, *live.opts()], capture_output=True, text=True, timeout=60)
    check(r.returncode == 3 and "archfs: " in r.stderr and ".." in r.stderr, "dotdot: %d %s" % (r.returncode, r.stderr))
    H.refused([bad, "MNT", *live.opts()], "dotdot mount")
    check(live.state() == before, "dotdot: the target changed")

    # a migrate command that exits 1: it ran on a staged copy before the swap, so nothing changed at
    # all (the live database byte for byte), no snapshot or staged file is left, reason in .status
    live = Live()
    before = live.state()
    raw = open(live.db, "rb").read()
    listing = sorted(os.listdir(os.path.dirname(live.db)))
    s = restore_and_wait(archive, live, "--migrate", "echo 'alembic: no such revision' >&2; exit 1")
    check(s["state"] == "failed", "migrate exit 1: state %s" % s["state"])
    check("status 1" in s["error"] and "no such revision" in s["error"], "migrate exit 1: error %r" % s["error"])
    check(live.state() == before and open(live.db, "rb").read() == raw,
          "migrate exit 1: the live database changed")
    check(sorted(os.listdir(os.path.dirname(live.db))) == listing,
          "migrate exit 1: files left beside the database: %s" % sorted(os.listdir(os.path.dirname(live.db))))
    check(len(live.snapshots()) == 0, "migrate exit 1: nothing changed, so no snapshot is kept")

    # cancel in the middle of the database copy (held after its first step, its transaction open):
    # nothing changed; the next restore into the same target then makes it the archive's
    archive, src = fixture("app", db_size=1 << 20)
    live = Live()
    before = live.state()
    gates, env = gates_env("db-step")
    with Mount(archive, *live.opts(), env=env) as m:
        check(control(m, "restore") == 0, "restore refused")
        try:
            reached = at_gate(gates, "db-step", m)
            rc = control(m, "cancel")
        finally:
            open_gate(gates, "db-step")
        s = wait_final(m)
        in_progress, progress = read(m, ".restore_in_progress"), read(m, ".progress")
    check(live.state() == before, "cancel: the target changed (the run ended %s)" % s["state"])
    check(integrity(live.db) == "ok", "cancel: integrity_check")
    check(reached, "cancel: the database copy never ran a step: the run ended %s" % s["state"])
    check(rc == 0, "cancel refused during the database step: %s (%s)" % (errno.errorcode.get(rc, rc), s["error"]))
    check(s["state"] == "cancelled", "cancel: state %s (%s)" % (s["state"], s["error"]))
    check(in_progress == "0\n" and progress == "%d cancelled\n" % s["percent"] and s["percent"] < 100,
          "cancel: .restore_in_progress %r, .progress %r" % (in_progress, progress))
    check(not os.path.exists(live.flag) and live.snapshots() == [], "cancel: the flag file or a snapshot stayed")
    s = restore_and_wait(archive, live)
    check(s["state"] == "done", "restore after the cancel: %s %s" % (s["state"], s["error"]))
    check(db_dump(live.db) == db_dump(os.path.join(src, "db.sqlite")), "restore after the cancel: the database "
          "is not the archive's")
    check_uploads_merged(live, archive, src, before[1])


def t_kill9_during_database_step():
    """kill -9 of the daemon in the middle of the database copy (held at the
    gate after its first step, the copy's transaction open) leaves the whole
    old database; just after the step that commits, the whole new one.
    Readers saw exactly that at the gate, and the uploads step had not
    begun: the uploads are untouched."""
    archive, src = fixture("app", db_size=1 << 20)
    new = db_dump(os.path.join(src, "db.sqlite"))
    for gate, outcome in (("sqlite-commit", "new"), ("db-step", "old")):
        live = Live()
        old, uploads = live.state()
        want = new if outcome == "new" else old
        gates, env = gates_env(gate)
        mount = Mount(archive, *live.opts(), env=env)
        seen = None
        with mount as m:
            check(control(m, "restore") == 0, "restore refused")
            reached = at_gate(gates, gate, m)
            s = status(m)
            if reached:
                try:
                    seen = db_dump(live.db)
                finally:
                    mount.proc.send_signal(signal.SIGKILL)
                    mount.proc.wait()
                    mount.killed = True
        now = db_dump(live.db)
        what = {old: "the old one", new: "the archive's"}.get(now, "neither the old nor the archive's")
        check(now == want, "kill -9 at %s: the database is %s, expected the whole %s one (the run: %s)" % (
            gate, what, outcome, s["state"]))
        check(integrity(live.db) == "ok", "kill -9 at %s: integrity_check fails" % gate)
        check(tree(live.uploads) == uploads, "kill -9 at %s, in the database step: the uploads changed" % gate)
        check(reached and s["state"] == "database", "gate %s: reached %s, state %s (%s)" % (
            gate, reached, s["state"], s["error"]))
        check(seen == want, "at %s another connection read %s, expected the %s database" % (
            gate, {old: "the old database", new: "the archive's"}.get(seen, "a mix"), outcome))


def daemon_unnamed_files(pid, root):
    """The files below root that process pid has open but that have no name
    yet (O_TMPFILE, "#inode (deleted)") or a temporary one (".archfs")."""
    out = []
    fds = "/proc/%d/fd" % pid
    for fd in os.listdir(fds):
        try:
            target = os.readlink(os.path.join(fds, fd))
        except OSError:
            continue
        if target.startswith(root + "/") and ("(deleted)" in target or ".archfs" in target):
            out.append((target, os.stat(os.path.join(fds, fd)).st_size))
    return out


def t_kill9_during_uploads_step():
    """kill -9 of the daemon in the middle of the uploads step (held at the
    gate after the write that brings the step past half its bytes, that
    file written but not yet named): the files merged before it are the
    archive's, every other path is as it was, no temporary file is left,
    and the database is the whole new one."""
    archive, src = fixture("app")
    up = os.path.join(src, "uploads")
    sizes = {os.path.relpath(os.path.join(d, n), up): os.path.getsize(os.path.join(d, n))
             for d, _, fs in os.walk(up) for n in fs}
    dirs = {p.rsplit("/", k)[0] for p in sizes for k in range(1, p.count("/") + 1)}
    live = Live()
    before = tree(live.uploads)
    gates, env = gates_env("upload-write")
    mount = Mount(archive, *live.opts(), env=env)
    with mount as m:
        check(control(m, "restore") == 0, "restore refused")
        reached = at_gate(gates, "upload-write", m)
        s = status(m)
        writing = []
        try:
            at_gate_tree = tree(live.uploads)
            if reached:
                writing = daemon_unnamed_files(mount.proc.pid, live.uploads)
        finally:
            if reached:
                mount.proc.send_signal(signal.SIGKILL)
                mount.proc.wait()
                mount.killed = True
    after = tree(live.uploads)
    check(db_dump(live.db) == db_dump(os.path.join(src, "db.sqlite")) and integrity(live.db) == "ok",
          "after kill -9 in the uploads step the database is not the whole new one")
    left = [p for p in after if ".archfs" in p]
    check(not left, "after kill -9 in the uploads step: temporary files left: %s" % left)
    merged = set()
    for rel, got in after.items():
        new = os.path.join(up, rel)
        if got[0] == "file" and os.path.isfile(new) and got[4] == H.sha(new):
            merged.add(rel)
        else:
            check(got == before.get(rel) or (got[0] == "dir" and rel in dirs),
                  "after kill -9: uploads/%s is neither the old file nor the archive's: %s" % (rel, got))
    check(reached and s["state"] == "uploads", "the uploads step never reached its gate: state %s (%s)" % (
        s["state"], s["error"]))
    check(after == at_gate_tree, "the tree changed between the gate and the kill")
    check(len(writing) == 1, "at the gate the daemon should be writing one unnamed upload: %s" % writing)
    done, total = s["bytes_done"], s["bytes_total"]
    check(total == sum(sizes.values()), "bytes_total %d, the uploads hold %d" % (total, sum(sizes.values())))
    written = sum(sizes[r] for r in merged)
    check(written < total // 2 <= done, "at the gate %d bytes were published and %d written, of %d" % (
        written, done, total))
    # the file being written holds exactly the bytes counted past the
    # published ones: all of a small upload, or the first chunks of a big one
    partial = writing[0][1]
    check(partial == done - written, "%d bytes counted past the published files, the unnamed file holds %d" % (
        done - written, partial))
    pending = [r for r in sizes if r not in merged and 0 < partial <= sizes[r]]
    check(pending, "the %d bytes of the unnamed file match no unpublished upload" % partial)
    check(0 < len(merged) < len(sizes), "the kill did not land inside the uploads step: %d of %d merged" % (
        len(merged), len(sizes)))


def t_new_uploads_owned_like_their_directory():
    """Directories and files the merge creates take the owner and group of
    the directory they are created in, as the application would have made
    them: its user can still write and delete them afterwards."""
    archive, _ = fixture("app")
    live = Live()
    os.makedirs(os.path.join(live.uploads, "attachments"))
    for d, uid in ((live.uploads, 65534), (os.path.join(live.uploads, "logos"), 65534),
                   (os.path.join(live.uploads, "attachments"), 12345)):
        os.chown(d, uid, uid)
    before = set(tree(live.uploads))
    s = restore_and_wait(archive, live)
    check(s["state"] == "done", "restore: %s %s" % (s["state"], s["error"]))
    created = sorted(set(tree(live.uploads)) - before)
    check(any(p.startswith("attachments/2026/") for p in created) and "avatars" in created,
          "the fixture created none of the directories tested: %s" % created)
    for rel in created:
        p = os.path.join(live.uploads, rel)
        st, parent = os.lstat(p), os.stat(os.path.dirname(p))
        check((st.st_uid, st.st_gid) == (parent.st_uid, parent.st_gid),
              "uploads/%s: owner %d:%d, its directory's is %d:%d"
              % (rel, st.st_uid, st.st_gid, parent.st_uid, parent.st_gid))
    check(os.stat(os.path.join(live.uploads, "attachments/2026/10")).st_uid == 12345,
          "attachments/2026/10 does not belong to the owner of attachments/")


def t_status_files_one_version_per_open():
    """A status file read through one open is one version to its end, as a
    file renamed over on a disk: a change between two reads of that open
    neither glues the new content to the old nor shifts it, and the next
    open sees the new one.  (With the kernel opening files itself, a
    read() to the end once found a newer, longer .status after the one it
    had: the JSON did not parse.)"""
    archive, _ = fixture("app")
    with Mount(archive) as m:
        path = os.path.join(m, ".status")
        held = [os.open(os.path.join(m, n), os.O_RDONLY) for n in (".status", ".progress", ".log")]
        try:
            first = os.read(held[0], 7)  # a part of it, the rest after the change
            progress_first = os.read(held[1], 3)
            log_before = read(m, ".log")
            check(control(m, "verify") == 0, "verify refused")
            done = wait_final(m)
            check(done["state"] == "done", "verify failed: %s" % done)
            rest = b"".join(iter(lambda: os.read(held[0], 5), b""))
            old = json.loads((first + rest).decode())
            check(old["state"] == "idle", ".status read through one open changed version: %s" % old["state"])
            whole = progress_first + b"".join(iter(lambda: os.read(held[1], 1), b""))
            check(whole == b"0 idle\n", ".progress read through one open: %r" % whole)
            log_held = os.pread(held[2], 1 << 20, 0).decode()
            check(log_held == log_before and "verify done" not in log_held,
                  ".log read through an open file grew after it: %r" % log_held[-200:])
            again = os.pread(held[0], 1 << 16, 0)
            check(json.loads(again.decode())["state"] == "idle", "a re-read from 0 of the held .status changed")
        finally:
            for fd in held:
                os.close(fd)
        check(status(m)["state"] == "done", "a new open of .status: %s" % status(m)["state"])
        check(read(m, ".progress") == "100 done\n", "a new open of .progress: %r" % read(m, ".progress"))
        check("verify done" in read(m, ".log"), "a new open of .log lacks the verify")
        st = os.stat(path)
        with open(path, "rb") as f:
            check(st.st_size in (0, len(f.read())), ".status size %d" % st.st_size)


def t_control_refusals():
    archive, _ = fixture("app")
    # browse-only mount: no target
    with Mount(archive) as m:
        check(control(m, "restore") == errno.EINVAL, "restore without a target: not EINVAL")
        s = status(m)
        check(s["state"] == "idle" and "no target" in (s["error"] or ""), "no target: .status %s" % s)
        check("no target" in read(m, ".log"), "no target: not in .log")
        check(control(m, "verify") == 0, "verify without a target refused")
        check(wait_final(m)["state"] == "done", "verify without a target failed: %s" % status(m)["error"])
    live = Live()
    with Mount(archive, *live.opts(), env=SLOW) as m:
        for bad in ("bogus", "restore everything", "", "RESTORE"):
            check(control(m, bad) == errno.EINVAL, "command %r: not EINVAL" % bad)
        check("unknown command" in status(m)["error"], "unknown command: .status error %r" % status(m)["error"])
        check(control(m, "cancel") == errno.EINVAL, "cancel with nothing running: not EINVAL")
        for name in (".status", ".progress", ".log", ".restore_in_progress"):
            try:
                H.write_through(os.path.join(m, name), os.O_WRONLY, b"restore\n")
                raise Failure(name + " written")
            except OSError as e:
                check(e.errno == errno.EROFS, "%s: errno %s, expected EROFS" % (name, errno.errorcode[e.errno]))
        try:
            open(os.path.join(m, ".control")).read()
            raise Failure(".control was readable")
        except OSError as e:
            check(e.errno == errno.EACCES, ".control read: errno %s" % errno.errorcode[e.errno])
        check(control(m, "restore") == 0, "restore refused")
        check(control(m, "restore") == errno.EBUSY, "second restore: not EBUSY")
        with Mount(archive, *live.opts()) as other:  # another daemon, the same target
            check(control(other, "restore") == errno.EBUSY, "a restore into a busy target from another mount: not EBUSY")
            check("another restore" in status(other)["error"], "other mount: %r" % status(other)["error"])
        check(control(m, "verify") == errno.EBUSY, "verify during a restore: not EBUSY")
        check("already running" in status(m)["error"], "busy: .status error %r" % status(m)["error"])
        s = wait_final(m)
        check(s["state"] == "done", "the first restore did not finish: %s" % s["error"])
        check(control(m, "cancel") == errno.EINVAL, "cancel after the end: not EINVAL")
    # another user on an allow_other mount
    os.chmod(H.WORK, 0o755)
    live = Live()
    with Mount(archive, "-o", "allow_other", *live.opts()) as m:
        os.chmod(os.path.dirname(m), 0o755)
        r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "sh", "-c",
                            "cat %s/.restore_in_progress && echo restore > %s/.control" % (m, m)],
                           capture_output=True, text=True, timeout=30)
        check(r.stdout == "0\n", "another user cannot read the status files: %r %r" % (r.stdout, r.stderr))
        check(r.returncode != 0 and "Permission denied" in r.stderr, "another user's write: %d %r" % (r.returncode, r.stderr))
        check(status(m)["state"] == "idle", "another user's write started something")
    check(not live.snapshots(), "another user's write changed the target")


def t_cli_verify_and_restore():
    archive, src = fixture("app")
    r = subprocess.run([H.ARCHFS, "verify", archive], capture_output=True, text=True, timeout=120)
    check(r.returncode == 0, "verify: %d %s" % (r.returncode, r.stderr))
    check(r.stdout.splitlines()[-1] == "100 done", "verify progress lines: %r" % r.stdout)
    bad, _ = fixture("badcrc")
    r = subprocess.run([H.ARCHFS, "verify", bad], capture_output=True, text=True, timeout=120)
    check(r.returncode == 3 and "damaged.txt" in r.stderr, "verify of a bad CRC: %d %s" % (r.returncode, r.stderr))
    r = subprocess.run([H.ARCHFS, "verify", corrupt_db_archive()], capture_output=True, text=True, timeout=120)
    check(r.returncode == 3 and "integrity_check" in r.stderr, "verify of a damaged db.sqlite: %d %s" % (r.returncode, r.stderr))
    r = subprocess.run([H.ARCHFS, "restore", archive], capture_output=True, text=True, timeout=120,
                       env={k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "UPLOAD_FOLDER")})
    check(r.returncode == 2 and "no target" in r.stderr, "restore without a target: %d %s" % (r.returncode, r.stderr))
    live = Live()
    before = live.state()
    env = dict(os.environ, DATABASE_URL="sqlite:///" + live.db, UPLOAD_FOLDER=live.uploads)
    r = subprocess.run([H.ARCHFS, "restore", archive, "--snapshot-dir", live.snapdir], capture_output=True,
                       text=True, timeout=120, env=env)
    check(r.returncode == 0, "restore from the environment's target: %d %s" % (r.returncode, r.stderr))
    pcts = [int(line.split()[0]) for line in r.stdout.splitlines()]
    check(pcts == sorted(pcts) and r.stdout.splitlines()[-1] == "100 done", "progress lines: %r" % r.stdout)
    check(db_dump(live.db) == db_dump(os.path.join(src, "db.sqlite")), "CLI restore: the database differs")
    check_uploads_merged(live, archive, src, before[1])
    # the target and no_snapshot in one -o list: the data restored, and no snapshot anywhere
    live = Live()
    before = live.state()
    r = subprocess.run([H.ARCHFS, "restore", archive, "-o", "database=sqlite:///%s,uploads=%s,snapshot_dir=%s,"
                        "no_snapshot" % (live.db, live.uploads, live.snapdir)], capture_output=True, text=True,
                       timeout=120, env={k: v for k, v in env.items() if k not in ("DATABASE_URL", "UPLOAD_FOLDER")})
    check(r.returncode == 0, "restore with -o options: %d %s" % (r.returncode, r.stderr))
    check(db_dump(live.db) == db_dump(os.path.join(src, "db.sqlite")), "-o restore: the database differs")
    check_uploads_merged(live, archive, src, before[1])
    snaps = [os.path.join(d, n) for d, _, fs in os.walk(live.dir) for n in fs if n.startswith("archfs_pre_restore_")]
    check(snaps == [], "-o no_snapshot: a snapshot was written: %s" % snaps)
    check("snapshot" not in r.stdout and "snapshot written" not in r.stderr, "-o no_snapshot: %s" % r.stderr[-600:])


def t_cli_without_fuse():
    """archfs-cli: the same verify and restore in a program that loads no
    FUSE library, for hosts and containers without it."""
    cli = os.path.join(os.path.dirname(H.ARCHFS), "archfs-cli")
    libs = subprocess.run(["ldd", cli], capture_output=True, text=True).stdout
    check("libzip" in libs and "fuse" not in libs, "archfs-cli loads: %s" % libs)
    archive, src = fixture("app")
    r = subprocess.run([cli, "verify", archive], capture_output=True, text=True, timeout=120)
    check(r.returncode == 0 and r.stdout.splitlines()[-1] == "100 done", "verify: %d %s" % (r.returncode, r.stderr))
    live = Live()
    before = live.state()
    r = subprocess.run([cli, "restore", "--database=sqlite:///" + live.db, archive, "-o",
                        "uploads=%s,snapshot_dir=%s" % (live.uploads, live.snapdir)],
                       capture_output=True, text=True, timeout=120)
    check(r.returncode == 0, "restore: %d %s" % (r.returncode, r.stderr))
    check(db_dump(live.db) == db_dump(os.path.join(src, "db.sqlite")), "archfs-cli restore: the database differs")
    check_uploads_merged(live, archive, src, before[1])
    for args, why in ((["verify", archive, "-f"], "only applies to a mount"),
                      (["verify", archive, "--seek-cache", "5"], "only applies to a mount"),
                      (["mount", archive], "usage"), ([], "usage"), (["verify", archive, "--bogus"], "--bogus")):
        r = subprocess.run([cli] + args, capture_output=True, text=True, timeout=30)
        lines = r.stderr.strip().splitlines()
        check(r.returncode == 2 and len(lines) == 1 and why in lines[0], "%s: %d %r" % (args, r.returncode, r.stderr))


def t_target_options_refused():
    archive, _ = fixture("app")
    live = Live()
    H.refused([archive, "MNT", "--database", "mysql://u:secret@h/db"], "unknown scheme")
    line = H.refused([archive, "MNT", "--database", "ftp://u:secret@h/db"], "unknown scheme")
    check("secret" not in line, "the password is in the error: " + line)
    H.refused([archive, "MNT", "--uploads", os.path.join(live.dir, "missing")], "missing uploads dir")
    H.refused([archive, "MNT", "--database", "sqlite:////no/such/dir/app.db"], "missing database directory")
    H.refused([archive, "MNT", "--lock-wait", "soon"], "bad --lock-wait")
    H.refused([archive, "MNT", "--migrate", "true"], "--migrate without a database")
    H.refused([archive, "MNT", "--snapshot-dir", live.db], "snapshot dir is a file")
    H.refused([archive, "MNT", "--seek-cache", "0"], "bad --seek-cache")
    H.refused([archive, "MNT", "-o", "seek_cache=lots"], "bad -o seek_cache")
    with Mount(archive, "-o", "database=postgresql://app:hunter2@localhost/app,uploads=" + live.uploads) as m:
        s = status(m)
        check(s["target"] == {"type": "postgresql", "url": "postgresql://app@localhost/app", "uploads": live.uploads,
                              "path": None, "exists": None, "size": None, "revision": None, "create": False,
                              "created": False},
              "-o target: %s" % s["target"])
        check("hunter2" not in read(m, ".status") + read(m, ".log"), "the password is shown")


# ------------------------------------------- the target must exist (issue 20)

def listing(*dirs):
    """Every path below dirs, with its size: what "nothing was written" compares."""
    out = {}
    for top in dirs:
        for d, subdirs, files in os.walk(top):
            for n in subdirs + files:
                p = os.path.join(d, n)
                out[p] = os.lstat(p).st_size
    return out


def archfs(*args, cwd=None, env=None):
    return subprocess.run([H.ARCHFS, *args], capture_output=True, text=True, timeout=120, cwd=cwd, env=env,
                          stdin=subprocess.DEVNULL)


def new_target():
    """A live directory without a database: app.db is the file a restore would create."""
    live = Live()
    os.unlink(live.db)
    return live


def rows(path):
    con = sqlite3.connect(path)
    try:
        return (con.execute("SELECT count(*), min(username) FROM users").fetchone(),
                con.execute("SELECT count(*) FROM time_entries").fetchone()[0],
                con.execute("SELECT version_num FROM alembic_version").fetchone()[0])
    finally:
        con.close()


def t_missing_sqlite_database_refused():
    archive, src = fixture("app")
    live = new_target()
    before = listing(live.dir)
    for command in ("restore", "verify"):
        r = archfs(command, archive, *live.opts())
        last = r.stderr.strip().splitlines()[-1]
        check(r.returncode == 4, "%s into a missing database: exit %d: %s" % (command, r.returncode, r.stderr))
        check("%s failed: the sqlite database %s does not exist" % (command, live.db) in last and "--create" in last,
              "%s: the last line does not name the missing file: %r" % (command, last))
        check(listing(live.dir) == before, "%s: something was written: %s" % (
            command, sorted(set(listing(live.dir)) ^ set(before))))
        check(not os.path.exists(live.db), "%s created the database" % command)
    # the same through a mount: the command is accepted, verify refuses it
    with Mount(archive, *live.opts()) as m:
        for command in ("restore", "verify", "restore database"):
            check(control(m, command) == 0, "%s refused at the write" % command)
            s = wait_final(m)
            check(s["state"] == "failed", "%s: state %s" % (command, s["state"]))
            check(live.db in s["error"] and "does not exist" in s["error"], "%s: error %r" % (command, s["error"]))
            check(s["snapshot"] is None and not os.path.exists(live.flag), "%s: snapshot or flag left" % command)
            t = s["target"]
            check(t["path"] == live.db and t["exists"] is False and t["size"] is None and not t["created"],
                  "%s: .status target %s" % (command, t))
            check(listing(live.dir) == before, "%s through the mount: something was written: %s" % (
                command, sorted(set(listing(live.dir)) ^ set(before))))
        log = read(m, ".log")
        check("the sqlite database %s does not exist" % live.db in log, ".log lacks the refusal: " + log[-800:])
    check(not os.path.exists(live.db) and live.snapshots() == [], "the mount created the database or a snapshot")
    # a directory where the file should be: refused, not written into
    os.mkdir(live.db)
    r = archfs("restore", archive, *live.opts("--create"))
    check(r.returncode == 4 and "%s is not a regular file" % live.db in r.stderr, "a directory as the database: %d %s" % (
        r.returncode, r.stderr[-400:]))
    check(os.listdir(live.db) == [] and live.snapshots() == [], "a directory as the database: written into")


def t_relative_sqlite_url_refused():
    archive, src = fixture("app")
    live = new_target()
    before = listing(live.dir)
    absolute = "sqlite:////%s/app.db" % live.dir.lstrip("/")
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "UPLOAD_FOLDER")}
    cases = [
        (["restore", archive, "--database", "sqlite:///app.db"], "--database", env),
        (["verify", archive, "--database", "sqlite:///app.db"], "--database", env),
        (["restore", archive, "-o", "database=sqlite:///app.db"], "--database", env),
        (["restore", archive, "--uploads", live.uploads], "$DATABASE_URL", dict(env, DATABASE_URL="sqlite:///app.db")),
    ]
    for args, names, e in cases:
        r = archfs(*args, cwd=live.dir, env=e)
        lines = r.stderr.strip().splitlines()
        check(r.returncode == 2 and len(lines) == 1, "%s: exit %d, stderr %r" % (args, r.returncode, r.stderr))
        check(names in lines[0] and "'sqlite:///app.db'" in lines[0] and absolute + " " in lines[0],
              "%s: the message does not name the absolute form %s: %r" % (args, absolute, lines[0]))
        check("instance folder" in lines[0] and "cannot know" in lines[0], "%s: the message does not say why: %r" % (
            args, lines[0]))
        check(r.stdout == "", "%s: progress was printed: %r" % (args, r.stdout))
        check(listing(live.dir) == before, "%s: something was written" % (args,))
    # a mount with it is refused before anything is mounted
    for opts, e in ((["--database", "sqlite:///app.db"], env), (["-o", "database=sqlite:///app.db"], env),
                    (["--uploads", live.uploads], dict(env, DATABASE_URL="sqlite:///app.db"))):
        mnt = tempfile.mkdtemp(prefix="mnt-", dir=H.WORK)
        r = subprocess.run([H.ARCHFS, *opts, archive, mnt], capture_output=True, text=True, timeout=30, cwd=live.dir,
                           env=e, stdin=subprocess.DEVNULL)
        mounted = H.is_mounted(mnt)
        if mounted:
            subprocess.run(["fusermount3", "-u", mnt])
        lines = r.stderr.strip().splitlines()
        check(r.returncode == 2 and not mounted and len(lines) == 1 and absolute + " " in lines[0],
              "mount %s: exit %d, mounted %s, %r" % (opts, r.returncode, mounted, r.stderr))
        check(listing(live.dir) == before, "mount %s: something was written" % opts)
    # the absolute form it names is taken
    r = archfs("restore", archive, "--database", absolute, "--create", "--snapshot-dir", live.snapdir, cwd="/")
    check(r.returncode == 0 and rows(live.db) == rows(os.path.join(src, "db.sqlite")),
          "restore with the named absolute form: %d %s" % (r.returncode, r.stderr[-400:]))


def t_create_new_sqlite_database():
    archive, src = fixture("app")
    want = rows(os.path.join(src, "db.sqlite"))
    # the directory's other database gives the new one its mode and owner
    live = new_target()
    other = os.path.join(live.dir, "other.db")
    mkarchive.make_sqlite(other)
    os.chmod(other, 0o640)
    os.chown(other, 65534, 65534)
    r = archfs("verify", archive, *live.opts("--create"))
    check(r.returncode == 0, "verify --create: %d %s" % (r.returncode, r.stderr[-400:]))
    check("does not exist: --create" in r.stderr and not os.path.exists(live.db), "verify --create created it: %s" % r.stderr)
    r = archfs("restore", archive, *live.opts("--create"))
    check(r.returncode == 0, "restore --create: %d %s" % (r.returncode, r.stderr[-600:]))
    check(os.path.isfile(live.db), "restore --create left no database file")
    st = os.stat(live.db)
    check(stat.S_IMODE(st.st_mode) == 0o640 and (st.st_uid, st.st_gid) == (65534, 65534),
          "the new database: mode %o owner %d:%d, expected 640 65534:65534" % (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid))
    check(rows(live.db) == want and integrity(live.db) == "ok", "the new database's rows: %s" % (rows(live.db),))
    first = r.stderr.splitlines()[:6]
    check(any("target: sqlite database %s does not exist: --create" % live.db in x for x in first),
          "the first lines do not name the target: %s" % first)
    check("created the database %s: mode 0640, owner 65534:65534, as other.db" % live.db in r.stderr,
          "the creation is not reported: %s" % r.stderr[-800:])
    check("target now: sqlite database %s" % live.db in r.stderr and "revision a1b2c3d4e5f6" in r.stderr,
          "the restored target is not reported: %s" % r.stderr[-800:])

    # no other file: 0600, and through a mount (-o create), reported in .status
    live = new_target()
    with Mount(archive, "-o", "database=sqlite:///%s,create" % live.db, "--uploads", live.uploads,
               "--snapshot-dir", live.snapdir) as m:
        s = status(m)
        check(s["target"]["create"] is True and s["target"]["created"] is False, "before: %s" % s["target"])
        check(control(m, "restore") == 0, "restore refused")
        s = wait_final(m)
        check(s["state"] == "done", "restore -o create: %s %s" % (s["state"], s["error"]))
        t = s["target"]
        check(t["created"] is True and t["exists"] is True and t["path"] == live.db, ".status target: %s" % t)
        check(t["size"] == os.path.getsize(live.db) and t["revision"] == "a1b2c3d4e5f6", ".status target: %s" % t)
        check("created the database %s: mode 0600" % live.db in read(m, ".log"), ".log: " + read(m, ".log")[-800:])
    st = os.stat(live.db)
    check(stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == os.getuid(), "mode %o owner %d" % (
        stat.S_IMODE(st.st_mode), st.st_uid))
    check(rows(live.db) == want, "rows after restore -o create: %s" % (rows(live.db),))

    # cancelled in the middle of the copy, after the file was made: it goes again, and so does the
    # snapshot; the same mount then restores into a new file again, to the archive's rows
    archive, src = fixture("app", db_size=1 << 20)
    live = new_target()
    before = listing(live.dir)
    gates, env = gates_env("db-step")
    with Mount(archive, *live.opts("--create"), env=env) as m:
        check(control(m, "restore database") == 0, "restore refused")
        try:
            reached = at_gate(gates, "db-step", m)
            made = os.path.exists(live.db)
            rc = control(m, "cancel")
        finally:
            open_gate(gates, "db-step")
        s = wait_final(m)
        log = read(m, ".log")
        left = listing(live.dir)
        check(control(m, "restore database") == 0, "restore after the cancel refused: %s" % status(m)["error"])
        again = wait_final(m)
    check(again["state"] == "done" and rows(live.db) == rows(os.path.join(src, "db.sqlite")),
          "restore after the cancel: %s %s" % (again["state"], again["error"]))
    check(reached and made and rc == 0, "cancel in the copy into the new file: gate reached %s, file made %s, "
          "cancel %s, the run %s" % (reached, made, errno.errorcode.get(rc, rc), s["state"]))
    check(s["state"] == "cancelled" and s["target"]["created"] is False, "cancel: %s %s" % (s["state"], s["target"]))
    check("removed %s, created for this restore" % live.db in log, "cancel: " + log[-800:])
    check(left == before, "cancel after --create left %s" % sorted(set(left) ^ set(before)))


def t_target_reported_before_the_restore():
    archive, src = fixture("app")
    live = Live()
    size = os.path.getsize(live.db)
    r = archfs("verify", archive, *live.opts())
    check(r.returncode == 0, "verify: %s" % r.stderr[-400:])
    first = r.stderr.splitlines()[:5]
    want = "target: sqlite database %s, %.1f MB (%d bytes), Alembic revision old000" % (live.db, size / 1048576, size)
    check(any(want in x for x in first), "the first lines do not show %r: %s" % (want, first))
    with Mount(archive, *live.opts()) as m:
        check(status(m)["target"]["exists"] is None, "looked at before any command: %s" % status(m)["target"])
        check(control(m, "verify") == 0, "verify refused")
        s = wait_final(m)
        t = s["target"]
        check(s["state"] == "done" and t["path"] == live.db and t["exists"] is True and t["size"] == size and
              t["revision"] == "old000" and t["created"] is False, ".status target after verify: %s" % t)
        log = read(m, ".log").splitlines()
        check(any(want in x for x in log[:5]), ".log's first lines: %s" % log[:5])
    # a database without alembic_version says so
    con = sqlite3.connect(live.db)
    con.execute("DROP TABLE alembic_version")
    con.commit()
    con.close()
    r = archfs("verify", archive, *live.opts())
    check(r.returncode == 0 and "Alembic revision none" in r.stderr, "no alembic_version: %s" % r.stderr[-400:])


def t_interrupted_run_leftovers_removed():
    """A kill -9 during a restore leaves its staged copy (and its journal)
    beside the live database; the next restore removes them and says so,
    and a verify (which holds no lock on the target) leaves them alone."""
    archive, src = fixture("app")
    live = Live()
    d = os.path.dirname(live.db)
    left = [os.path.join(d, "." + os.path.basename(live.db) + ".archfs-stage-Ab12Cd"),
            os.path.join(d, "." + os.path.basename(live.db) + ".archfs-stage-Ab12Cd-journal")]
    other = os.path.join(d, ".other.db.archfs-stage-Zz99Zz")  # another database's: not ours to touch
    for p in left + [other]:
        with open(p, "wb") as f:
            f.write(b"half a staged database")
    s = restore_and_wait(archive, live, command="verify")
    check(s["state"] == "done" and all(os.path.exists(p) for p in left), "verify touched the leftovers")
    with Mount(archive, *live.opts()) as m:
        check(control(m, "restore") == 0, "restore refused")
        s = wait_final(m)
        log = read(m, ".log")
    check(s["state"] == "done", "restore: %s %s" % (s["state"], s["error"]))
    check(not any(os.path.exists(p) for p in left), "the leftovers of an interrupted run are still there")
    check(os.path.exists(other), "a file of another database was removed")
    check(all(("removed %s, left by an interrupted restore" % p) in log for p in left), ".log: %s" % log[-800:])
    check(db_dump(live.db) == db_dump(os.path.join(src, "db.sqlite")), "the restore did not restore")


def t_snapshot_as_private_as_the_database():
    """The pre-restore snapshot holds the whole database: it is written 0600
    whatever the umask, then takes the database file's own owner and mode,
    so no one reads it who may not read the database."""
    archive, _ = fixture("app")
    live = Live()
    os.chmod(live.db, 0o640)
    os.chown(live.db, 65534, 65534)
    old = os.umask(0o022)
    try:
        s = restore_and_wait(archive, live)
    finally:
        os.umask(old)
    check(s["state"] == "done", "restore: %s %s" % (s["state"], s["error"]))
    snaps = live.snapshots()
    check(len(snaps) == 1, "snapshots: %s" % snaps)
    st = os.stat(snaps[0])
    check(stat.S_IMODE(st.st_mode) == 0o640 and (st.st_uid, st.st_gid) == (65534, 65534),
          "snapshot: mode %o owner %d:%d, expected the database's 640 65534:65534"
          % (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid))


def wait_path(path, proc, timeout=60):
    """Waits for a file the daemon or its child writes; fails if proc exits first."""
    deadline = time.time() + timeout
    while not os.path.exists(path):
        check(proc.poll() is None, "archfs exited while waiting for %s" % path)
        check(time.time() < deadline, "%s did not appear within %d s" % (path, timeout))
        time.sleep(0.01)


def wait_exit(proc, mnt, bound=30):
    """SIGTERM must end the daemon within bound seconds, unmounted."""
    try:
        rc = proc.wait(timeout=bound)
    except subprocess.TimeoutExpired:
        raise Failure("archfs still runs %d s after SIGTERM" % bound)
    check(not H.is_mounted(mnt), "the mount is still there after SIGTERM")
    return rc


def t_sigterm_before_the_commit_cancels():
    """SIGTERM while the migrate command runs on the staged copy: the
    command's process group is killed, nothing is changed, the flag goes,
    the daemon unmounts and exits."""
    archive, _ = fixture("app")
    live = Live()
    pidfile = os.path.join(live.dir, "migrate.pid")
    before = live.state()
    m = Mount(archive, *live.opts("--migrate", "echo $$ > %s; exec sleep 600" % pidfile))
    mnt = m.__enter__()
    m.killed = True  # the test ends the daemon itself
    try:
        check(control(mnt, "restore") == 0, "restore refused")
        wait_path(pidfile, m.proc)
        child = int(open(pidfile).read())
        m.proc.send_signal(signal.SIGTERM)
        rc = wait_exit(m.proc, mnt)
        check(not os.path.exists("/proc/%d" % child) or open("/proc/%d/stat" % child).read().split()[2] == "Z",
              "the migrate command (pid %d) outlived the daemon" % child)
        check(not os.path.exists(live.flag), "the flag file was left behind")
        check(live.state() == before, "a cancelled restore changed the target")
        check(live.snapshots() == [], "a snapshot of an unchanged target was kept: %s" % live.snapshots())
        check(rc == 0, "archfs exited with %d after SIGTERM: %s" % (rc, m.stderr()[-800:]))
        check("cancelled" in m.stderr(), "the daemon did not say the restore was cancelled: %s" % m.stderr()[-800:])
    finally:
        m.__exit__(None, None, None)


def t_sigterm_after_the_commit_finishes():
    """SIGTERM once the database is swapped (the uploads step is running):
    the restore finishes, the flag goes, then the daemon unmounts and exits."""
    archive, src = fixture("app")
    live = Live()
    gates = tempfile.mkdtemp(prefix="gates-", dir=H.WORK)
    before = tree(live.uploads)
    m = Mount(archive, *live.opts(), env={"ARCHFS_TEST_GATE_DIR": gates, "ARCHFS_TEST_GATES": "uploads"})
    mnt = m.__enter__()
    m.killed = True
    try:
        check(control(mnt, "restore") == 0, "restore refused")
        wait_path(os.path.join(gates, "uploads.reached"), m.proc)
        m.proc.send_signal(signal.SIGTERM)
        open(os.path.join(gates, "uploads.go"), "w").close()
        rc = wait_exit(m.proc, mnt)
        check(rc == 0, "archfs exited with %d: %s" % (rc, m.stderr()[-800:]))
        check(not os.path.exists(live.flag), "the flag file was left behind")
        check(db_dump(live.db) == db_dump(os.path.join(src, "db.sqlite")), "the database is not the archive's")
        check_uploads_merged(live, archive, src, before)
        check("restore: restore done" in m.stderr(),
              "the daemon did not report the restore's end: %s" % m.stderr()[-800:])
    finally:
        m.__exit__(None, None, None)


# ------------------------------------ the snapshot and the live uploads (issue 11)

def secret_holders(root, token):
    """Every regular file below root (symlinks not followed), and every entry
    of such a file that is a ZIP, whose bytes hold token."""
    found = []
    for d, _, files in os.walk(root):
        for n in files:
            p = os.path.join(d, n)
            if not stat.S_ISREG(os.lstat(p).st_mode):
                continue
            with open(p, "rb") as f:
                if token in f.read():
                    found.append(p)
            if zipfile.is_zipfile(p):
                with zipfile.ZipFile(p) as z:
                    found += ["%s:%s" % (p, e) for e in z.namelist() if token in z.read(e)]
    return found


def as_app_user(code, *args):
    """Runs python code as uid/gid 65534, the application's user."""
    r = subprocess.run(["/usr/bin/python3", "-c", code, *args], capture_output=True, text=True, timeout=30,
                       preexec_fn=lambda: (os.setgroups([]), os.setgid(65534), os.setuid(65534)))
    check(r.returncode == 0, "as uid 65534: %s" % r.stderr)


SWAP_FILE = "import os, sys\nos.unlink(sys.argv[1])\nos.symlink(sys.argv[2], sys.argv[1])\n"
SWAP_DIR = "import os, sys\nos.rename(sys.argv[1], sys.argv[1] + '.old')\nos.symlink(sys.argv[2], sys.argv[1])\n"


def t_snapshot_reads_no_swapped_upload():
    """The application's user owns the uploads tree: between verify and the
    snapshot it swaps an upload the archive replaces (then, in a second run,
    the directory above it) for a symlink to a root-only file.  The
    snapshot reads live files only through an O_NOFOLLOW walk and checks
    that each is the file verify saw: the restore fails with nothing
    changed, and the secret's bytes are in no snapshot and no upload."""
    archive, _ = fixture("app")
    os.chmod(H.WORK, 0o711)
    token = b"root-only secret %d" % random.randrange(1 << 60)
    for case in ("file", "directory"):
        live = Live()
        os.chmod(live.dir, 0o711)
        for d, dirs, files in os.walk(live.uploads):
            for n in [d] + [os.path.join(d, x) for x in dirs + files]:
                os.lchown(n, 65534, 65534)
        secrets = tempfile.mkdtemp(prefix="secrets-", dir=H.WORK)  # root's, 0700
        secret = os.path.join(secrets, "f00004.dat")  # the name of the upload the archive replaces
        with open(secret, "wb") as f:
            f.write(token)
        os.chmod(secret, 0o600)
        gates = tempfile.mkdtemp(prefix="gates-", dir=H.WORK)
        db_before = db_dump(live.db)
        env = {"ARCHFS_TEST_GATE_DIR": gates, "ARCHFS_TEST_GATES": "snapshot"}
        with Mount(archive, *live.opts(), env=env) as m:
            check(control(m, "restore") == 0, "restore refused: %s" % status(m)["error"])
            wait_gate(gates, "snapshot", m)
            if case == "file":
                as_app_user(SWAP_FILE, os.path.join(live.uploads, "logos/f00004.dat"), secret)
            else:
                as_app_user(SWAP_DIR, os.path.join(live.uploads, "logos"), secrets)
            swapped = tree(live.uploads)
            open(os.path.join(gates, "snapshot.go"), "w").close()
            s = wait_final(m)
        leaked = secret_holders(live.dir, token)
        check(not leaked, "%s swapped: the secret's bytes were copied into %s" % (case, leaked))
        check(s["state"] == "failed", "%s swapped: state %s (%s)" % (case, s["state"], s["error"]))
        check("uploads/logos/f00004.dat changed since verify: refused" in (s["error"] or ""),
              "%s swapped: error %r" % (case, s["error"]))
        check(db_dump(live.db) == db_before, "%s swapped: the database changed" % case)
        check(tree(live.uploads) == swapped, "%s swapped: the uploads changed" % case)
        check(live.snapshots() == [] and not os.path.exists(live.flag), "%s swapped: a snapshot or flag is left: %s" % (
            case, live.snapshots()))
        check(open(secret, "rb").read() == token and stat.S_IMODE(os.stat(secret).st_mode) == 0o600,
              "%s swapped: the secret changed" % case)


def created_archive(path, uploads, created, mode=0o600):
    """An archive that is no snapshot of archfs's but whose manifest says
    "archfs": {"uploads": uploads, "created": created}; one new upload."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("manifest.json", json.dumps({"db_type": "sqlite", "alembic_revision": None, "app_version": None,
                                                "created_at": "2026-11-20T10:15:02",
                                                "archfs": {"uploads": uploads, "created": created}}))
        z.writestr("uploads/new.txt", b"a new upload\n")
    os.chmod(path, mode)
    return path


def t_created_list_honoured_only_from_own_snapshot():
    """"archfs": {"created": [...]} removes live uploads only when the
    archive is a snapshot archfs wrote for this target: named
    archfs_pre_restore_*.zip in its snapshot directory, written by its
    owner only, that owner root (here), recorded for this uploads root."""
    keep = b"only in the live tree\n"
    cases = [  # (where, mode, recorded uploads root, honoured)
        ("elsewhere", 0o600, None, False),
        ("snapdir", 0o664, None, False),
        ("snapdir", 0o600, "/srv/another/uploads", False),
        ("snapdir", 0o600, None, True),
    ]
    for where, mode, root, honoured in cases:
        live = Live()
        d = live.snapdir if where == "snapdir" else tempfile.mkdtemp(prefix="plain-", dir=H.WORK)
        name = "archfs_pre_restore_20990101_000000.zip" if where == "snapdir" else "backup.zip"
        archive = created_archive(os.path.join(d, name), root or live.uploads, ["keep.txt"], mode)
        s = restore_and_wait(archive, live, command="restore uploads")
        what = "%s %o %s" % (where, mode, root)
        check(s["state"] == "done", "%s: %s %s" % (what, s["state"], s["error"]))
        check(open(os.path.join(live.uploads, "new.txt"), "rb").read() == b"a new upload\n", "%s: not merged" % what)
        warned = [w for w in s["warnings"] if w.startswith("ignoring archfs.created: %s is not a snapshot archfs wrote "
                                                            "for this target" % os.path.realpath(archive))]
        if honoured:
            check(not os.path.exists(os.path.join(live.uploads, "keep.txt")) and not warned,
                  "%s: the list of archfs's own snapshot was not honoured: %s" % (what, s["warnings"]))
        else:
            path = os.path.join(live.uploads, "keep.txt")
            check(os.path.exists(path) and open(path, "rb").read() == keep,
                  "%s: keep.txt was removed on the word of an archive that is not archfs's snapshot" % what)
            check(len(warned) == 1, "%s: no warning: %s" % (what, s["warnings"]))


# ------------------------------------- text from the archive in .log (issue 11 item 13)

def t_log_lines_escape_archive_text():
    d = tempfile.mkdtemp(prefix="fx-esc-", dir=H.WORK)
    db = os.path.join(d, "db.sqlite")
    mkarchive.make_sqlite(db)
    archive = os.path.join(d, "backup.zip")
    rev = "abc\r\x1b[2Jforged\nline"
    evil = "uploads/evil\n2026-01-01T00:00:00 step: done"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("manifest.json", json.dumps({"alembic_revision": rev, "app_version": "4.2.0",
                                                "created_at": "2026-11-20T10:15:02", "db_type": "sqlite"}))
        z.write(db, "db.sqlite")
        z.writestr("uploads/ok.txt", "ok")
        link = zipfile.ZipInfo(evil)
        link.create_system = 3
        link.external_attr = 0o120777 << 16  # a symbolic link: refused by the uploads step
        z.writestr(link, "ok.txt")
    live = Live()
    mount = Mount(archive, *live.opts())
    with mount as m:
        check(control(m, "restore") == 0, "restore refused")
        s = wait_final(m)
        log = open(os.path.join(m, ".log"), "rb").read()
    check(s["state"] == "failed" and evil in s["error"], "state %s: %r" % (s["state"], s["error"]))
    lines = log.split(b"\n")[:-1]
    stamp = re.compile(rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d ")
    check(all(stamp.match(x) for x in lines) and b"\r" not in log and b"\x1b" not in log,
          ".log has a forged or raw line: %r" % [x for x in lines if not stamp.match(x)])
    check(b"uploads/evil\\n2026-01-01T00:00:00 step: done" in log, ".log does not show the name escaped: %r" % log[-1500:])
    check(b"Alembic revision abc\\r\\x1b[2Jforged\\nline" in log, ".log does not show the revision escaped: %r" % log[-1500:])
    err = mount.stderr()
    check(all(x.startswith("archfs: ") for x in err.split("\n")[:-1]) and "\r" not in err and "\x1b" not in err,
          "the daemon's stderr has a forged line: %r" % err[-1500:])
    # the command line: its log lines and its last word, the error
    r = subprocess.run([H.ARCHFS, "restore", archive, *live.opts()], capture_output=True, timeout=120)
    lines = r.stderr.split(b"\n")[:-1]
    check(r.returncode == 3 and b"\r" not in r.stderr and b"\x1b" not in r.stderr and
          all(x.startswith(b"archfs: ") or re.match(rb"^\d+ [a-z]+$", x) for x in lines),
          "archfs restore's stderr has a forged line: %r" % r.stderr[-1500:])
    check(lines[-1].startswith(b"archfs: restore failed: ") and b"evil\\n2026" in lines[-1],
          "archfs restore's last line: %r" % lines[-1])


def as_nobody(script):
    """sh -c script as uid 65534, the application's user."""
    return subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "sh", "-c", script],
                          capture_output=True, text=True, timeout=30)


def check_private(where, names, victim):
    """At a gate: what archfs stages in where (writable by everyone) is one
    private directory, 0700 and root's, holding names, each 0600; another
    user can plant no symlink in it and cannot move it away."""
    ours = [n for n in os.listdir(where) if "archfs" in n and not n.startswith("archfs_pre_restore_")]
    check(len(ours) == 1, "%s: archfs entries %s" % (where, ours))
    p = os.path.join(where, ours[0])
    st = os.lstat(p)
    check(stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o700 and st.st_uid == 0,
          "%s: a staged file straight in a directory others can write to (mode %o, uid %d)"
          % (p, st.st_mode, st.st_uid))
    check(sorted(os.listdir(p)) == sorted(names), "%s holds %s, expected %s" % (p, os.listdir(p), names))
    for n in names:
        st = os.lstat(os.path.join(p, n))
        check(stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600, "%s/%s: mode %o" % (p, n, st.st_mode))
    predictable = ["stage.db", "pagesize.db", "db"]
    predictable += [n + s for n in predictable for s in ("-journal", "-wal", "-shm")]
    r = as_nobody("; ".join("ln -s %s %s/%s 2>/dev/null && echo planted %s" % (victim, p, n, n) for n in predictable) +
                  "; mv %s %s.moved 2>/dev/null && echo moved" % (p, p))
    check(r.stdout == "", "another user changed the private directory: %s" % r.stdout)
    return p


def t_staging_private_in_a_shared_directory():
    """The database's directory and the snapshot directory are writable by
    everyone (1777): every file archfs stages there (the copy of the
    archive's database, its page-size rewrite, the snapshot's dump) lives in
    a private directory, 0700 and root's, that another user can neither
    plant a symlink in nor rename, and nothing of it is left afterwards.
    (The rewrite ran VACUUM INTO on a name it had created, closed and
    unlinked beside the database: a symlink planted in that gap made root
    write a database anywhere.)"""
    archive, src = fixture("app")
    live = Live()
    con = sqlite3.connect(live.db, isolation_level=None)  # another page size than the archive's: the rewrite runs
    for sql in ("PRAGMA journal_mode=DELETE", "PRAGMA page_size=1024", "VACUUM", "PRAGMA journal_mode=WAL"):
        con.execute(sql)
    con.close()
    os.chmod(H.WORK, 0o755)
    for d in (live.dir, live.snapdir):
        os.chmod(d, 0o1777)
    victim = os.path.join(tempfile.mkdtemp(prefix="victim-", dir=H.WORK), "written-by-root")
    os.chmod(os.path.dirname(victim), 0o777)
    gates, env = gates_env("sqlite-staged", "sqlite-rewritten", "snapshot-dumped")
    made = []
    with Mount(archive, *live.opts(), env=env) as m:
        check(control(m, "restore") == 0, "restore refused: %s" % status(m)["error"])
        try:
            for gate, where, names in (("sqlite-staged", live.dir, ["stage.db"]),
                                       ("sqlite-rewritten", live.dir, ["pagesize.db"]),
                                       ("snapshot-dumped", live.snapdir, ["db"])):
                wait_gate(gates, gate, m)
                made.append(check_private(where, names, victim))
                open_gate(gates, gate)
        finally:
            open_all_gates(gates, "sqlite-staged", "sqlite-rewritten", "snapshot-dumped")
        s = wait_final(m)
        log = read(m, ".log")
    check(s["state"] == "done", "restore: %s %s" % (s["state"], s["error"]))
    check("rewritten with the live page size 1024" in log, "the page-size rewrite did not run: " + log[-1500:])
    check(made[0] == made[1], "the rewrite went elsewhere than the staged copy: %s" % made)
    check(db_dump(live.db) == db_dump(os.path.join(src, "db.sqlite")), "the live database differs from the archive's")
    check(not os.path.lexists(victim), "root wrote through a planted symlink")
    left = [n for n in os.listdir(live.dir) + os.listdir(live.snapdir) if "archfs" in n and not n.startswith("archfs_pre_restore_")]
    check(left == [], "left behind: %s" % left)
    check(len(live.snapshots()) == 1, "snapshots: %s" % live.snapshots())


def t_sqlite_commit_outcome():
    """The copy's last step commits it: from then on a cancel is refused
    (EBUSY) and the restore goes on; when that step reports an error, the
    live file is read before anything is reported: the commit went through
    (done, snapshot kept) or it was rolled back (failed, nothing changed,
    no snapshot).  (A cancel between the last step and the committed mark
    was accepted and ignored; an error of the committing step was reported
    as a failure that changed nothing, and the snapshot deleted, whatever
    the file held.)"""
    archive, src = fixture("app")
    want = db_dump(os.path.join(src, "db.sqlite"))
    live = Live()
    gates, env = gates_env("sqlite-commit")
    with Mount(archive, *live.opts(), env=env) as m:
        check(control(m, "restore") == 0, "restore refused: %s" % status(m)["error"])
        try:
            wait_gate(gates, "sqlite-commit", m)
            rc = control(m, "cancel")
        finally:
            open_gate(gates, "sqlite-commit")
        s = wait_final(m)
    check(rc == errno.EBUSY, "a cancel after the last copy step: %s, expected EBUSY" % errno.errorcode.get(rc, rc))
    check(s["state"] == "done", "cancel after the commit: %s %s" % (s["state"], s["error"]))
    check(db_dump(live.db) == want and len(live.snapshots()) == 1, "cancel after the commit: database or snapshot")

    # the committing step reports an error, but the file holds the copy
    live = Live()
    s = restore_and_wait(archive, live, env=gates_env(faults=("sqlite-commit-error",))[1])
    check(s["state"] == "done", "error after the commit: %s %s" % (s["state"], s["error"]))
    check(any("the commit went through" in w for w in s["warnings"]), "warnings: %s" % s["warnings"])
    check(db_dump(live.db) == want, "error after the commit: the database is not the archive's")
    check(len(live.snapshots()) == 1 and s["snapshot"], "error after the commit: the snapshot was not kept")

    # the committing step fails before it writes: rolled back
    live = Live()
    before = live.state()
    s = restore_and_wait(archive, live, env=gates_env(faults=("sqlite-commit-refused",))[1])
    check(s["state"] == "failed" and "rolled back" in s["error"], "failed commit: %s %r" % (s["state"], s["error"]))
    check(live.state() == before, "failed commit: the target changed")
    check(live.snapshots() == [] and s["snapshot"] is None, "failed commit: a snapshot of nothing was kept")


def t_log_opens_copy_nothing():
    """200 files open on .log while a restore waits in its migrate command,
    with nearly a MiB of log: the daemon does not grow by a copy per open
    (it used to: 200 MiB), and every one of them reads the log's bytes."""
    archive, _ = fixture("app")
    live = Live()
    fifo = os.path.join(live.dir, "go")
    os.mkfifo(fifo)
    lines = 1000  # of about 940 bytes in the log: under its 1 MiB cap, nothing dropped
    migrate = ("awk 'BEGIN { for (i = 0; i < %d; i++) { printf \"line %%06d \", i; "
               "for (j = 0; j < 90; j++) printf \"0123456789\"; print \"\" } }'; echo READY; read x < %s"
               % (lines, fifo))
    mount = Mount(archive, *live.opts("--migrate", migrate))
    fds = []
    with mount as m:
        try:
            check(control(m, "restore") == 0, "restore refused: %s" % status(m)["error"])
            deadline = time.time() + 120
            while "migrate: READY\n" not in read(m, ".log"):
                check(status(m)["state"] not in FINAL and time.time() < deadline,
                      "the migrate command did not get to READY: " + read(m, ".log")[-1000:])
                time.sleep(0.05)
            log = read(m, ".log").encode()
            check(len(log) > 900000 and log.count(b"migrate: line ") == lines, "the log holds %d bytes" % len(log))
            base = H.vm_rss_kib(mount.proc.pid)
            for _ in range(200):
                fds.append(os.open(os.path.join(m, ".log"), os.O_RDONLY))
            grown = H.vm_rss_kib(mount.proc.pid) - base
            check(grown < 50 << 10, "200 opens of a %d-byte .log grew the daemon by %d KiB" % (len(log), grown))
            for i, fd in enumerate(fds):
                got = b"".join(iter(lambda: os.read(fd, 65536), b""))
                check(got == log, "open %d of .log read %d bytes, not the log's %d" % (i, len(got), len(log)))
        finally:
            for fd in fds:
                os.close(fd)
            try:  # the migrate command waits for a line (no reader: it never got there)
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
                os.write(fd, b"go\n")
                os.close(fd)
            except OSError:
                pass
            s = wait_final(m)
            H.wait_requests_done(m)
        check(s["state"] == "done", "the restore: %s (%s)" % (s["state"], s["error"]))
        check("migrate: done" in read(m, ".log"), "the log after the restore lacks its end")
