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


def t_dirmode_removed_archive_cached_paths_go():
    """Paths of an archive whose attributes the kernel holds from a listing
    alone (nothing read, so nothing else refreshes them) answer ENOENT once
    a listing has seen the archive leave; a replaced archive shows its new
    file's sizes, not the old ones."""
    d = backups_dir()
    old = os.path.join(d, OLD + ".zip")
    new = os.path.join(d, NEW + ".zip")
    with Mount(d) as m:
        names = os.listdir(os.path.join(m, OLD))
        sizes = {n: os.stat(os.path.join(m, OLD, n)).st_size for n in names}  # cached for a day
        check("manifest.json" in sizes, "manifest.json not listed: %s" % names)
        os.unlink(old)
        check(OLD not in os.listdir(m), "a removed archive is still listed")
        for n in names:
            check(errno_of(os.stat, os.path.join(m, OLD, n)) == errno.ENOENT, "%s of a removed archive resolves" % n)
        # replaced under the same name: the listing's attributes are the new file's
        before = {n: os.stat(os.path.join(m, NEW, n)).st_size for n in os.listdir(os.path.join(m, NEW))}
        a, src = fixture("app", db_size=3 << 20)
        tmp = new + ".tmp"
        shutil.copy(a, tmp)
        os.rename(tmp, new)
        os.listdir(m)
        with zipfile.ZipFile(a) as zf:
            top = {zi.filename: zi for zi in zf.infolist() if "/" not in zi.filename.rstrip("/") and not zi.is_dir()}
        changed = [n for n in top if n in before and before[n] != top[n].file_size]
        check(changed, "the test needs a file whose size the replacement changes: %s / %s" % (before, top))
        for n, zi in top.items():
            got = os.stat(os.path.join(m, NEW, n)).st_size
            check(got == zi.file_size, "%s of the replaced archive: size %d, the new file's is %d (the old %s)"
                  % (n, got, zi.file_size, before.get(n)))
            with open(os.path.join(m, NEW, n), "rb") as f, zipfile.ZipFile(a) as zf:
                check(f.read() == zf.read(zi), "%s of the replaced archive: old bytes" % n)


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


# ------------------------------------------- years of daily backups (issue 17)
# (imported here, not at the top: this part of the module is appended to)
import json  # noqa: E402
import resource  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402

NOFILE = 256    # the daemon's limit of open files in these tests (soft and hard)
ARCHIVES = 400  # more archives than that
_many = {}


def daily_name(i):
    t = time.gmtime(1704067200 + i * 86400 + 3 * 3600 + 17 * 60)  # 2024-01-01 03:17 + i days
    return time.strftime("timetracker_backup_%Y%m%d_%H%M%S", t)


def tiny_archive(path, name, version=1):
    """A small archive: a one-line manifest.json naming it (and its version)
    and an upload whose bytes and size depend on both."""
    body = ("%s v%d\n" % (name, version)).encode() * (200 * version)
    with zipfile.ZipFile(path + ".tmp", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("manifest.json", manifest_line(name, version))
        z.writestr("uploads/data.txt", body)
    os.replace(path + ".tmp", path)  # a new file, as a backup tool writes it
    return body


def manifest_line(name, version=1):
    return json.dumps({"db_type": "sqlite", "archive": name, "version": version}) + "\n"


def many_archives(n=ARCHIVES):
    """A backups directory of n tiny daily archives, generated once per run
    (read-only: tests that change it link its files into a directory of
    their own)."""
    if n not in _many:
        d = tempfile.mkdtemp(prefix="many-", dir=H.WORK)
        for i in range(n):
            tiny_archive(os.path.join(d, daily_name(i) + ".zip"), daily_name(i))
        _many[n] = d
    return _many[n]


def linked_copy(src):
    d = tempfile.mkdtemp(prefix="many-", dir=H.WORK)
    for f in os.listdir(src):
        os.link(os.path.join(src, f), os.path.join(d, f))
    return d


class LimitedMount(Mount):
    """A Mount whose daemon starts with RLIMIT_NOFILE at nofile, soft and
    hard (Mount.__enter__ with a preexec_fn)."""

    def __init__(self, archive, *opts, nofile=NOFILE, env=None):
        super().__init__(archive, *opts, env=env)
        self.nofile = nofile

    def __enter__(self):
        n = self.nofile
        self.err = tempfile.TemporaryFile(dir=H.WORK)
        self.proc = subprocess.Popen([H.ARCHFS, "-f", *self.opts, self.archive, self.mnt], stdin=subprocess.DEVNULL,
                                     stderr=self.err, env=self.env,
                                     preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (n, n)))
        deadline = time.time() + 20
        while not H.is_mounted(self.mnt):
            if self.proc.poll() is not None:
                raise H.Failure("archfs exited with %d before mounting: %s" % (self.proc.returncode, self.stderr()))
            if time.time() > deadline:
                self.proc.kill()
                raise H.Failure("mount did not appear within 20 s")
            time.sleep(0.02)
        return self.mnt


