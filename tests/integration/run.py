#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Integration tests: real mounts of generated archives, compared with their sources.

run.py --archfs PATH [--work DIR] [-k SUBSTRING[,SUBSTRING...]] [--timeout SECONDS];
prints PASS/FAIL per test and ends with "N passed, M failed" (exit 1 on any
failure).  A test fails when it raises, when any thread raises during it, or
when it runs past its timeout (--timeout, 300 s, unless it declares more with
harness.timeout); then the run goes on with the next test.
"""
import argparse
import errno
import functools
import json
import os
import random
import re
import resource
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import zipfile

import harness as H  # noqa: E402
import dirmode_tests  # noqa: E402
import restore_tests  # noqa: E402
import pg_tests  # noqa: E402
import app_tests  # noqa: E402
import methods_tests  # noqa: E402
import badinput_tests  # noqa: E402
import deploy_tests  # noqa: E402
import diff_tests  # noqa: E402
import json_tests  # noqa: E402
import install_tests  # noqa: E402
import remote_tests  # noqa: E402
from harness import Failure, Mount, check, compare_tree, fixture, is_mounted, mkarchive, refused, sha  # noqa: E402,F401

# ---------------------------------------------------------------- the tests

def t_app_tree_matches_source():
    a, src = fixture("app")
    with Mount(a) as m:
        compare_tree(m, a, src)


def t_manifest_and_settings_bytes():
    a, _ = fixture("app")
    with Mount(a) as m, zipfile.ZipFile(a) as zf:
        for n in ("manifest.json", "settings.json"):
            check(open(os.path.join(m, n), "rb").read() == zf.read(n), n + " differs")
            check(stat.S_IMODE(os.stat(os.path.join(m, n)).st_mode) == 0o600, n + ": mode is not 0600")


def t_setuid_stripped():
    a, src = fixture("app")
    with Mount(a) as m:
        seen = 0
        for root, _, files in os.walk(os.path.join(src, "uploads")):
            for f in files:
                if os.stat(os.path.join(root, f)).st_mode & stat.S_ISUID:
                    seen += 1
                    mst = os.stat(os.path.join(m, os.path.relpath(os.path.join(root, f), src))).st_mode
                    check(not mst & (stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX) and stat.S_IMODE(mst) == 0o755,
                          "setuid not stripped: %o" % mst)
        check(seen > 0, "fixture has no setuid file")


def t_variants_match_source():
    for v in ("zip64", "stored", "unicode", "emptydir", "symlink"):
        a, src = fixture(v)
        with Mount(a) as m:
            exp = compare_tree(m, a, src)
            if v == "emptydir":
                check(os.listdir(os.path.join(m, "uploads/empty")) == ["deeper"], "empty subtree listing")
                check(os.listdir(os.path.join(m, "uploads/empty/deeper")) == [], "empty dir not empty")
            if v == "symlink":
                check(os.readlink(os.path.join(m, "uploads/current-logo")) == "logos/f00000.dat", "readlink")
            if v == "stored":
                check(any(e.get("method") == "store" for e in exp.values()), "no stored entry in fixture")


def t_xattrs():
    a, _ = fixture("stored")
    exp = mkarchive.expected(a)
    with Mount(a) as m:
        for path, e in exp.items():
            full = os.path.join(m, path)
            if e["type"] == "dir":
                try:
                    os.getxattr(full, "user.archfs.crc32")
                    raise Failure(path + ": directory has an xattr")
                except OSError as err:
                    check(err.errno == errno.ENODATA, "directory xattr errno %d" % err.errno)
                continue
            if e["type"] != "file":
                continue
            check(os.getxattr(full, "user.archfs.crc32").decode() == "%08x" % e["crc"], path + ": crc32 xattr")
            check(os.getxattr(full, "user.archfs.compressed_size").decode() == str(e["csize"]), path + ": compressed_size")
            check(os.getxattr(full, "user.archfs.method").decode() == e["method"], path + ": method xattr")
            names = ["user.archfs.compressed_size", "user.archfs.crc32", "user.archfs.method"]
            if e["method"] == "deflate":  # and what this mount inflated for it, its seek points
                names = sorted(names + ["user.archfs.inflated", "user.archfs.seek_points"])
                check(os.getxattr(full, "user.archfs.seek_points") == b"0", path + ": seek points before any read")
            check(sorted(os.listxattr(full)) == names, path + ": listxattr")


def t_statfs():
    a, _ = fixture("app")
    with Mount(a) as m:
        sv = os.statvfs(m)
        check(sv.f_bsize > 0 and sv.f_files >= len(mkarchive.expected(a)), "statvfs %r" % (sv,))
        check(sv.f_blocks * sv.f_frsize >= os.path.getsize(a), "statvfs blocks")


def t_erofs_everywhere():
    a, _ = fixture("app")
    before = (sha(a), os.stat(a).st_mtime_ns)
    with Mount(a) as m:
        f, d = os.path.join(m, "settings.json"), os.path.join(m, "uploads")
        attempts = {
            "open for write": lambda: H.write_through(f, os.O_WRONLY),
            "open rdwr": lambda: H.write_through(f, os.O_RDWR),
            "open with O_TRUNC": lambda: os.open(f, os.O_WRONLY | os.O_TRUNC),
            "append": lambda: H.write_through(f, os.O_WRONLY | os.O_APPEND),
            "create": lambda: os.open(os.path.join(m, "new"), os.O_WRONLY | os.O_CREAT, 0o644),
            "unlink": lambda: os.unlink(f),
            "mkdir": lambda: os.mkdir(os.path.join(m, "newdir")),
            "rmdir": lambda: os.rmdir(os.path.join(d, "logos")),
            "rename": lambda: os.rename(f, os.path.join(m, "moved")),
            "chmod": lambda: os.chmod(f, 0o777),
            "chown": lambda: os.chown(f, 1, 1),
            "truncate": lambda: os.truncate(f, 0),
            "utime": lambda: os.utime(f, (0, 0)),
            "symlink": lambda: os.symlink("x", os.path.join(m, "lnk")),
            "link": lambda: os.link(f, os.path.join(m, "hard")),
            "setxattr": lambda: os.setxattr(f, "user.x", b"1"),
        }
        for what, fn in attempts.items():
            try:
                fn()
                raise Failure(what + " succeeded on a read-only mount")
            except OSError as err:
                check(err.errno == errno.EROFS, "%s: errno %s, expected EROFS" % (what, errno.errorcode.get(err.errno)))
    check((sha(a), os.stat(a).st_mtime_ns) == before, "the archive changed")


def t_sqlite3_on_mounted_db():
    a, src = fixture("app", db_size=3 << 20)
    q = "select count(*), sum(length(notes)) from time_entries; select count(*) from users;"
    with Mount(a) as m:
        got = subprocess.run(["sqlite3", "-readonly", os.path.join(m, "db.sqlite"), q], capture_output=True, text=True)
        want = subprocess.run(["sqlite3", os.path.join(src, "db.sqlite"), q], capture_output=True, text=True)
        check(got.returncode == 0 and got.stdout == want.stdout and got.stdout.strip(),
              "sqlite3 query: %r %r vs %r" % (got.stdout, got.stderr, want.stdout))
        ic = subprocess.run(["sqlite3", "-readonly", os.path.join(m, "db.sqlite"), "PRAGMA integrity_check"],
                            capture_output=True, text=True)
        check(ic.stdout.strip() == "ok", "integrity_check: " + ic.stdout + ic.stderr)


def t_random_access_large_entry():
    a, src = fixture("app", db_size=8 << 20)
    data = open(os.path.join(src, "db.sqlite"), "rb").read()
    rng = random.Random(3)
    with Mount(a) as m, open(os.path.join(m, "db.sqlite"), "rb", buffering=0) as f:
        for _ in range(200):
            off, n = rng.randrange(len(data)), rng.randrange(1, 100000)
            f.seek(off)
            check(f.read(n) == data[off:off + n], "bytes at %d+%d differ" % (off, n))
        f.seek(len(data))
        check(f.read(10) == b"", "read at EOF returned data")



def t_seek_points_kept_across_mounts():
    """Random reads of a deflated db.sqlite write its seek points to the
    index directory when the file closes; a remount loads them, so its first
    random reads inflate a fraction of what the first mount's did (the
    daemon's user.archfs.inflated counter, not time), with the same bytes.
    A damaged points file is ignored with one log line; --index-dir none
    keeps nothing; without the option they go under $XDG_CACHE_HOME/archfs."""
    a, src = fixture("app", db_size=24 << 20)
    data = open(os.path.join(src, "db.sqlite"), "rb").read()
    idx = os.path.join(H.WORK, "points-%d" % os.getpid())

    def reads(m, seed, n=40):
        """A read near the end, then n at random; the bytes inflated for the
        first one (a fresh mount's is the whole entry) and the points after."""
        rng = random.Random(seed)
        path = os.path.join(m, "db.sqlite")
        with open(path, "rb", buffering=0) as f:
            offs = [len(data) - 8192] + [rng.randrange(len(data) - 4096) // 4096 * 4096 for _ in range(n)]
            for i, off in enumerate(offs):
                f.seek(off)
                check(f.read(4096) == data[off:off + 4096], "bytes at %d differ" % off)
                if i == 0:
                    got = int(os.getxattr(path, "user.archfs.inflated"))
            pts = int(os.getxattr(path, "user.archfs.seek_points"))
        return got, pts

    with Mount(a, "--index-dir", idx) as m:
        first, pts1 = reads(m, 1)
        check("user.archfs.inflated" in os.listxattr(os.path.join(m, "db.sqlite")), "listxattr lacks inflated")
    files = os.listdir(idx)
    check(len(files) == 1 and files[0].endswith(".points"), "index dir holds %r" % files)
    check(stat.S_IMODE(os.stat(idx).st_mode) == 0o700, "index dir mode %o" % os.stat(idx).st_mode)
    pf = os.path.join(idx, files[0])
    check(stat.S_IMODE(os.stat(pf).st_mode) == 0o600, "points file mode %o" % os.stat(pf).st_mode)
    check(first > len(data) * 0.9 and pts1 >= 10, "first mount inflated %d with %d points" % (first, pts1))
    with Mount(a, "--index-dir", idx) as m:
        second, pts2 = reads(m, 2)
    check(pts2 >= pts1 and second < 2 << 20,
          "remount inflated %d (first mount %d), %d points" % (second, first, pts2))
    # a damaged points file: ignored with one line, the reads still right
    raw = bytearray(open(pf, "rb").read())
    raw[len(raw) // 2] ^= 0xFF
    open(pf, "wb").write(raw)
    mount = Mount(a, "--index-dir", idx)
    with mount as m:
        third, _ = reads(m, 3)
        log = mount.stderr()
    check(third > len(data) * 0.9, "a damaged file was used: inflated %d" % third)
    check(log.count("seek points kept for entry") == 1 and "ignored" in log, "log: " + log[-2000:])
    # none: nothing kept, nothing read
    shutil.rmtree(idx)
    with Mount(a, "--index-dir", "none") as m:
        reads(m, 4, n=5)
    check(not os.path.exists(idx), "--index-dir none wrote files")
    # the default: $XDG_CACHE_HOME/archfs
    xdg = os.path.join(H.WORK, "xdg-%d" % os.getpid())
    with Mount(a, env={"XDG_CACHE_HOME": xdg}) as m:
        reads(m, 5, n=5)
    check(len(os.listdir(os.path.join(xdg, "archfs"))) == 1, "nothing under XDG_CACHE_HOME/archfs")
    shutil.rmtree(xdg)
    refused(["--index-dir", "/proc/no/such/dir", a, "MNT"], "--index-dir")

def t_concurrent_reads():
    """Threads read at once: whole files (the database twice, the JSON files,
    uploads small and large) and random preads on one shared descriptor.
    Every byte is compared with the archive's (zipfile); a worker that raises
    or hangs fails the test."""
    a, _ = fixture("app", db_size=8 << 20)
    with zipfile.ZipFile(a) as zf:
        uploads = sorted(n for n in zf.namelist() if n.startswith("uploads/") and not n.startswith("uploads/big/"))
        names = ["db.sqlite", "db.sqlite", "manifest.json", "settings.json"] + uploads[:10] + \
            [n for n, _ in mkarchive.BIG_UPLOADS]
        want = {n: H.zip_sha(zf, n) for n in names}
        db = zf.read("db.sqlite")
    with Mount(a) as m:
        def whole(n):
            check(sha(os.path.join(m, n)) == want[n], n + ": a concurrent read differs from the archive")

        def preads(fd, seed):
            rng = random.Random(seed)
            for _ in range(40):
                off, n = rng.randrange(len(db)), rng.randrange(1, 300000)
                check(os.pread(fd, n, off) == db[off:off + n], "db.sqlite: pread at %d+%d differs" % (off, n))
        fd = os.open(os.path.join(m, "db.sqlite"), os.O_RDONLY)
        try:
            H.run_threads([functools.partial(whole, n) for n in names] +
                          [functools.partial(preads, fd, seed) for seed in range(4)])
        finally:
            os.close(fd)


def t_large_and_world_writable_uploads():
    """Uploads around 256 KiB and of a few MiB, deflated and stored, read
    whole and across the 256 KiB boundaries; world-writable uploads show the
    archive's mode (0666, 0777) and still refuse writes."""
    a, _ = fixture("app")
    with Mount(a) as m, zipfile.ZipFile(a) as zf:
        for arc, size in mkarchive.BIG_UPLOADS:
            full, data = os.path.join(m, arc), zf.read(arc)
            check(len(data) == size and os.stat(full).st_size == size, "%s: size %d" % (arc, os.stat(full).st_size))
            method = "store" if "/stored-" in arc else "deflate"
            check(os.getxattr(full, "user.archfs.method").decode() == method, arc + ": not " + method)
            with open(full, "rb") as f:
                check(f.read() == data, arc + ": bytes differ from the archive's")
            fd = os.open(full, os.O_RDONLY)
            try:
                for off in (262143, 262144, 262145, size - 1, size):
                    check(os.pread(fd, 70000, off) == data[off:off + 70000], "%s: bytes at %d differ" % (arc, off))
            finally:
                os.close(fd)
        for arc, mode in mkarchive.WORLD_WRITABLE.items():
            full = os.path.join(m, arc)
            check(stat.S_IMODE(os.stat(full).st_mode) == mode, "%s: mode %o, expected %o" % (
                arc, stat.S_IMODE(os.stat(full).st_mode), mode))
            check(open(full, "rb").read() == zf.read(arc), arc + ": bytes differ")
            try:
                H.write_through(full, os.O_WRONLY)
                raise Failure(arc + ": written")
            except OSError as err:
                check(err.errno == errno.EROFS, "%s: errno %s, expected EROFS" % (arc, errno.errorcode.get(err.errno)))


def t_extended_timestamp_mtimes():
    """An entry with an extended-timestamp field (0x5455) shows its mtime, the
    exact UTC second, not the DOS time; a field without an mtime (flag bit 0
    clear) leaves the DOS time."""
    a, _ = fixture("app")
    with Mount(a) as m, zipfile.ZipFile(a) as zf:
        for arc, (flags, t) in mkarchive.EXT_MTIMES.items():
            dos = int(time.mktime(zf.getinfo(arc).date_time + (0, 0, -1)))
            check(abs(dos - t) > 86400, arc + ": the fixture's DOS time is too close to its extended timestamp")
            want = t if flags & 1 else dos
            got = os.stat(os.path.join(m, arc)).st_mtime_ns
            check(got == want * 10**9, "%s: mtime %d ns, expected %d s (%s)" % (
                arc, got, want, "extended timestamp" if flags & 1 else "DOS time"))
    check(mkarchive.EXT_MTIMES["uploads/exttime/odd-second.txt"] == (1, 1709213861), "the fixture changed")


def t_directory_mtimes():
    """A directory with an entry has that entry's mtime (DOS time, or its
    extended timestamp); the root and every directory the archive only
    implies have the archive file's mtime."""
    a, _ = fixture("emptydir")
    file_mtime = os.stat(a).st_mtime_ns // 10**9
    dos = int(time.mktime((2025, 11, 1, 12, 0, 0, 0, 0, -1)))
    want = {"": file_mtime, "uploads": file_mtime, "uploads/attachments/2026": file_mtime,
            "uploads/empty": dos, "uploads/logos": dos, "uploads/empty/deeper": 1600000001}
    with Mount(a) as m:
        for d, t in want.items():
            got = os.stat(os.path.join(m, d)).st_mtime_ns
            check(got == t * 10**9, "%s: mtime %d ns, expected %d s" % (d or "/", got, t))


def t_control_names_in_archive_hidden_and_reported():
    """Entries named .control and .status at the archive's root are hidden by
    the control files (listed once, the control file's mode and content) and
    reported as warnings in .status, .log and on stderr; below the root such
    a name is an ordinary entry."""
    a, src = fixture("shadowed")
    mount = Mount(a)
    with mount as m:
        compare_tree(m, a, src)
        names = os.listdir(m)
        check(names.count(".control") == 1 and names.count(".status") == 1, "root listing: %s" % sorted(names))
        check(stat.S_IMODE(os.stat(os.path.join(m, ".control")).st_mode) == 0o200, ".control is not the control file")
        st = json.loads(read_file(os.path.join(m, ".status")))
        check(st["state"] == "idle", ".status is not the status file: %r" % st)
        log = read_file(os.path.join(m, ".log"))
        notes = ["the archive entry %s is hidden by the control file of the same name" % n for n in (".control", ".status")]
        check(sorted(st["warnings"]) == notes, ".status warnings: %r" % st["warnings"])
        check(all(n in log for n in notes), ".log lacks the warnings: " + log[-800:])
        check(all("archfs: restore: " + n in mount.stderr() for n in notes), "stderr lacks the warnings: " + mount.stderr())
        fd = os.open(os.path.join(m, ".control"), os.O_WRONLY)
        try:
            os.write(fd, b"bogus\n")
            raise Failure("an unknown command was accepted")
        except OSError as err:
            check(err.errno == errno.EINVAL, "unknown command: errno %d" % err.errno)
        finally:
            os.close(fd)
        st = json.loads(read_file(os.path.join(m, ".status")))
        check(all(n in st["warnings"] for n in notes), "the warnings did not stay: %r" % st["warnings"])
        check(open(os.path.join(m, "uploads/.status"), "rb").read() == mkarchive.SHADOWED["uploads/.status"],
              "uploads/.status is not the archive's entry")


DECODER_CAP, DECODER_KIB = 64, 210  # docs/architecture.md, Memory: the live decoders and their size


def t_many_open_handles_bounded_memory():
    """2,000 handles open on one deflated entry, one read far into it on
    each: the daemon's memory grows by at most the documented bound on live
    decoders (it used to keep about 200 KiB per handle: 400 MB), and every
    read gives the right bytes."""
    a, src = fixture("app", db_size=16 << 20)
    data = open(os.path.join(src, "db.sqlite"), "rb").read()
    n = 2000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n + 64:
        resource.setrlimit(resource.RLIMIT_NOFILE, (n + 64, max(hard, n + 64)))
    env = {"ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=0"} if H.sanitized() else None
    mount = Mount(a, env=env)
    fds = []
    try:
        with mount as m:
            try:
                path = os.path.join(m, "db.sqlite")
                fd = os.open(path, os.O_RDONLY)
                check(os.pread(fd, 4096, len(data) - 4096) == data[-4096:], "the first far read differs")
                os.close(fd)
                base = H.vm_rss_kib(mount.proc.pid)
                for i in range(n):
                    fds.append(os.open(path, os.O_RDONLY))
                    off = len(data) // 2 + i * 3001
                    # out of the page cache: the read reaches the daemon on this handle
                    os.posix_fadvise(fds[-1], 0, 0, os.POSIX_FADV_DONTNEED)
                    got = os.pread(fds[-1], 4096, off)
                    check(got == data[off:off + 4096], "handle %d: the bytes at %d differ" % (i, off))
                grown = H.vm_rss_kib(mount.proc.pid) - base
                slack = (40 if H.sanitized() else 16) << 10
                bound = DECODER_CAP * DECODER_KIB + slack
                check(grown <= bound, "%d open handles grew the daemon by %d KiB (bound %d KiB)" % (n, grown, bound))
                for i in (0, n // 2, n - 1):  # the first handles were evicted long ago: they read on
                    off = len(data) // 3 + i
                    check(os.pread(fds[i], 5000, off) == data[off:off + 5000], "handle %d reads wrong after eviction" % i)
            finally:
                for fd in fds:
                    os.close(fd)
                H.wait_requests_done(m)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def t_cp_r_subtree():
    a, src = fixture("app")
    with Mount(a) as m:
        dest = tempfile.mkdtemp(dir=H.WORK)
        r = subprocess.run(["cp", "-r", os.path.join(m, "uploads/attachments"), dest], capture_output=True, text=True)
        check(r.returncode == 0, "cp -r: " + r.stderr)
        d = subprocess.run(["diff", "-r", os.path.join(src, "uploads/attachments"), os.path.join(dest, "attachments")],
                           capture_output=True, text=True)
        check(d.returncode == 0, "diff -r: " + d.stdout[:500])


def t_many_files_find_and_cp():
    a, src = fixture("many")
    with Mount(a) as m:
        n = subprocess.run("find %s | wc -l" % m, shell=True, capture_output=True, text=True).stdout.strip()
        want = len(mkarchive.expected(a)) + len(H.VFILES)  # the control and status files too
        check(int(n) == want, "find saw %s paths, expected %d" % (n, want))
        dest = tempfile.mkdtemp(dir=H.WORK)
        r = subprocess.run(["cp", "-r", os.path.join(m, "uploads"), dest], capture_output=True, text=True)
        check(r.returncode == 0, "cp -r: " + r.stderr[:500])
        d = subprocess.run(["diff", "-r", os.path.join(src, "uploads"), os.path.join(dest, "uploads")],
                           capture_output=True, text=True)
        check(d.returncode == 0, "diff -r: " + d.stdout[:500])


def t_listings_kept_by_the_kernel():
    """On a single archive the kernel opens directories itself and keeps
    their listings: a second find sends neither OPENDIR nor READDIRPLUS.
    Listings made for a walk carry no files' attributes; once files are
    looked up or read they are dropped, so ls -lR after find looks up the
    files of its first directory only.  Listings whose files were read by
    request are dropped too (the kernel takes those files' access times for
    stale): a second cp -r asks for no file's attributes.  Listings that
    span many requests, of two directories read in turns, give every name
    once; every path's attributes and bytes stay right."""
    a = os.path.join(H.WORK, "listings.zip")
    want = {"big1": set(), "big2": set()}
    with zipfile.ZipFile(a, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("manifest.json", '{"db_type": "sqlite"}')
        for top in want:
            for i in range(3000):
                want[top].add("e%05d.txt" % i)
                z.writestr("%s/e%05d.txt" % (top, i), b"%s %d" % (top.encode(), i))
        for d in range(40):
            for f in range(25):
                z.writestr("uploads/d%02d/f%03d.txt" % (d, f), (b"%d/%d " % (d, f)) * (40 + f))
            # too large to push ahead: always read by request
            z.writestr("uploads/d%02d/large.bin" % d, b"".join(b"%d/%06d\n" % (d, i) for i in range(20000)))
    mount = Mount(a, "-d")

    def ops(since):
        counts = {}
        for op in re.findall(r"opcode: ([A-Z_]+)", mount.stderr()[since:]):
            counts[op] = counts.get(op, 0) + 1
        return counts

    with mount as m:
        # two directories listed in turns, each over many requests
        its = {top: os.scandir(os.path.join(m, top)) for top in want}
        seen = {top: [] for top in want}
        live = set(want)
        while live:
            for top in sorted(live):
                for _ in range(7):
                    e = next(its[top], None)
                    if e is None:
                        live.discard(top)
                        break
                    seen[top].append(e.name)
        for top in want:
            its[top].close()
            check(sorted(seen[top]) == sorted(want[top]), "%s: %d names listed, %d distinct, %d expected"
                  % (top, len(seen[top]), len(set(seen[top])), len(want[top])))
        n = len(subprocess.run(["find", m], capture_output=True, text=True).stdout.splitlines())
        check(n == 1 + len(H.VFILES) + 1 + 2 * 3001 + 41 + 1040, "find saw %d paths" % n)
        pos = len(mount.stderr())
        subprocess.run(["find", m], capture_output=True, check=True)
        o = ops(pos)
        check(o.get("OPENDIR", 0) == 0 and o.get("READDIRPLUS", 0) == 0 and o.get("READDIR", 0) == 0,
              "a second find asked for listings again: %s" % o)
        pos = len(mount.stderr())
        r = subprocess.run(["ls", "-lR", os.path.join(m, "uploads")], capture_output=True, text=True)
        check(r.returncode == 0 and r.stdout.count(" f0") == 1000, "ls -lR: " + r.stderr[:500])
        o = ops(pos)
        check(o.get("LOOKUP", 0) <= 100, "ls -lR after find looked up %d of 1,040 files: %s" % (o.get("LOOKUP", 0), o))
        dest = tempfile.mkdtemp(dir=H.WORK)
        r = subprocess.run(["cp", "-r", os.path.join(m, "uploads"), os.path.join(dest, "u1")],
                           capture_output=True, text=True)
        check(r.returncode == 0, "cp -r: " + r.stderr[:500])
        pos = len(mount.stderr())
        r = subprocess.run(["cp", "-r", os.path.join(m, "uploads"), os.path.join(dest, "u2")],
                           capture_output=True, text=True)
        check(r.returncode == 0, "cp -r: " + r.stderr[:500])
        o = ops(pos)
        check(o.get("GETATTR", 0) + o.get("LOOKUP", 0) <= 41 + 4,
              "a second cp -r asked for files' attributes one by one: %s" % o)
        with zipfile.ZipFile(a) as z:
            for u in ("u1", "u2"):
                for name in z.namelist():
                    if name.startswith("uploads/") and not name.endswith("/"):
                        with open(os.path.join(dest, u, name[len("uploads/"):]), "rb") as f:
                            check(f.read() == z.read(name), "%s: %s differs" % (u, name))
        compare_tree(m, a, os.path.join(H.WORK, "no-source"))  # bytes as zipfile reads them


def t_corrupt_entries_give_eio():
    for v in ("badcrc", "baddeflate"):
        a, src = fixture(v)
        mount = Mount(a)
        with mount as m:
            try:
                open(os.path.join(m, "uploads/damaged.txt"), "rb").read()
                raise Failure(v + ": damaged entry read without error")
            except OSError as err:
                check(err.errno == errno.EIO, "%s: errno %s, expected EIO" % (v, errno.errorcode.get(err.errno)))
            check(open(os.path.join(m, "db.sqlite"), "rb").read() == open(os.path.join(src, "db.sqlite"), "rb").read(),
                  v + ": other entries must still read")
            why = "CRC-32 mismatch" if v == "badcrc" else "deflate"
            check("archfs: uploads/damaged.txt: " + why in mount.stderr(), v + ": no log line: " + mount.stderr())


def t_entry_past_eof_fails_cleanly():
    """A fuzz find: an entry whose local header lies past the end of the file
    killed the daemon on its first read.  Now every read of it is EIO, again
    and again, the mount stays up and every other entry reads."""
    for v in ("offset-past-eof", "zip64-offset-past-eof"):
        a, src = fixture(v)
        mount = Mount(a)
        with mount as m:
            bad = os.path.join(m, "uploads/damaged.txt")
            size = zipfile.ZipFile(a).getinfo("uploads/damaged.txt").file_size
            check(size > 70000 and os.stat(bad).st_size == size, v + ": size %d" % os.stat(bad).st_size)
            for off in (0, 0, 70000):
                fd = os.open(bad, os.O_RDONLY)
                try:
                    os.pread(fd, 4096, off)
                    raise Failure(v + ": an entry past the end of the file read without error")
                except OSError as err:
                    check(err.errno == errno.EIO, "%s: errno %s, expected EIO" % (v, errno.errorcode.get(err.errno)))
                finally:
                    os.close(fd)
            check(is_mounted(m), v + ": the mount is gone")
            compare_tree(m, a, src, damaged={"uploads/damaged.txt"})
            check("archfs: uploads/damaged.txt: its data would lie past the end of the archive file"
                  in mount.stderr(), v + ": no log line: " + mount.stderr())


def t_hostile_archives_refused():
    for v in mkarchive.HOSTILE:
        a, _ = fixture(v)
        line = refused([a, "MNT"], v)
        check(a in line, v + ": the error does not name the archive: " + line)


def t_bad_invocations_refused():
    a, _ = fixture("app")
    refused([os.path.join(H.WORK, "missing.zip"), "MNT"], "missing archive")
    refused([a, os.path.join(H.WORK, "no-such-dir")], "missing mount point")
    refused([a, a], "mount point is a file")
    refused(["--bogus", a, "MNT"], "unknown option")
    refused([a], "missing mount point argument")
    refused(["/dev/null", "MNT"], "archive is a device")
    refused([os.path.join(H.WORK, "missing-dir") + "/", "MNT"], "missing backups directory")


def t_help_and_version():
    r = subprocess.run([H.ARCHFS, "--help"], capture_output=True, text=True)
    check(r.returncode == 0 and "-o" in r.stdout and "--version" in r.stdout, "--help: %r" % r.stdout[:200])
    r = subprocess.run([H.ARCHFS, "--version"], capture_output=True, text=True)
    check(r.returncode == 0 and r.stdout.startswith("archfs "), "--version: %r" % r.stdout)


def t_background_mount_and_unmount():
    a, _ = fixture("app")
    mnt = tempfile.mkdtemp(prefix="mnt-", dir=H.WORK)
    r = subprocess.run([H.ARCHFS, a, mnt], capture_output=True, text=True, timeout=30)
    try:
        check(r.returncode == 0 and is_mounted(mnt), "background mount failed: " + r.stderr)
        check("manifest.json" in os.listdir(mnt), "background mount lists nothing")
    finally:
        subprocess.run(["fusermount3", "-u", mnt], stderr=subprocess.DEVNULL)
    check(not is_mounted(mnt), "still mounted after fusermount3 -u")


def t_allow_other_enforces_modes():
    """With -o allow_other other users may enter the mount, and then the
    kernel checks each file's mode (default_permissions): a 0600 entry is
    not theirs to read, nor are .status and .log; .restore_in_progress is."""
    a, src = fixture("app")
    os.chmod(H.WORK, 0o711)  # another user may pass through to the mount point
    with Mount(a, "-o", "allow_other") as m:
        def as_nobody(path):
            code = "import sys\ntry:\n open(sys.argv[1], 'rb').read()\nexcept OSError as e:\n sys.exit(e.errno)\n"
            return subprocess.run(["/usr/bin/python3", "-c", code, path], preexec_fn=lambda: (os.setgid(65534), os.setuid(65534)),
                                  timeout=30).returncode
        upload = next(os.path.join(r, f)[len(src) + 1:] for r, _, fs in os.walk(os.path.join(src, "uploads")) for f in fs
                      if stat.S_IMODE(os.stat(os.path.join(r, f)).st_mode) & 0o004)
        check(stat.S_IMODE(os.stat(os.path.join(m, "settings.json")).st_mode) == 0o600, "settings.json is not 0600")
        check(as_nobody(os.path.join(m, "settings.json")) == errno.EACCES, "another user read a 0600 entry")
        check(as_nobody(os.path.join(m, upload)) == 0, "another user cannot read a world-readable upload")
        for v, want in ((".status", errno.EACCES), (".log", errno.EACCES), (".restore_in_progress", 0), (".progress", 0)):
            check(as_nobody(os.path.join(m, v)) == want, "%s for another user: errno %s" % (v, want))
        check(stat.S_IMODE(os.stat(os.path.join(m, ".status")).st_mode) == 0o400, ".status is not the owner's only")
        check(read_file(os.path.join(m, ".status")).startswith("{"), "the owner cannot read .status")


def read_file(path):
    with open(path) as f:
        return f.read()


def t_relative_mountpoint_unmounts_on_sigterm():
    """Mounted in the background at a relative path, the daemon (which
    changes to /) still unmounts itself on SIGTERM: no dead mount left."""
    a, _ = fixture("app")
    parent = tempfile.mkdtemp(prefix="rel-", dir=H.WORK)
    os.mkdir(os.path.join(parent, "mnt"))
    mnt = os.path.join(parent, "mnt")
    r = subprocess.run([H.ARCHFS, a, "mnt"], cwd=parent, capture_output=True, text=True, timeout=30)
    try:
        check(r.returncode == 0 and is_mounted(mnt), "background mount failed: " + r.stderr)
        pids = subprocess.run(["pgrep", "-f", "^%s %s mnt$" % (H.ARCHFS, a)], capture_output=True, text=True).stdout.split()
        check(len(pids) == 1, "daemon not found: %s" % pids)
        os.kill(int(pids[0]), signal.SIGTERM)
        deadline = time.time() + 20
        while time.time() < deadline and os.path.exists("/proc/" + pids[0]):
            time.sleep(0.02)
        check(not os.path.exists("/proc/" + pids[0]), "the daemon did not exit on SIGTERM")
        check(not is_mounted(mnt), "a dead mount was left behind at a relative mount point")
    finally:
        if is_mounted(mnt):
            subprocess.run(["umount", "-l", mnt], stderr=subprocess.DEVNULL)


class Watchdog:
    """Fails a test that runs past its time (its timeout attribute, see
    harness.timeout, else --timeout).  At the deadline SIGALRM raises Failure
    in the main thread.  A main thread waiting in the kernel for a hung FUSE
    request cannot take it, so GRACE s later the archfs processes of the run
    are killed and its mounts detached (the request then fails).  A test still
    not returned ABANDON s after that ends the run: exit 1, the tests not run
    counted as failed."""
    GRACE, ABANDON = 10, 120

    def __init__(self, name, seconds, abandon):
        self.name, self.seconds, self.abandon = name, seconds, abandon
        self.fired, self.done = False, threading.Event()

    def __enter__(self):
        signal.signal(signal.SIGALRM, self._alarm)
        signal.alarm(self.seconds)
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()
        return self

    def _alarm(self, signum, frame):
        self.fired = True
        raise Failure("timed out after %d s" % self.seconds)

    def _watch(self):
        if self.done.wait(self.seconds + self.GRACE):
            return
        self.fired = True
        print("TIMEOUT %s: %d s passed; %s" % (self.name, self.seconds, "; ".join(H.abort_mounts()) or "nothing to abort"),
              flush=True)
        if not self.done.wait(self.ABANDON):
            self.abandon(self.name, "timed out after %d s and did not return after its mounts were aborted" % self.seconds)

    def __exit__(self, *exc):
        signal.alarm(0)
        self.done.set()
        self.thread.join()
        return False


def selected(args):
    """(name, function) of every test whose name contains one of the
    comma-separated substrings of -k."""
    keys = args.k.split(",")
    mods = (globals(), vars(dirmode_tests), vars(restore_tests), vars(pg_tests), vars(app_tests),
            vars(methods_tests), vars(badinput_tests), vars(deploy_tests), vars(diff_tests),
            vars(json_tests), vars(install_tests), vars(remote_tests))
    return [(n[2:], f) for mod in mods for n, f in mod.items()
            if n.startswith("t_") and callable(f) and any(k in n for k in keys)]


def cleanup(keep_work):
    with open("/proc/self/mounts") as f:
        for line in f:
            if line.split()[1].startswith(os.path.realpath(H.WORK)):
                subprocess.run(["umount", "-l", line.split()[1]], stderr=subprocess.DEVNULL)
    if not keep_work:
        shutil.rmtree(H.WORK, ignore_errors=True)


def run_one(name, fn, default_timeout, thread_errors, abandon):
    """Runs one test; returns None when it passed, else why it failed.  An
    exception in any thread during the test fails it too."""
    del thread_errors[:]
    dog = Watchdog(name, getattr(fn, "timeout", default_timeout), abandon)
    try:
        with dog:
            try:
                fn()
            finally:
                signal.alarm(0)
        why = None
    except Exception as e:  # a test's own failure or an unexpected error: both fail it
        why = str(e) if isinstance(e, Failure) else traceback.format_exc(limit=3)
    if dog.fired:
        timed_out = "timed out after %d s" % dog.seconds
        why = timed_out if why == timed_out else "%s (then: %s)" % (timed_out, why)
    if thread_errors:
        why = "%san exception in a thread: %s" % (why + "; " if why else "", " | ".join(thread_errors[:3]))
    return why


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--archfs", required=True)
    ap.add_argument("--work")
    ap.add_argument("-k", default="", help="run the tests whose names contain one of these comma-separated substrings")
    ap.add_argument("--timeout", type=int, default=H.DEFAULT_TIMEOUT, help="seconds per test unless it declares more")
    args = ap.parse_args()
    H.ARCHFS = os.path.abspath(args.archfs)
    H.WORK = args.work or tempfile.mkdtemp(prefix="archfs-it-")
    os.makedirs(H.WORK, exist_ok=True)
    # seek points kept between mounts go to the scratch directory, not the user's ~/.cache
    os.environ["XDG_CACHE_HOME"] = os.path.join(H.WORK, "xdg-cache")
    tests = selected(args)
    passed = failed = 0
    thread_errors = []

    def on_thread_exception(a):
        if a.exc_type is not SystemExit:
            thread_errors.append("%s: %s" % (a.thread.name if a.thread else "a thread", H.describe(a.exc_value)))
        threading.__excepthook__(a)
    threading.excepthook = on_thread_exception

    def abandon(name, why):  # from the watchdog thread: the main thread is stuck for good
        print("FAIL %s: %s" % (name, why), flush=True)
        cleanup(args.work)
        left = len(tests) - passed - failed - 1
        print("ABANDONED: the run stops here; the %d tests not run count as failed" % left, flush=True)
        print("%d passed, %d failed" % (passed, failed + 1 + left), flush=True)
        os._exit(1)
    try:
        for name, fn in tests:
            t0 = time.time()
            why = run_one(name, fn, args.timeout, thread_errors, abandon)
            if why is None:
                passed += 1
                print("PASS %s (%.1fs)" % (name, time.time() - t0), flush=True)
            else:
                failed += 1
                print("FAIL %s: %s" % (name, why), flush=True)
    finally:
        cleanup(args.work)
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
