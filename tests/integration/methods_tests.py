# SPDX-License-Identifier: MIT
"""Integration tests of entries in other compression methods than store and
deflate, and of encrypted entries: the mount lists them all; LZMA, XZ and
zstd (liblzma and libzstd, or libzip when the libzip archfs runs with has
them) and what libzip decodes (bzip2 with Debian 12's libzip) read byte
for byte at any offset, and damaged LZMA, XZ and zstd data reads EIO with
one log line per open file; what nothing decodes reads EOPNOTSUPP with one
log line per open file and a warning in .status; a restore that needs
such an entry is refused at verify, the target unchanged; one that does
not need it goes through, and one whose files are LZMA, XZ and zstd is
restored exactly."""
import ctypes
import errno
import json
import os
import random
import re
import struct
import subprocess
import tempfile

import harness as H
import restore_tests as R
from harness import Mount, check

import methods as M  # tests/fixtures, on the path through harness


def libzip_decodes():
    """The methods (ZIP numbers) that the libzip archfs is linked with decodes."""
    libs = subprocess.run(["ldd", H.ARCHFS], capture_output=True, text=True).stdout
    path = re.search(r"(\S*libzip\.so\S*) => (\S+)", libs)
    check(path, "archfs is not linked with libzip: %s" % libs)
    lib = ctypes.CDLL(path.group(2))
    return {m for m in (9, 12, 14, 77, 93, 95) if lib.zip_compression_method_supported(m, 0)}


def methods_archive(entries, name="methods", mangle=None):
    d = tempfile.mkdtemp(prefix="fx-%s-" % name, dir=H.WORK)
    out = os.path.join(d, "backup.zip")
    return out, M.write_methods_zip(out, entries, mangle=mangle)


XDEC = ("lzma", "xz", "zstd")  # decoded with liblzma and libzstd when libzip does not


def decodable(info, supported):
    return info["kind"] in ("store", "deflate") + XDEC or (
        info["real"] and info["kind"] != "zipcrypto" and M.KINDS[info["kind"]][0] in supported)


def errno_of_read(path, off=0, n=4096):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.pread(fd, n, off)
        return 0
    except OSError as e:
        return e.errno
    finally:
        os.close(fd)


