# SPDX-License-Identifier: MIT
"""Integration tests of directory mode: a backups directory mounted as one
directory per archive, `latest`, archives that come and go while mounted,
and a restore from one archive of it."""
import errno
import os
import shutil
import sqlite3
import tempfile
import time
import zipfile

import harness as H
import restore_tests as R
from harness import Mount, check, fixture

OLD = "timetracker_backup_20261120_101502"
NEW = "timetracker_backup_20261121_090000"
LATER = "timetracker_backup_20261122_080000"


def backups_dir():
    """A backups directory: two archives named by the application (the newer
    one with the older mtime), a file that is not a ZIP, and a text file."""
    d = tempfile.mkdtemp(prefix="backups-", dir=H.WORK)
    a, _ = fixture("app")
    b, _ = fixture("stored")
    shutil.copy(a, os.path.join(d, OLD + ".zip"))
    shutil.copy(b, os.path.join(d, NEW + ".zip"))
    os.utime(os.path.join(d, NEW + ".zip"), (1500000000, 1500000000))
    with open(os.path.join(d, "broken.zip"), "wb") as f:
        f.write(b"not a zip at all")
    with open(os.path.join(d, "notes.txt"), "w") as f:
        f.write("not an archive\n")
    return d


def errno_of(fn, *args):
    try:
        fn(*args)
    except OSError as e:
        return e.errno
    return 0


def t_dirmode_lists_archives_and_latest():
    a, src = fixture("app")
    b, srcb = fixture("stored")
    d = backups_dir()
    with Mount(d) as m:
        check(sorted(os.listdir(m)) == sorted(["broken", "latest", OLD, NEW]), "top listing: %s" % os.listdir(m))
        check(os.readlink(os.path.join(m, "latest")) == NEW, "latest -> %s, expected %s (by the name's timestamp)"
              % (os.readlink(os.path.join(m, "latest")), NEW))
        st = os.lstat(os.path.join(m, NEW))
        check(int(st.st_mtime) == 1500000000 and st.st_mode & 0o777 == 0o755, "archive dir: mtime %d mode %o"
              % (st.st_mtime, st.st_mode))
        H.compare_tree(os.path.join(m, OLD), a, src)
        H.compare_tree(os.path.join(m, "latest") + "/", b, srcb)
        check(errno_of(os.listdir, os.path.join(m, "broken")) == errno.EIO, "a broken archive lists without EIO")
        check(os.listdir(os.path.join(m, OLD, "uploads")), "the broken archive hides the others")
        for what, fn, args in (("mkdir", os.mkdir, (os.path.join(m, "x"),)),
                               ("rmdir", os.rmdir, (os.path.join(m, OLD),)),
                               ("rename", os.rename, (os.path.join(m, OLD), os.path.join(m, "y"))),
                               ("unlink", os.unlink, (os.path.join(m, "latest"),)),
                               ("symlink", os.symlink, (OLD, os.path.join(m, "z")))):
            check(errno_of(fn, *args) == errno.EROFS, "%s at the top: not EROFS" % what)
        check(os.statvfs(m).f_files == 3, "statfs at the top: %d archives" % os.statvfs(m).f_files)
        check(not os.path.exists(os.path.join(d, "x")), "the backups directory changed")


def t_dirmode_archives_come_and_go():
    a, src = fixture("app")
    d = backups_dir()
    with Mount(d) as m:
        later = os.path.join(m, LATER)
        check(not os.path.exists(later), "an archive not there yet exists")  # a lookup that fails first
        shutil.copy(a, os.path.join(d, LATER + ".zip"))
        check(os.path.isdir(later), "an archive added while mounted does not appear")
        check(LATER in os.listdir(m), "an archive added while mounted is not listed")
        check(os.readlink(os.path.join(m, "latest")) == LATER, "latest does not follow the newest archive")
        check(H.sha(os.path.join(later, "db.sqlite")) == H.sha(os.path.join(src, "db.sqlite")),
              "the added archive's db.sqlite differs from its source")
        os.unlink(os.path.join(d, OLD + ".zip"))
        check(OLD not in os.listdir(m), "a removed archive is still listed")
        os.unlink(os.path.join(d, NEW + ".zip"))
        os.unlink(os.path.join(d, LATER + ".zip"))
        os.unlink(os.path.join(d, "broken.zip"))
        check(os.listdir(m) == [], "an emptied directory lists %s" % os.listdir(m))
    empty = tempfile.mkdtemp(prefix="backups-", dir=H.WORK)
    with Mount(empty) as m:
        check(os.listdir(m) == [], "an empty backups directory lists %s" % os.listdir(m))