def walk(m, archives="*"):
    """find MNT -name manifest.json -exec cat {} +: the manifests' lines, sorted
    (of the archives whose names match the pattern archives; the walk goes
    through every one)."""
    r = subprocess.run(["find", m, "-path", "%s/%s/manifest.json" % (m, archives), "-exec", "cat", "{}", "+"],
                       capture_output=True, timeout=600)
    check(r.returncode == 0 and not r.stderr, "the walk failed (%d): %s" % (r.returncode, r.stderr[-1000:]))
    return sorted(r.stdout.decode().splitlines(keepends=True))


def fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def zips_open(pid):
    return [p for p in open_paths(pid) if ".zip" in p]


def check_bounded(mount, what):
    """The daemon is alive, holds at most the default LRU's archives open,
    and few descriptors besides."""
    pid = mount.proc.pid
    check(mount.proc.poll() is None and H.is_mounted(mount.mnt), "the daemon died %s: %s"
          % (what, mount.stderr()[-2000:]))
    check(len(zips_open(pid)) <= 64, "%d archives open %s" % (len(zips_open(pid)), what))
    check(fds(pid) <= 64 + 48, "%d descriptors open %s" % (fds(pid), what))


def t_dirmode_walk_past_descriptor_limit():
    """400 archives, a daemon limited to 256 open files: every manifest is
    read in one walk and in a second, the daemon lives, its descriptors and
    memory stay bounded, and nothing is logged about descriptors.  (Each
    archive opened stayed open: past the limit lookups answered EIO, and the
    daemon aborted in pthread_cancel.)"""
    d = many_archives()
    expected = sorted(manifest_line(daily_name(i)) for i in range(ARCHIVES))
    mount = LimitedMount(d)
    with mount as m:
        with open("/proc/%d/limits" % mount.proc.pid) as f:
            check(any(line.startswith("Max open files") and line.split()[3:5] == [str(NOFILE)] * 2 for line in f),
                  "the daemon does not run with the test's limit of open files")
        check(walk(m) == expected, "the first walk read wrong manifests")
        check_bounded(mount, "after the first walk")
        rss1 = H.vm_rss_kib(mount.proc.pid)
        check(walk(m) == expected, "the second walk read wrong manifests")
        check_bounded(mount, "after the second walk")
        rss2 = H.vm_rss_kib(mount.proc.pid)
        check(rss2 <= rss1 + 8 * 1024, "memory grew from %d to %d KiB between two walks" % (rss1, rss2))
        check(H.sanitized() or rss2 < 32 * 1024, "%d KiB resident after two walks of 400 archives" % rss2)
        check(os.readlink(os.path.join(m, "latest")) == daily_name(ARCHIVES - 1), "latest is not the newest")
        newest = daily_name(ARCHIVES)
        tiny_archive(os.path.join(d, newest + ".zip"), newest)
        try:
            check(os.readlink(os.path.join(m, "latest")) == newest, "latest does not follow a new archive")
            with open(os.path.join(m, "latest", "manifest.json")) as f:
                check(f.read() == manifest_line(newest), "latest/manifest.json is not the newest's")
        finally:
            os.unlink(os.path.join(d, newest + ".zip"))
        check("open files" not in mount.stderr(), "descriptors ran short: " + mount.stderr()[-1000:])


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def t_dirmode_archive_replaced_between_walks():
    """Two archives replaced under the same name between two walks (one the
    LRU had closed, one still open): the second walk and reads of their
    files show the new archives' bytes, whole, without a remount."""
    d = linked_copy(many_archives())
    early, late = daily_name(3), daily_name(ARCHIVES - 2)  # closed by the LRU after a walk / still open
    mount = LimitedMount(d)
    with mount as m:
        old = {n: read_bytes(os.path.join(m, n, "uploads/data.txt")) for n in (early, late)}
        expected = walk(m)
        check(any(late in p for p in zips_open(mount.proc.pid)), "the last archives walked are not open")
        check(not any(early in p for p in zips_open(mount.proc.pid)), "the first archives walked are still open")
        new = {n: tiny_archive(os.path.join(d, n + ".zip"), n, version=2) for n in (early, late)}
        for n in (early, late):
            check(new[n] != old[n] and len(new[n]) > len(old[n]), "the test's new archive is not different")
            expected[expected.index(manifest_line(n))] = manifest_line(n, 2)
        got = walk(m)
        check(got == sorted(expected), "the second walk did not read the replaced archives' manifests: %s"
              % sorted(set(got) ^ set(expected)))
        for n in (early, late):
            check(read_bytes(os.path.join(m, n, "uploads/data.txt")) == new[n], "%s: mixed or old bytes" % n)
            check(read_bytes(os.path.join(m, n, "manifest.json")) == manifest_line(n, 2).encode(), "%s: manifest" % n)
            check(os.stat(os.path.join(m, n, "uploads/data.txt")).st_size == len(new[n]), "%s: old size" % n)
        check(H.is_mounted(m), "the mount is gone")


