# SPDX-License-Identifier: MIT
"""What every integration test uses: real mounts, fixtures, checks.

run.py sets ARCHFS (the binary under test) and WORK (a scratch directory)
before any test runs.
"""
import errno
import filecmp
import hashlib
import os
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import zipfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures"))
import mkarchive  # noqa: E402

VFILES = [".control", ".log", ".progress", ".restore_in_progress", ".status"]

ARCHFS = None
WORK = None
SUSPICIOUS = ("AddressSanitizer", "runtime error:", "LeakSanitizer")
DEFAULT_TIMEOUT = 300  # seconds a test may take unless it declares more (timeout())
_fixtures = {}
_mounted = {}  # real mount point -> the Mount serving it


class Failure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


def timeout(seconds):
    """Decorator: the test may run for seconds instead of DEFAULT_TIMEOUT."""
    def set_timeout(fn):
        fn.timeout = seconds
        return fn
    return set_timeout


def describe(e):
    """An unexpected exception on one line: its type, message and where it was raised."""
    where = traceback.extract_tb(e.__traceback__)[-1] if e.__traceback__ else None
    return "%s: %s%s" % (type(e).__name__, e, " (%s:%d)" % (os.path.basename(where.filename), where.lineno) if where else "")


def run_threads(fns, timeout=120):
    """Runs each callable of fns in its own thread and waits for all of them;
    fails when any of them raised (each failure in one line) or has not
    returned within timeout seconds.  A worker that fails must raise."""
    errors = []

    def wrap(i, fn):
        try:
            fn()
        except BaseException as e:  # every way a worker can fail is a failure of the test
            errors.append("thread %d: %s" % (i, e if isinstance(e, Failure) else describe(e)))
    ts = [threading.Thread(target=wrap, args=(i, fn), daemon=True) for i, fn in enumerate(fns)]
    for t in ts:
        t.start()
    deadline = time.monotonic() + timeout
    for t in ts:
        t.join(max(0, deadline - time.monotonic()))
    alive = [i for i, t in enumerate(ts) if t.is_alive()]
    check(not errors, "%d of %d threads failed: %s" % (len(errors), len(ts), " | ".join(errors[:3])))
    check(not alive, "threads %s still running after %d s" % (alive, timeout))


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
        _mounted[os.path.realpath(self.mnt)] = self
        return self.mnt

    def stderr(self):
        self.err.seek(0)
        return self.err.read().decode(errors="replace")

    def __exit__(self, exc_type, exc, tb):
        _mounted.pop(os.path.realpath(self.mnt), None)
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


def mounted_file(mnt, archive):
    """The archive file whose tree mnt shows: archive itself, or in directory
    mode the NAME.zip (a copy of archive) of the backups directory a Mount
    serves, whose mtime the implied directories then have."""
    real = os.path.realpath(mnt)
    for top, mount in _mounted.items():
        if real.startswith(top + "/") and os.path.isdir(mount.archive):
            f = os.path.join(mount.archive, real[len(top) + 1:].split("/")[0] + ".zip")
            check(filecmp.cmp(f, archive, shallow=False), "%s is not a copy of %s" % (f, archive))
            return f
    return archive


def zip_sha(zf, name):
    h = hashlib.sha256()
    with zf.open(name) as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def read_errno(path):
    try:
        with open(path, "rb") as f:
            while f.read(1 << 20):
                pass
    except OSError as e:
        return e.errno
    return 0