def t_dirmode_restore_from_one_archive():
    a, src = fixture("app")
    d = backups_dir()
    live = R.Live()
    before = live.state()
    with Mount(d, *live.opts()) as m:
        old = os.path.join(m, OLD)
        check(R.status(old)["archive"] == os.path.join(d, OLD + ".zip"), ".status of the wrong archive")
        check(R.control(os.path.join(m, "broken"), "restore") == errno.EIO, "restore from a broken archive")
        check(R.control(old, "restore") == 0, "restore refused: %s" % R.status(old)["error"])
        s = R.wait_final(old)
        check(s["state"] == "done", "restore from %s: %s (%s)" % (OLD, s["state"], s["error"]))
        check(R.status(os.path.join(m, NEW))["state"] == "idle", "the other archive's job moved")
    check(R.db_dump(live.db) == R.db_dump(os.path.join(src, "db.sqlite")), "the database is not the archive's")
    R.check_uploads_merged(live, a, src, before[1])  # bytes, modes without world-write, mtimes, nothing else


def locked_out(db):
    """True when another process cannot begin a write transaction on db now."""
    con = sqlite3.connect(db, timeout=0, isolation_level=None)
    try:
        con.execute("BEGIN IMMEDIATE")
        con.execute("INSERT INTO users (username, role) VALUES ('intruder', 'user')")
        con.execute("COMMIT")
        return False
    except sqlite3.OperationalError as e:
        check("locked" in str(e), "the other writer failed otherwise: %s" % e)
        return True
    finally:
        con.close()


def t_dirmode_refused_restore_keeps_the_sqlite_locks():
    """Directory mode, one daemon: while one archive's restore holds the live
    database's write lock (stopped at the gate after its first copy step), a
    restore sent to another archive is refused without the database file
    being opened: another writer stays locked out, the restore then
    succeeds and the database holds the archive's rows.  (archfs opened the
    database to flock it; the refusal's close() dropped every POSIX lock the
    process held on it, SQLite's included, and the writer got in.)"""
    a, src = fixture("app", db_size=1 << 20)
    b, _ = fixture("stored", db_size=1 << 20)
    d = tempfile.mkdtemp(prefix="backups-", dir=H.WORK)
    shutil.copy(a, os.path.join(d, OLD + ".zip"))
    shutil.copy(b, os.path.join(d, NEW + ".zip"))
    live = R.Live()
    con = sqlite3.connect(live.db)
    con.execute("PRAGMA journal_mode=DELETE")  # the write lock is the file's own POSIX lock
    con.close()
    gates, env = R.gates_env("db-step")
    with Mount(d, *live.opts(), env=env) as m:
        old, new = os.path.join(m, OLD), os.path.join(m, NEW)
        check(R.control(old, "restore") == 0, "restore refused: %s" % R.status(old)["error"])
        try:
            R.wait_gate(gates, "db-step", old)
            check(locked_out(live.db), "another writer got in during the copy, before any refusal")
            check(R.control(new, "restore") == errno.EBUSY, "a second restore into the same target: not EBUSY")
            check("another restore" in (R.status(new)["error"] or ""), "refusal: %r" % R.status(new)["error"])
            still = locked_out(live.db)
        finally:
            R.open_gate(gates, "db-step")
        s = R.wait_final(old)
        check(R.status(new)["state"] == "idle", "the refused archive's job moved")
    check(still, "after the refused restore another writer committed in the middle of the copy")
    check(s["state"] == "done", "restore: %s (%s)" % (s["state"], s["error"]))
    check(R.db_dump(live.db) == R.db_dump(os.path.join(src, "db.sqlite")), "the database is not the archive's")
    check(R.integrity(live.db) == "ok", "integrity_check after the restore")


def t_dirmode_entry_past_eof_spares_the_others():
    """One archive with an entry past the end of its file: reading it is EIO,
    and every other archive of the mount still reads (the daemon used to die,
    taking all of them)."""
    a, src = fixture("app")
    bad, _ = fixture("zip64-offset-past-eof")
    d = tempfile.mkdtemp(prefix="backups-", dir=H.WORK)
    shutil.copy(a, os.path.join(d, OLD + ".zip"))
    shutil.copy(bad, os.path.join(d, NEW + ".zip"))
    with Mount(d) as m:
        for _ in range(2):
            check(errno_of(lambda p: open(p, "rb").read(), os.path.join(m, NEW, "uploads/damaged.txt")) == errno.EIO,
                  "an entry past the end of its file reads without EIO")
        check(H.is_mounted(m), "the mount is gone")
        H.compare_tree(os.path.join(m, OLD), a, src)
        with zipfile.ZipFile(bad) as zf, open(os.path.join(m, NEW, "db.sqlite"), "rb") as f:
            check(f.read() == zf.read("db.sqlite"), "the damaged archive's other entries must still read")


