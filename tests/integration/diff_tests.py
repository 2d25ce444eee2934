# SPDX-License-Identifier: MIT
"""Integration tests of `archfs diff`: two archives written by Python's
zipfile with a known set of changes, compared line for line (text and
--json), PATH, the directory form with names and `latest`, the exit
statuses, and that no entry's data is read."""
import json
import os
import shutil
import subprocess
import tempfile
import zipfile
import zlib

import harness as H
from harness import check

FILE, DIR, LINK = 0o100000, 0o040000, 0o120000
OLDN = "timetracker_backup_20261120_101502"
MIDN = "timetracker_backup_20261121_090000"
NEWN = "timetracker_backup_20261122_080000"

# name -> (data, st_mode); a name ending in '/' is a directory entry
OLD = {
    "manifest.json": (b'{\n  "db_type": "sqlite"\n}', FILE | 0o600),
    "db.sqlite": (b"SQLite format 3\0" + bytes(range(256)) * 64, FILE | 0o644),
    "uploads/same.png": (b"\x89PNG same" * 50, FILE | 0o644),
    "uploads/gone.txt": (b"removed", FILE | 0o644),
    "uploads/crc.txt": (b"aaaa", FILE | 0o644),
    "uploads/size.txt": (b"x", FILE | 0o644),
    "uploads/mode.sh": (b"#!/bin/sh\n", FILE | 0o644),
    "uploads/thing": (b"a file that becomes a directory", FILE | 0o644),
    "uploads/avatars/1.png": (b"one", FILE | 0o644),
    "uploads/avatars/2.png": (b"two", FILE | 0o644),
    "uploads/avatars-old/x.png": (b"x", FILE | 0o644),
    "uploads/new\nline.txt": (b"old", FILE | 0o644),
    "uploads/link": (b"same.png", LINK | 0o777),
    "uploads/l2": (b"same.png", FILE | 0o644),
    "uploads/gonedir/": (b"", DIR | 0o755),
}
NEW = {
    "manifest.json": OLD["manifest.json"],
    "db.sqlite": OLD["db.sqlite"],
    "uploads/same.png": OLD["uploads/same.png"],
    "uploads/crc.txt": (b"bbbb", FILE | 0o644),
    "uploads/size.txt": (b"xx", FILE | 0o644),
    "uploads/mode.sh": (b"#!/bin/sh\n", FILE | 0o755),
    "uploads/thing/inner.txt": (b"inside", FILE | 0o644),
    "uploads/avatars/1.png": (b"ONE", FILE | 0o644),
    "uploads/avatars/2.png": OLD["uploads/avatars/2.png"],
    "uploads/avatars-old/x.png": OLD["uploads/avatars-old/x.png"],
    "uploads/new\nline.txt": (b"new!", FILE | 0o644),
    "uploads/with space.txt": (b"s", FILE | 0o644),
    "uploads/\u00fcn\u00efc\u00f8de \u65e5\u672c.txt": (b"u", FILE | 0o644),
    "uploads/tab\there": (b"t", FILE | 0o644),
    "uploads/bell\x07\x1b[1m": (b"b", FILE | 0o644),
    "uploads/csi\u009b1m del\x7f": (b"c", FILE | 0o644),
    "uploads/link": (b"2.png", LINK | 0o777),
    "uploads/l2": (b"same.png", LINK | 0o777),
    "uploads/emptydir/": (b"", DIR | 0o755),
}
# path -> (change, letter), sorted by the path's bytes
CHANGES = {
    "uploads/avatars/1.png": ("modified", "M"),
    "uploads/bell\u2022\u2190[1m": ("added", "A"),
    "uploads/csi\u009b1m del\x7f": ("added", "A"),
    "uploads/crc.txt": ("modified", "M"),
    "uploads/emptydir": ("added", "A"),
    "uploads/gone.txt": ("removed", "D"),
    "uploads/gonedir": ("removed", "D"),
    "uploads/l2": ("type_changed", "T"),
    "uploads/link": ("modified", "M"),
    "uploads/mode.sh": ("modified", "M"),
    "uploads/new\nline.txt": ("modified", "M"),
    "uploads/size.txt": ("modified", "M"),
    "uploads/tab\there": ("added", "A"),
    "uploads/thing": ("type_changed", "T"),
    "uploads/thing/inner.txt": ("added", "A"),
    "uploads/with space.txt": ("added", "A"),
    "uploads/\u00fcn\u00efc\u00f8de \u65e5\u672c.txt": ("added", "A"),
}