def t_methods_mount_and_read():
    entries = M.sample_entries(size=3 << 20)
    archive, info = methods_archive(entries)
    data = {name: d for name, d, _ in entries}
    supported = libzip_decodes()
    check(12 in supported, "this libzip does not decode bzip2: %s" % sorted(supported))
    mount = Mount(archive)
    with mount as m:
        check(sorted(os.listdir(m)) == sorted(list(info) + H.VFILES), "listing: %s" % sorted(os.listdir(m)))
        warnings = R.status(m)["warnings"]
        for name, e in info.items():
            full = os.path.join(m, name)
            check(os.stat(full).st_size == e["size"], "%s: size %d, expected %d" % (name, os.stat(full).st_size,
                                                                                  e["size"]))
            check(os.getxattr(full, "user.archfs.method").decode() == e["method"], name + ": method xattr %r"
                  % os.getxattr(full, "user.archfs.method"))
            if decodable(e, supported):
                check(not any(w.startswith(name + " ") for w in warnings), "%s: warned: %s" % (name, warnings))
                continue
            what = "encrypted (ZipCrypto)" if e["kind"] == "zipcrypto" else "method %d" % M.KINDS[e["kind"]][0]
            check(any(w.startswith(name + " is ") and what in w and "EOPNOTSUPP" in w for w in warnings),
                  "%s: no warning naming it and %s in .status: %s" % (name, what, warnings))
            logged = mount.stderr().count("archfs: %s: " % name)
            fd = os.open(full, os.O_RDONLY)
            try:
                for off in (0, 0, e["size"] // 2):
                    try:
                        os.pread(fd, 4096, off)
                        raise H.Failure("%s: read without error" % name)
                    except OSError as err:
                        check(err.errno == errno.EOPNOTSUPP, "%s: errno %s, expected EOPNOTSUPP" % (
                            name, errno.errorcode.get(err.errno)))
            finally:
                os.close(fd)
            H.wait_requests_done(m)
            lines = [x for x in mount.stderr().splitlines() if x.startswith("archfs: %s: " % name)]
            check(len(lines) == logged + 1 and what.split(" (")[0] in lines[-1],
                  "%s: %d log lines for one open file's reads, expected 1: %s" % (name, len(lines) - logged, lines))
        for name, e in info.items():
            if not decodable(e, supported):
                continue
            full, want = os.path.join(m, name), data[name]
            check(open(full, "rb").read() == want, name + ": content differs")
            rng = random.Random(name)
            fd = os.open(full, os.O_RDONLY)
            try:
                offs = [rng.randrange(len(want)) for _ in range(12)] + [len(want) - 10, 0, len(want) // 2, 5]
                for off in offs:  # forward and backward
                    n = rng.randint(1, 200000)
                    check(os.pread(fd, n, off) == want[off:off + n], "%s: %d bytes at %d differ" % (name, n, off))
            finally:
                os.close(fd)
        check(H.is_mounted(m), "the mount is gone")


def t_methods_damaged_lzma_xz_zstd():
    """LZMA, XZ and zstd entries whose data is malformed, cut short, or
    whose CRC-32 the archive states wrong: each read fails with EIO, one log
    line per open file; the mount and its other entries stay fine."""
    base = M.sample_entries(size=1 << 20)
    data = {kind: d for _, d, kind in base}

    def flip(p):
        mid = len(p) // 2
        return p[:mid] + bytes(b ^ 0x5a for b in p[mid:mid + 64]) + p[mid + 64:]

    entries, mangle, wrong_crc = [], {}, set()
    for kind in XDEC:
        for how in ("bad", "cut", "crc", "good"):
            name = "%s-%s.bin" % (kind, how)
            entries.append((name, data[kind] + name.encode(), kind))  # each its own CRC-32
            if how == "bad":
                mangle[name] = flip
            elif how == "cut":
                mangle[name] = lambda p: p[:len(p) * 2 // 3]
            elif how == "crc":
                wrong_crc.add(name)
    archive, info = methods_archive(entries, "damaged", mangle)
    if wrong_crc:  # flip one bit of the stated CRC-32 in both records of each
        blob = bytearray(open(archive, "rb").read())
        for name in wrong_crc:
            old = struct.pack("<I", info[name]["crc"])
            new = struct.pack("<I", info[name]["crc"] ^ 1)
            check(blob.count(old) == 2, name + ": its CRC-32 is not in the archive twice")
            blob = blob.replace(old, new)
        open(archive, "wb").write(bytes(blob))
    mount = Mount(archive)
    with mount as m:
        for name, e in info.items():
            full, want = os.path.join(m, name), data[e["kind"]] + name.encode()
            check(os.stat(full).st_size == e["size"], name + ": size")
            if name.endswith("-good.bin"):
                check(open(full, "rb").read() == want, name + ": content differs")
                continue
            logged = mount.stderr().count("archfs: %s: " % name)
            fd = os.open(full, os.O_RDONLY)
            try:
                got = b""
                for off in range(0, e["size"] + 1, 1 << 16):  # the whole pass: the CRC-32 too
                    try:
                        got += os.pread(fd, 1 << 16, off)
                    except OSError as err:
                        check(err.errno == errno.EIO, "%s: errno %s, expected EIO" % (
                            name, errno.errorcode.get(err.errno)))
                        break
                else:
                    raise H.Failure("%s: read to the end without error" % name)
                check(want.startswith(got), name + ": bytes before the error differ")
            finally:
                os.close(fd)
            H.wait_requests_done(m)
            lines = [x for x in mount.stderr().splitlines() if x.startswith("archfs: %s: " % name)]
            check(len(lines) == logged + 1, "%s: %d log lines for one open file's reads, expected 1: %s" % (
                name, len(lines) - logged, lines))
        check(H.is_mounted(m), "the mount is gone")


def backup_entries(kinds, db_size=300 << 10):
    """The entries of an application backup (manifest, settings, db.sqlite,
    uploads), with the methods kinds names ({entry name: kind}; deflate
    otherwise), and a file that is no part of the backup.  Returns (entries,
    source dir with db.sqlite)."""
    src = tempfile.mkdtemp(prefix="src-", dir=H.WORK)
    db = os.path.join(src, "db.sqlite")
    H.mkarchive.make_sqlite(db, db_size)
    files = {
        "manifest.json": json.dumps({"alembic_revision": "a1b2c3d4e5f6", "app_version": "1.0",
                                     "created_at": "2026-11-20T10:15:02", "db_type": "sqlite"},
                                    indent=2, sort_keys=True).encode(),
        "settings.json": b'{"company": "ACME"}',
        "db.sqlite": open(db, "rb").read(),
        "uploads/logos/logo.png": random.Random(1).randbytes(150000),
        "uploads/notes/a.txt": b"an attachment\n" * 5000,
        "extra/readme.txt": b"not part of a backup\n",
    }
    return [(n, d, kinds.get(n, "deflate")) for n, d in files.items()], src


def t_methods_restore_through_libzip():
    """A backup whose database and uploads are bzip2: restored exactly; and
    an encrypted entry outside the backup's files does not stop it."""
    entries, src = backup_entries({"db.sqlite": "bzip2", "uploads/logos/logo.png": "bzip2",
                                   "extra/readme.txt": "zipcrypto"})
    archive, _ = methods_archive(entries, "bz-backup")
    live = R.Live()
    s = R.restore_and_wait(archive, live)
    check(s["state"] == "done", "restore: %s %s" % (s["state"], s["error"]))
    check(R.db_dump(live.db) == R.db_dump(os.path.join(src, "db.sqlite")), "the database is not the archive's")
    check(open(os.path.join(live.uploads, "logos/logo.png"), "rb").read() == entries[3][1],
          "uploads/logos/logo.png differs")
    check(open(os.path.join(live.uploads, "notes/a.txt"), "rb").read() == entries[4][1], "uploads/notes/a.txt differs")


def t_methods_restore_lzma_xz_zstd():
    """A backup whose database is LZMA and whose uploads are XZ and zstd
    (libzip on Debian 12 decodes none of them): verify passes, the restore
    gives the archive's bytes."""
    entries, src = backup_entries({"db.sqlite": "lzma", "uploads/logos/logo.png": "xz",
                                   "uploads/notes/a.txt": "zstd", "settings.json": "zstd"})
    archive, info = methods_archive(entries, "x-backup")
    check(info["db.sqlite"]["method"] == "lzma", "db.sqlite is not LZMA")
    r = subprocess.run([H.ARCHFS, "verify", archive], capture_output=True, text=True, timeout=120)
    check(r.returncode == 0, "archfs verify: %d %s" % (r.returncode, r.stderr))
    live = R.Live()
    s = R.restore_and_wait(archive, live)
    check(s["state"] == "done", "restore: %s %s" % (s["state"], s["error"]))
    check(R.db_dump(live.db) == R.db_dump(os.path.join(src, "db.sqlite")), "the database is not the archive's")
    check(open(os.path.join(live.uploads, "logos/logo.png"), "rb").read() == entries[3][1],
          "uploads/logos/logo.png differs")
    check(open(os.path.join(live.uploads, "notes/a.txt"), "rb").read() == entries[4][1], "uploads/notes/a.txt differs")


def t_methods_verify_refuses_undecodable():
    """Each file of the backup format in turn, undecodable: verify (through
    .control and the command line, with and without a target) and restore
    refuse it, naming the entry and the method or encryption; nothing
    changes."""
    supported = libzip_decodes()
    bad = "deflate64" if 9 not in supported else "method77"
    cases = [("db.sqlite", bad), ("uploads/notes/a.txt", "zipcrypto"), ("settings.json", "method77"),
             ("manifest.json", "zipcrypto")]
    for entry, kind in cases:
        entries, _ = backup_entries({entry: kind}, db_size=64 << 10)
        archive, info = methods_archive(entries, "bad-" + kind)
        what = "ZipCrypto" if kind == "zipcrypto" else "method %d" % M.KINDS[kind][0]
        live = R.Live()
        before = live.state()
        for command in ("verify", "restore"):
            s = R.restore_and_wait(archive, live, command=command)
            check(s["state"] == "failed" and entry in (s["error"] or "") and what in (s["error"] or ""),
                  "%s %s: %s %r" % (entry, command, s["state"], s["error"]))
            check(live.state() == before and live.snapshots() == [], "%s %s: the target changed" % (entry, command))
        r = subprocess.run([H.ARCHFS, "verify", archive], capture_output=True, text=True, timeout=120)
        check(r.returncode == 3 and entry in r.stderr and what in r.stderr,  # 3: the archive is bad
              "%s: archfs verify: %d %s" % (entry, r.returncode, r.stderr))
        r = subprocess.run([H.ARCHFS, "restore", archive, *live.opts()], capture_output=True, text=True, timeout=120)
        check(r.returncode == 3 and entry in r.stderr and what in r.stderr,
              "%s: archfs restore: %d %s" % (entry, r.returncode, r.stderr))
        check(live.state() == before and live.snapshots() == [], "%s: archfs restore changed the target" % entry)