def compare_tree(mnt, archive, src, damaged=()):
    """Every path: type, mode, size, mtime (directories too: see
    mkarchive.expected), owner, listing and bytes as expected.  A file's bytes
    are its source file's, or the archive's as zipfile reads them when it has
    none; reading a path of damaged must fail with EIO.  Entries at the root
    named like a control file are hidden by it (only the control file is listed)."""
    exp = mkarchive.expected(archive, os.stat(mounted_file(mnt, archive)).st_mtime_ns // 10**9)
    with zipfile.ZipFile(archive) as zf:
        for path, e in exp.items():
            if path in VFILES:
                continue
            compare_path(mnt, path, e, exp, zf, src, path in damaged)
    return exp


def compare_path(mnt, path, e, exp, zf, src, damaged):
    full = os.path.join(mnt, path)
    st = os.lstat(full)
    check(st.st_uid == os.getuid() and st.st_gid == os.getgid(), "%s: owner %d:%d" % (path, st.st_uid, st.st_gid))
    check(stat.S_IMODE(st.st_mode) == e["mode"], "%s: mode %o, expected %o" % (path, stat.S_IMODE(st.st_mode), e["mode"]))
    # whole seconds (the root of an archive in directory mode has its file's nanoseconds)
    check(st.st_mtime_ns // 10**9 == e["mtime"] and (path == "" or st.st_mtime_ns % 10**9 == 0),
          "%s: mtime %d ns, expected %d s" % (path or "/", st.st_mtime_ns, e["mtime"]))
    if e["type"] == "dir":
        check(stat.S_ISDIR(st.st_mode), path + ": not a directory")
        want = sorted(p.rsplit("/", 1)[-1] for p in exp if p and parent(p) == path)
        if path == "":
            want = sorted(set(want) | set(VFILES))
        got = sorted(os.listdir(full))
        check(got == want, "%s: listing %s, expected %s" % (path, got[:8], want[:8]))
        return
    check(st.st_size == e["size"], "%s: size %d, expected %d" % (path, st.st_size, e["size"]))
    if e["type"] == "link":
        check(stat.S_ISLNK(st.st_mode), path + ": not a symlink")
        return
    check(stat.S_ISREG(st.st_mode), path + ": not a regular file")
    if damaged:
        check(read_errno(full) == errno.EIO, path + ": a damaged entry read without EIO")
    elif os.path.exists(os.path.join(src, path)):
        check(sha(full) == sha(os.path.join(src, path)), path + ": content differs from the source")
    else:
        check(sha(full) == zip_sha(zf, path), path + ": content differs from the archive's (zipfile)")


def abort_mounts():
    """After a test timed out: kills every archfs process whose command line
    names a path of WORK (a hung FUSE request then fails: its connection is
    gone) and detaches every mount below WORK.  Returns what it did."""
    work, done = os.path.realpath(WORK), []
    for pid in (p for p in os.listdir("/proc") if p.isdigit() and int(p) != os.getpid()):
        try:
            exe = os.path.realpath("/proc/%s/exe" % pid)
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                argv = f.read().decode(errors="replace").split("\0")
        except OSError:
            continue
        if exe == os.path.realpath(ARCHFS) and any(a.startswith((WORK, work)) for a in argv):
            try:
                os.kill(int(pid), signal.SIGKILL)
                done.append("killed archfs %s" % pid)
            except OSError:
                pass
    with open("/proc/self/mounts") as f:
        points = [line.split()[1] for line in f if line.split()[1].startswith(work + "/")]
    for p in points:
        subprocess.run(["umount", "-l", p], stderr=subprocess.DEVNULL, timeout=30)
        done.append("umount -l " + p)
    return done


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




def write_through(path, flags=os.O_WRONLY, data=b"x"):
    """Opens path with flags and writes data.  A single-archive mount lets
    the kernel open files itself (no-open): a write-open of a read-only
    file succeeds there and the write fails, EROFS; an open with O_TRUNC
    fails at once.  Raises the OSError of whichever step refused."""
    fd = os.open(path, flags)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def free_port():
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def end_group(proc):
    """Ends the process group proc leads (started with start_new_session):
    SIGTERM, then SIGKILL past 20 s."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        proc.wait()


def wait_answering(proc, port, path, what, output, status=None, timeout=30):
    """Waits until GET path on 127.0.0.1:port is answered (with status, when
    given) by the server proc runs; fails when proc exits first or after
    timeout seconds, with output() (its log) in the message."""
    deadline = time.time() + timeout
    while True:
        check(proc.poll() is None, "%s exited with %s: %s" % (what, proc.returncode, output()))
        try:
            got = http_get(port, path)[0]
            if status is None or got == status:
                return
        except OSError:
            pass
        check(time.time() < deadline, "%s did not answer %s within %d s: %s" % (what, path, timeout, output()))
        time.sleep(0.05)


def http_get(port, path):
    """(status, {lower-case header: value}, body) of GET path on 127.0.0.1:port."""
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    try:
        s.sendall(("GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n" % path).encode())
        data = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
    finally:
        s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    return int(lines[0].split(" ", 2)[1]), headers, body
