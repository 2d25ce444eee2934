# SPDX-License-Identifier: MIT
"""What every integration test uses: real mounts, fixtures, checks.

run.py sets ARCHFS (the binary under test) and WORK (a scratch directory)
before any test runs.
"""
import hashlib
import os
import stat
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures"))
import mkarchive  # noqa: E402

VFILES = [".control", ".log", ".progress", ".restore_in_progress", ".status"]

ARCHFS = None
WORK = None
SUSPICIOUS = ("AddressSanitizer", "runtime error:", "LeakSanitizer")
_fixtures = {}


class Failure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


def fixture(variant, **kw):
    """(archive path, source dir) of a variant, generated once per run."""
    key = (variant, tuple(sorted(kw.items())))
    if key not in _fixtures:
        d = tempfile.mkdtemp(prefix="fx-%s-" % variant, dir=WORK)
        out, src = os.path.join(d, "backup.zip"), os.path.join(d, "src")
        mkarchive.make_archive(out, src, variant, **kw)
        _fixtures[key] = (out, src)
    return _fixtures[key]


def is_mounted(mnt):
    mnt = os.path.realpath(mnt)
    with open("/proc/self/mounts") as f:
        return any(line.split()[1] == mnt for line in f)


class Mount:
    """archfs -f ARCHIVE MNT in the background; always unmounted on exit."""

    def __init__(self, archive, *opts, env=None):
        self.archive, self.opts = archive, list(opts)
        self.env = dict(os.environ, **env) if env else None
        self.killed = False  # set by a test that kill -9s the daemon
        self.mnt = tempfile.mkdtemp(prefix="mnt-", dir=WORK)

    def __enter__(self):
        self.err = tempfile.TemporaryFile(dir=WORK)
        self.proc = subprocess.Popen([ARCHFS, "-f", *self.opts, self.archive, self.mnt],
                                     stdin=subprocess.DEVNULL, stderr=self.err, env=self.env)
        deadline = time.time() + 20
        while not is_mounted(self.mnt):
            if self.proc.poll() is not None:
                raise Failure("archfs exited with %d before mounting: %s" % (self.proc.returncode, self.stderr()))
            if time.time() > deadline:
                self.proc.kill()
                raise Failure("mount did not appear within 20 s")
            time.sleep(0.02)
        return self.mnt

    def stderr(self):
        self.err.seek(0)
        return self.err.read().decode(errors="replace")

    def __exit__(self, exc_type, exc, tb):
        subprocess.run(["fusermount3", "-u", self.mnt], stderr=subprocess.DEVNULL)
        try:
            rc = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            subprocess.run(["umount", "-l", self.mnt], stderr=subprocess.DEVNULL)
            self.proc.kill()
            self.proc.wait()
            raise Failure("archfs did not exit after unmount")
        if exc_type is not None and rc != 0 and not self.killed:
            raise Failure("archfs died (exit %d) during the test (%s): %s" % (rc, exc, self.stderr()[-2000:]))
        if exc_type is None and not self.killed:
            err = self.stderr()
            check(rc == 0, "archfs exited with %d after unmount: %s" % (rc, err))
            check(not any(s in err for s in SUSPICIOUS), "sanitizer report: " + err[:2000])
        return False


def vm_rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def sanitized():
    """An ASan build: its allocator adds redzones and per-thread caches."""
    with open(ARCHFS, "rb") as f:
        return b"__asan_init" in f.read()


def read_text(path):
    with open(path) as f:
        return f.read()


def wait_requests_done(mnt):
    """Waits until mnt's FUSE connection has no request left (fusectl's
    `waiting`, mounted for the while if it is not): a closed file's release
    goes to the daemon in the background, and an unmount drops those still
    queued (the daemon then exits with ECONNABORTED)."""
    ctl = "/sys/fs/fuse/connections"
    mounted = not os.path.ismount(ctl) and subprocess.run(["mount", "-t", "fusectl", "fusectl", ctl]).returncode == 0
    try:
        waiting = os.path.join(ctl, str(os.minor(os.stat(mnt).st_dev)), "waiting")
        deadline = time.time() + 60
        while int(read_text(waiting)) > 0:
            check(time.time() < deadline, "the daemon did not answer its requests within 60 s")
            time.sleep(0.01)
    finally:
        if mounted:
            subprocess.run(["umount", ctl])


def sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def parent(path):
    return path.rsplit("/", 1)[0] if "/" in path else ""


def compare_tree(mnt, archive, src):
    """Every path: type, mode, size, mtime, owner, listing and bytes as expected."""
    exp = mkarchive.expected(archive)
    for path, e in exp.items():
        full = os.path.join(mnt, path)
        st = os.lstat(full)
        check(st.st_uid == os.getuid() and st.st_gid == os.getgid(), "%s: owner %d:%d" % (path, st.st_uid, st.st_gid))
        check(stat.S_IMODE(st.st_mode) == e["mode"], "%s: mode %o, expected %o" % (path, stat.S_IMODE(st.st_mode), e["mode"]))
        if e["type"] == "dir":
            check(stat.S_ISDIR(st.st_mode), path + ": not a directory")
            want = sorted(p.rsplit("/", 1)[-1] for p in exp if p and parent(p) == path)
            if path == "":
                want = sorted(want + VFILES)
            check(sorted(os.listdir(full)) == want, "%s: listing %s, expected %s" % (path, sorted(os.listdir(full))[:5], want[:5]))
            continue
        check(int(st.st_mtime) == e["mtime"], "%s: mtime %d, expected %d" % (path, st.st_mtime, e["mtime"]))
        check(st.st_size == e["size"], "%s: size %d, expected %d" % (path, st.st_size, e["size"]))
        if e["type"] == "link":
            check(stat.S_ISLNK(st.st_mode), path + ": not a symlink")
            continue
        check(stat.S_ISREG(st.st_mode), path + ": not a regular file")
        if os.path.exists(os.path.join(src, path)):
            check(sha(full) == sha(os.path.join(src, path)), path + ": content differs from the source")
    return exp


def refused(args, what):
    """archfs with args must exit non-zero with one 'archfs: ' line and mount nothing."""
    mnt = tempfile.mkdtemp(prefix="mnt-", dir=WORK)
    argv = [ARCHFS] + [mnt if x == "MNT" else x for x in args]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    mounted = is_mounted(mnt)
    if mounted:
        subprocess.run(["fusermount3", "-u", mnt])
    lines = r.stderr.strip().splitlines()
    check(r.returncode != 0, what + ": exit status 0")
    check(len(lines) == 1 and lines[0].startswith("archfs: "), what + ": stderr %r" % r.stderr)
    check(not any(s in r.stderr for s in SUSPICIOUS), what + ": sanitizer report")
    check(not mounted, what + ": left a mount behind")
    return lines[0]