def open_paths(pid):
    """The files the process has open, as /proc shows their links."""
    out = []
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            out.append(os.readlink("/proc/%d/fd/%s" % (pid, fd)))
        except OSError:
            pass  # closed meanwhile
    return out


def holds(pid, path):
    return any(p == path or p == path + " (deleted)" for p in open_paths(pid))


def t_dirmode_removed_archive_is_closed():
    """An archive removed from the directory is closed at the next listing
    once nothing uses it, which frees a rotated backup's space; it used to
    stay open until the unmount."""
    a, src = fixture("app")
    d = backups_dir()
    old = os.path.join(d, OLD + ".zip")
    mount = Mount(d)
    with mount as m:
        with open(os.path.join(m, OLD, "manifest.json"), "rb") as f, zipfile.ZipFile(a) as zf:
            check(f.read() == zf.read("manifest.json"), "manifest.json differs")
        check(holds(mount.proc.pid, old), "the daemon does not have the archive open after reading it")
        H.wait_requests_done(m)  # the file's release has reached the daemon
        os.unlink(old)
        check(OLD not in os.listdir(m), "a removed archive is still listed")
        check(not holds(mount.proc.pid, old), "the daemon still has the removed archive open: %s"
              % [p for p in open_paths(mount.proc.pid) if OLD in p])
        check(errno_of(os.stat, os.path.join(m, OLD, "manifest.json")) == errno.ENOENT, "the removed archive resolves")
        H.compare_tree(os.path.join(m, NEW), *fixture("stored"))  # the others still read


def t_dirmode_removed_archive_open_file_reads_on():
    """A file open in an archive that is removed keeps reading it (every
    byte right); the archive closes once that file is released."""
    a, src = fixture("app", db_size=3 << 20)
    d = tempfile.mkdtemp(prefix="backups-", dir=H.WORK)
    old = os.path.join(d, OLD + ".zip")
    shutil.copy(a, old)
    data = open(os.path.join(src, "db.sqlite"), "rb").read()
    mount = Mount(d)
    with mount as m:
        fd = os.open(os.path.join(m, OLD, "db.sqlite"), os.O_RDONLY)
        try:
            check(os.pread(fd, 65536, 0) == data[:65536], "the first read differs")
            os.unlink(old)
            check(os.listdir(m) == [], "a removed archive is still listed: %s" % os.listdir(m))
            check(holds(mount.proc.pid, old), "the archive was closed under an open file")
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)  # the reads go to the daemon
            got = b"".join(iter(lambda: os.read(fd, 1 << 20), b""))
            check(got == data, "the open file of a removed archive reads wrong bytes")
            check(os.pread(fd, 4096, len(data) // 2) == data[len(data) // 2:len(data) // 2 + 4096], "a read back differs")
        finally:
            os.close(fd)
        H.wait_requests_done(m)
        check(not holds(mount.proc.pid, old), "the removed archive stayed open after its last file was released")


def t_dirmode_removed_archive_restore_runs_on():
    """A restore running from an archive that is removed goes on to its end
    (the archive stays open meanwhile) and the archive closes after it."""
    a, src = fixture("app")
    d = tempfile.mkdtemp(prefix="backups-", dir=H.WORK)
    old = os.path.join(d, OLD + ".zip")
    shutil.copy(a, old)
    live = R.Live()
    fifo = os.path.join(live.dir, "go")
    os.mkfifo(fifo)
    mount = Mount(d, *live.opts("--migrate", "echo migrating; read x < " + fifo))
    with mount as m:
        arch = os.path.join(m, OLD)
        check(R.control(arch, "restore") == 0, "restore refused: %s" % R.status(arch)["error"])
        deadline = time.time() + 120
        while "migrate: migrating" not in R.read(arch, ".log"):
            check(time.time() < deadline and R.status(arch)["state"] not in R.FINAL,
                  "the restore did not reach its migrate command: " + R.read(arch, ".log")[-1000:])
            time.sleep(0.05)
        H.wait_requests_done(m)
        os.unlink(old)
        check(os.listdir(m) == [], "a removed archive is still listed: %s" % os.listdir(m))
        check(holds(mount.proc.pid, old), "the archive was closed under its running restore")
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.write(fd, b"go\n")
        os.close(fd)
        deadline = time.time() + 120
        while holds(mount.proc.pid, old):  # each listing closes it once the restore has ended
            check(time.time() < deadline, "the removed archive stayed open after its restore")
            os.listdir(m)
            time.sleep(0.05)
        check(not os.path.exists(live.flag), "the restore left its flag file")
    check(R.db_dump(live.db) == R.db_dump(os.path.join(src, "db.sqlite")), "the restore did not finish its work")