# libzip reads a name holding bytes below 0x20 (but tab, CR and LF) as
# CP437, whose glyphs stand for them: the mount shows it so, and so does diff
SHOWN = {"uploads/bell\x07\x1b[1m": "uploads/bell\u2022\u2190[1m"}
STORED = {v: k for k, v in SHOWN.items()}


def write_zip(path, entries, method=zipfile.ZIP_DEFLATED):
    with zipfile.ZipFile(path, "w", method) as zf:
        for name, (data, mode) in entries.items():
            zi = zipfile.ZipInfo(name, (2026, 11, 20, 10, 15, 2))
            zi.external_attr = mode << 16
            zi.compress_type = zipfile.ZIP_STORED if name.endswith("/") else method
            zf.writestr(zi, data)
    return path


def pair():
    d = tempfile.mkdtemp(prefix="diff-", dir=H.WORK)
    return write_zip(os.path.join(d, "old.zip"), OLD), write_zip(os.path.join(d, "new.zip"), NEW)


def escape(path):
    """The text form's escaping of a path (afs_log_escape), for valid UTF-8."""
    out = []
    for ch in path:
        if ch in "\n\r\t":
            out.append({"\n": "\\n", "\r": "\\r", "\t": "\\t"}[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7f:
            out.append("\\x%02x" % ord(ch))
        elif 0x80 <= ord(ch) <= 0x9f:
            out.append("".join("\\x%02x" % b for b in ch.encode()))
        else:
            out.append(ch)
    return "".join(out)


def run(*args, cli=False):
    """(exit status, stdout, stderr) of archfs diff ARGS (archfs-cli diff with cli)."""
    prog = os.path.join(os.path.dirname(H.ARCHFS), "archfs-cli") if cli else H.ARCHFS
    r = subprocess.run([prog, "diff", *args], capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
    err = r.stderr.decode("utf-8", "replace")
    check(not any(s in err for s in H.SUSPICIOUS), "sanitizer report: %s" % err)
    return r.returncode, r.stdout.decode("utf-8"), err


def expected_text(changes):
    return "".join("%s\t%s\n" % (letter, escape(p)) for p, (_, letter) in
                   sorted(changes.items(), key=lambda kv: kv[0].encode()))


def side(entries, path):
    """The JSON side {type, mode, size, crc32} of path in entries, or None."""
    path = STORED.get(path, path)
    if path + "/" in entries:
        return {"type": "directory", "mode": "0755", "size": 0, "crc32": "00000000"}
    if path not in entries:
        if any(n.startswith(path + "/") for n in entries):
            return {"type": "directory", "mode": "0755", "size": 0, "crc32": "00000000"}
        return None
    data, mode = entries[path]
    kind = {FILE: "file", LINK: "symlink", DIR: "directory"}[mode & 0o170000]
    return {"type": kind, "mode": "%04o" % (mode & 0o7777), "size": len(data),
            "crc32": "%08x" % (zipfile.crc32(data) & 0xffffffff)}


def one_error(rc, out, err, status, what):
    check(rc == status, "%s: exit status %d, expected %d (stderr %r)" % (what, rc, status, err))
    lines = err.strip("\n").split("\n")
    check(len(lines) == 1 and lines[0].startswith("archfs: ") and err.endswith("\n"), "%s: stderr %r" % (what, err))
    check(out == "", "%s: output %r" % (what, out))
    return lines[0]


def t_diff_lists_changes():
    old, new = pair()
    rc, out, err = run(old, new)
    check(rc == 1 and err == "", "exit status %d, stderr %r" % (rc, err))
    exp = expected_text(CHANGES)
    check(out == exp, "diff output:\n%s\nexpected:\n%s" % (out, exp))
    check(len(out.splitlines()) == len(CHANGES), "a path broke the one-line format")
    # archfs-cli diff says the same
    check(run(old, new, cli=True) == (1, exp, ""), "archfs-cli diff differs from archfs diff")
    # the other way round: added and removed swap, the rest stays
    swapped = {p: ({"added": "removed", "removed": "added"}.get(c, c), {"A": "D", "D": "A"}.get(l, l))
               for p, (c, l) in CHANGES.items()}
    rc, out, _ = run(new, old)
    check(rc == 1 and out == expected_text(swapped), "reversed diff:\n%s" % out)


def t_diff_json():
    old, new = pair()
    rc, out, err = run("--json", old, new)
    check(rc == 1 and err == "", "exit status %d, stderr %r" % (rc, err))
    lines = out.splitlines()
    objs = [json.loads(line) for line in lines]  # valid JSON, one object a line
    got, summary = objs[:-1], objs[-1]
    exp = [{"path": p, "change": c, "old": side(OLD, p) if c != "added" else None,
            "new": side(NEW, p) if c != "removed" else None}
           for p, (c, _) in sorted(CHANGES.items(), key=lambda kv: kv[0].encode())]
    for g, e in zip(got, exp):
        check(g == e, "json entry %r, expected %r" % (g, e))
    check(len(got) == len(exp), "%d entries, expected %d" % (len(got), len(exp)))
    counts = {k: sum(1 for c, _ in CHANGES.values() if c == k) for k in ("added", "removed", "modified", "type_changed")}
    check(summary == {"summary": counts}, "summary %r, expected %r" % (summary, counts))
    # options may come anywhere before --
    check(run(old, new, "--json") == (1, out, ""), "--json after the archives differs")
    check(run("--json", old, new, cli=True) == (1, out, ""), "archfs-cli diff --json differs")


def t_diff_identical_archives():
    old, _ = pair()
    copy = os.path.join(os.path.dirname(old), "copy.zip")
    shutil.copy(old, copy)
    check(run(old, old) == (0, "", ""), "an archive against itself: %r" % (run(old, old),))
    check(run(old, copy) == (0, "", ""), "an archive against its copy")
    # written again, stored instead of deflated: the same contents
    stored = write_zip(os.path.join(os.path.dirname(old), "stored.zip"), OLD, zipfile.ZIP_STORED)
    check(run(old, stored) == (0, "", ""), "the same entries stored rather than deflated differ")
    rc, out, err = run("--json", old, copy)
    check(rc == 0 and json.loads(out) == {"summary": {"added": 0, "removed": 0, "modified": 0, "type_changed": 0}}
          and len(out.splitlines()) == 1, "--json of identical archives: %d %r" % (rc, out))
    new = dict(OLD)
    new["uploads/gone.txt"] = (b"removes", FILE | 0o644)  # same size, another CRC-32
    new = write_zip(os.path.join(os.path.dirname(old), "crc.zip"), new)
    check(run(old, new) == (1, "M\tuploads/gone.txt\n", ""), "a CRC-32 change alone: %r" % (run(old, new),))


def t_diff_path_filter():
    old, new = pair()

    def only(prefix):
        return {p: v for p, v in CHANGES.items() if p == prefix or p.startswith(prefix + "/")}

    for arg, prefix in (("uploads/avatars", "uploads/avatars"), ("uploads/avatars/", "uploads/avatars"),
                        ("/uploads/avatars", "uploads/avatars"), ("uploads/thing", "uploads/thing"),
                        ("uploads/crc.txt", "uploads/crc.txt"), ("uploads/new\nline.txt", "uploads/new\nline.txt")):
        rc, out, err = run(old, new, arg)
        check(rc == 1 and out == expected_text(only(prefix)) and err == "", "PATH %r: %d %r %r" % (arg, rc, out, err))
    for arg in (".", "/"):
        check(run(old, new, arg) == (1, expected_text(CHANGES), ""), "PATH %r is not everything" % arg)
    # within scope and nothing changed; a path in one archive only
    check(run(old, new, "uploads/avatars-old") == (0, "", ""), "an unchanged directory")
    check(run(old, new, "manifest.json") == (0, "", ""), "an unchanged file")
    check(run(old, new, "uploads/gone.txt") == (1, "D\tuploads/gone.txt\n", ""), "a removed file as PATH")
    check(run(old, new, "uploads/emptydir") == (1, "A\tuploads/emptydir\n", ""), "an added directory as PATH")
    # uploads/avatars does not take in uploads/avatars-old
    rc, out, _ = run(old, new, "uploads/avatars")
    check("avatars-old" not in out, "uploads/avatars took in uploads/avatars-old")
    line = one_error(*run(old, new, "uploads/nosuch"), 2, "a PATH in neither archive")
    check("uploads/nosuch" in line, "the error does not name the PATH: %r" % line)


def backups(d=None):
    d = d or tempfile.mkdtemp(prefix="backups-", dir=H.WORK)
    write_zip(os.path.join(d, OLDN + ".zip"), OLD)
    mid = dict(OLD)
    mid["uploads/mid.txt"] = (b"mid", FILE | 0o644)
    write_zip(os.path.join(d, MIDN + ".zip"), mid)
    write_zip(os.path.join(d, NEWN + ".zip"), NEW)
    # the newest by its name has the oldest mtime; a copy made later without a timestamp
    os.utime(os.path.join(d, NEWN + ".zip"), (1500000000, 1500000000))
    write_zip(os.path.join(d, "manual-copy.zip"), mid)
    with open(os.path.join(d, "notes.txt"), "w") as f:
        f.write("not an archive\n")
    write_zip(os.path.join(d, ".hidden.zip"), NEW)
    return d


def t_diff_backup_dir_names_and_latest():
    d = backups()
    exp = expected_text(CHANGES)
    for old, new in ((OLDN, "latest"), (OLDN + ".zip", NEWN), (OLDN, NEWN + ".zip")):
        rc, out, err = run(d, old, new)
        check(rc == 1 and out == exp and err == "", "%s %s: %d %r %r" % (old, new, rc, out, err))
    check(run(d, NEWN, "latest") == (0, "", ""), "latest is not %s" % NEWN)
    check(run(d, MIDN, OLDN) == (1, "D\tuploads/mid.txt\n", ""), "%s against %s" % (MIDN, OLDN))
    check(run(d, "manual-copy", MIDN) == (0, "", ""), "an archive named without a timestamp")
    check(run("--json", d, OLDN, "latest", "uploads/avatars")[1].startswith(
        '{"path":"uploads/avatars/1.png","change":"modified"'), "--json and PATH in the directory form")
    check(run(d, OLDN, "latest", "uploads/crc.txt") == (1, "M\tuploads/crc.txt\n", ""), "PATH in the directory form")
    check(run(d, OLDN, "latest", cli=True) == (1, exp, ""), "archfs-cli in the directory form")
    # a newer archive appears: latest follows it
    later = "timetracker_backup_20261123_070000"
    write_zip(os.path.join(d, later + ".zip"), OLD)
    check(run(d, OLDN, "latest") == (0, "", ""), "latest does not follow the newest archive")
    # names the mount does not show
    for name in ("nosuch", "notes.txt", "notes", ".hidden", ".hidden.zip", "../" + OLDN, "latest.zip", ""):
        line = one_error(*run(d, name, OLDN), 3, "name %r" % name)
        check("no backup named" in line, "name %r: %r" % (name, line))
    empty = tempfile.mkdtemp(prefix="nobackups-", dir=H.WORK)
    one_error(*run(empty, "latest", "latest"), 3, "latest of an empty directory")
    one_error(*run(d, OLDN), 2, "a directory and one name")
    # a latest.zip is not shown by the mount: `latest` is still the newest
    write_zip(os.path.join(d, "latest.zip"), NEW)
    check(run(d, later, "latest") == (0, "", ""), "latest.zip was taken for latest")


def t_diff_exit_statuses():
    old, new = pair()
    work = os.path.dirname(old)
    notzip = os.path.join(work, "notzip.zip")
    with open(notzip, "wb") as f:
        f.write(b"not a zip at all" * 100)
    hostile = os.path.join(work, "hostile.zip")
    with zipfile.ZipFile(hostile, "w") as zf:
        zf.writestr("uploads/ok.txt", b"ok")
        zf.writestr("../../etc/evil", b"x")
    clash = os.path.join(work, "clash.zip")
    with zipfile.ZipFile(clash, "w") as zf:
        zf.writestr("uploads/a", b"1")
        zf.writestr("uploads/a/b", b"2")  # uploads/a both a file and a directory
    truncated = os.path.join(work, "truncated.zip")
    with open(old, "rb") as f, open(truncated, "wb") as g:
        g.write(f.read()[:-30])
    for what, a, b in (("not a zip", notzip, new), ("not a zip, new", old, notzip), ("missing", old, work + "/nosuch.zip"),
                       ("hostile name", hostile, new), ("clashing names", old, clash), ("truncated", truncated, new),
                       ("a directory as NEW", old, work)):
        line = one_error(*run(a, b), 3, what)
        check(os.path.basename(a if a in (notzip, hostile, truncated) else b) in line, "%s: %r" % (what, line))
    for what, args in (("nothing", []), ("one archive", [old]), ("unknown option", ["-x", old, new]),
                       ("a mount option", ["-o", "allow_other", old, new]), ("--database", ["--database", "x", old, new]),
                       ("--seek-cache=1", ["--seek-cache=1", old, new]), ("too many", [old, new, "a", "b", "c"]),
                       ("four, first not a directory", [old, new, "a", "b"])):
        one_error(*run(*args), 2, what)
    line = one_error(*run("--database=postgresql://u:secret@localhost/db", old, new), 2, "--database=URL")
    check("secret" not in line and "'--database'" in line, "--database=URL: %r" % line)
    # -- ends the options: a PATH that starts with '-'
    check(run(old, new, "--", "-x") == (2, "", "archfs: diff: '-x' is in neither archive\n"), "-- then -x")
    rc, out, _ = run("--help")
    check(rc == 0 and "archfs diff" in out, "diff --help: %d %r" % (rc, out))
    check(run(old, new)[0] == 1 and run(old, old)[0] == 0, "exit statuses 1 and 0")


def corrupt_data(src, dst):
    """A copy of src with every entry's compressed data overwritten by bytes
    that are no deflate stream (0xff: a block of the reserved type) and its
    central directory intact."""
    shutil.copy(src, dst)
    with zipfile.ZipFile(src) as zf, open(dst, "r+b") as f:
        for zi in zf.infolist():
            f.seek(zi.header_offset + 26)
            n, m = int.from_bytes(f.read(2), "little"), int.from_bytes(f.read(2), "little")
            f.seek(zi.header_offset + 30 + n + m)
            f.write(b"\xff" * zi.compress_size)
    return dst


def t_diff_reads_no_entry_data():
    old, new = pair()
    bad_old = corrupt_data(old, os.path.join(os.path.dirname(old), "bad-old.zip"))
    bad_new = corrupt_data(new, os.path.join(os.path.dirname(old), "bad-new.zip"))
    with zipfile.ZipFile(bad_new) as zf:  # the data is really broken
        try:
            broken = zf.testzip() is not None
        except zlib.error:
            broken = True
        check(broken, "the corrupted archive reads fine")
    r = subprocess.run([H.ARCHFS, "verify", bad_new], capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
    check(r.returncode != 0, "verify passes the corrupted archive")
    exp = expected_text(CHANGES)
    check(run(bad_old, bad_new) == (1, exp, ""), "diff of archives with broken data: %r" % (run(bad_old, bad_new),))
    check(run(old, bad_old) == (0, "", ""), "broken data makes a difference: diff read it")
    check(run(bad_old, new) == (1, exp, ""), "broken old data")