def t_dirmode_restore_while_walking_all_archives():
    """A restore from one archive (stopped at its database step's gate)
    while a walk opens every other archive, past the LRU's bound and the
    daemon's limit of open files: the restoring archive stays open, the
    walk reads everything, and the restore ends with the archive's rows."""
    a, src = fixture("app")
    d = linked_copy(many_archives())
    name = "timetracker_backup_20231231_235959"  # the oldest: the LRU's first choice, were it idle
    shutil.copy(a, os.path.join(d, name + ".zip"))
    live = R.Live()
    gates, env = R.gates_env("db-step")
    mount = LimitedMount(d, *live.opts(), env=env)
    with mount as m:
        arch = os.path.join(m, name)
        check(R.control(arch, "restore") == 0, "restore refused: %s" % R.status(arch)["error"])
        try:
            R.wait_gate(gates, "db-step", arch)
            expected = sorted(manifest_line(daily_name(i)) for i in range(ARCHIVES))
            got = walk(m, "timetracker_backup_202[45]*")
            check(len(zips_open(mount.proc.pid)) <= 64 + 1, "%d archives open" % len(zips_open(mount.proc.pid)))
            check(holds(mount.proc.pid, os.path.join(d, name + ".zip")), "the restoring archive was closed")
            walk(m)
        finally:
            R.open_gate(gates, "db-step")
        s = R.wait_final(arch)
        check(got == expected, "the walk during the restore read wrong manifests")
        check(s["state"] == "done", "restore: %s (%s)" % (s["state"], s["error"]))
        check(R.status(arch)["state"] == "done", "the finished restore's status was lost")
        check_bounded(mount, "after the restore")
    check(R.db_dump(live.db) == R.db_dump(os.path.join(src, "db.sqlite")), "the database is not the archive's")


def lowest_free_fd(pid):
    used = {int(n) for n in os.listdir("/proc/%d/fd" % pid)}
    return next(i for i in range(len(used) + 1) if i not in used)


def t_dirmode_descriptors_exhausted():
    """More archives held open (a file open in each) than the daemon's
    descriptors allow: the lookups past them answer EMFILE, logged once, and
    work again once files are closed.  Then with not one descriptor left
    (its limit lowered under it), the daemon still answers and stops
    cleanly on SIGTERM: libfuse's pthread_cancel used to abort it, unable to
    load libgcc_s.so.1."""
    d = many_archives()
    mount = LimitedMount(d)
    held = []
    with mount as m:
        try:
            for i in range(NOFILE):
                try:
                    held.append(os.open(os.path.join(m, daily_name(i), "manifest.json"), os.O_RDONLY))
                except OSError as e:
                    check(e.errno == errno.EMFILE, "archive %d: %s, not EMFILE" % (i, e))
                    break
            check(NOFILE // 4 < len(held) < NOFILE, "%d archives held open, with %d descriptors" % (len(held), NOFILE))
            check(errno_of(os.stat, os.path.join(m, daily_name(len(held) + 1), "manifest.json")) == errno.EMFILE,
                  "a second lookup past the descriptors: not EMFILE")
            check(mount.stderr().count("too many open files") == 1, "not logged once: " + mount.stderr()[-1000:])
            check(os.read(held[7], 4096) == manifest_line(daily_name(7)).encode(), "a held file reads wrong")
            os.close(held.pop())
            H.wait_requests_done(m)  # the release has reached the daemon
            with open(os.path.join(m, daily_name(NOFILE), "manifest.json")) as f:
                check(f.read() == manifest_line(daily_name(NOFILE)), "a lookup after a file was closed fails")
            H.wait_requests_done(m)  # its archive is closed: no idle one is left to close for a descriptor
            resource.prlimit(mount.proc.pid, resource.RLIMIT_NOFILE, (lowest_free_fd(mount.proc.pid),) * 2)
            e = errno_of(os.stat, os.path.join(m, daily_name(NOFILE + 1), "manifest.json"))
            check(e == errno.EMFILE, "a lookup with no descriptor left: %s, not EMFILE" % os.strerror(e))
            check(len(os.listdir(m)) == ARCHIVES + 1, "the top does not list with no descriptor left")
            check(os.pread(held[0], 4096, 0) == manifest_line(daily_name(0)).encode(), "a held file reads wrong")
            mount.proc.send_signal(signal.SIGTERM)
            rc = mount.proc.wait(timeout=30)
            check(rc == 0, "archfs exited with %d on SIGTERM with no descriptor left: %s" % (rc, mount.stderr()[-500:]))
        finally:
            for fd in held:
                os.close(fd)
