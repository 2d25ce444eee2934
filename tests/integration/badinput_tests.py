# SPDX-License-Identifier: MIT
"""Bad input, really mounted, verified and restored: the odd archives of
tests/fixtures/oddzips.py (no database, a manifest naming a database the
archive lacks, uploads that are fifos or devices, names hiding a NUL byte,
self-extracting archives) beside every fixture of mkarchive.py.

`archfs verify ARCHIVE` without a target must refuse exactly what `archfs
restore` refuses for the archive itself, with the same reason, and pass
what it restores; a refused restore leaves the target as it was."""
import os
import subprocess
import tempfile
import zipfile

import harness as H
from harness import Mount, check, compare_tree, fixture, mkarchive, refused
import oddzips  # noqa: E402 (harness puts tests/fixtures on the path)
from restore_tests import Live, corrupt_db_archive, tree

NO_DB = "the archive holds no database (neither db.sqlite nor db.dump)"
SPECIAL = "uploads/special in the archive is a special file (a device, fifo or socket): refusing to restore it"
NUL = "unsafe name (the name it states holds a NUL byte)"

# odd variant: (what refuses the mount, what refuses verify and restore); None: nothing does
ODD = {
    "nodb": (None, NO_DB),
    "empty-zip": (None, NO_DB),
    "dbtype-pg-holds-sqlite": (None, "the archive holds no database (db.dump is missing)"),
    "dbtype-sqlite-holds-dump": (None, "the archive holds no database (db.sqlite is missing)"),
    "db-is-dir": (None, "the archive holds no database (db.sqlite is missing)"),
    "bad-manifest": (None, "manifest.json is not a JSON object"),
    "fifo-upload": (None, SPECIAL),
    "chardev-upload": (None, SPECIAL),
    "socket-upload": (None, SPECIAL),
    "uploads-is-file": (None, None),
    "nul-name": ("entry 'uploads/evil.txt", NUL),
    "nul-unicode-path": ("entry 'uploads/plain-name.txt'", NUL),
    "sfx-raw": (None, None),
    "sfx-adjusted": (None, None),
    "sfx-zip64-raw": (None, None),
    "sfx-zip64-adjusted": (None, None),
}
assert sorted(ODD) == sorted(oddzips.ODD), "every odd archive has its expected outcome"

_odd = {}


def odd(variant):
    """(archive, source dir) of an odd variant, generated once per run."""
    if variant not in _odd:
        d = tempfile.mkdtemp(prefix="odd-%s-" % variant, dir=H.WORK)
        out, src = os.path.join(d, "backup.zip"), os.path.join(d, "src")
        oddzips.make_odd(out, src, variant)
        _odd[variant] = (out, src)
    return _odd[variant]


def no_target_env():
    return {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "UPLOAD_FOLDER")}


def archfs(*args):
    r = subprocess.run([H.ARCHFS, *args], capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
                       env=no_target_env())
    check(not any(s in r.stderr for s in H.SUSPICIOUS), "archfs %s: sanitizer report: %s" % (args[0], r.stderr[-2000:]))
    return r


def reason(r, command):
    """The one reason line of a refused command, without its prefix ("archfs:
    verify failed: " and "archfs: restore failed: " alike); None on success."""
    if r.returncode == 0:
        return None
    line = r.stderr.strip().splitlines()[-1] if r.stderr.strip() else ""
    check(line.startswith("archfs: "), "%s: no reason line: %r" % (command, r.stderr[-500:]))
    line = line[len("archfs: "):]
    return line[len(command + " failed: "):] if line.startswith(command + " failed: ") else line


class Target:
    """A live target that is not empty: Live's uploads tree and flag file,
    and its SQLite database or a PostgreSQL one."""

    def __init__(self, kind):
        self.live = Live()
        self.kind = kind
        if kind == "pg":
            import pg_tests as P  # a server is there: the caller checked
            self.pg = P
            self.db = P.new_db(3, 10, "old")
            self.database = P.url(self.db)
        else:
            self.database = "sqlite:///" + self.live.db

    def opts(self):
        lv = self.live
        return ["--database", self.database, "--uploads", lv.uploads, "--flag-file", lv.flag,
                "--snapshot-dir", lv.snapdir]

    def state(self):
        db = self.pg.content(self.db) if self.kind == "pg" else self.live.state()[0]
        return db, tree(self.live.uploads), os.listdir(self.live.snapdir), os.path.exists(self.live.flag)


def every_fixture():
    """(name, archive, kind of target) of every fixture: mkarchive's variants
    (the hostile ones too), a damaged SQLite database, the odd archives, and
    PostgreSQL archives (a dump that is no dump; a real one when a server
    is there)."""
    out = [(v, fixture(v)[0], "sqlite") for v in mkarchive.VARIANTS]
    out.append(("corrupt-db", corrupt_db_archive(), "sqlite"))
    out += [(v, odd(v)[0], "sqlite") for v in oddzips.ODD]
    out.append(("pg-junk-dump", fixture("app", db="postgresql")[0], "pg"))
    if os.environ.get("ARCHFS_PG_HOST"):
        import pg_tests as P
        out.append(("pg-real", P.pg_archive()[0], "pg"))
    return out


# ---------------------------------------------------------------- the tests

def t_odd_archives_mount_and_read():
    """Each odd archive: refused at mount with its reason, or mounted with
    every entry shown as the archive states it and every file's bytes
    readable (no errno), whatever its verify says."""
    for v, (mount_refusal, _) in ODD.items():
        a, src = odd(v)
        if mount_refusal:
            line = refused([a, "MNT"], v)
            check(a in line and mount_refusal in line and line.endswith(NUL), "%s: mount refused with %r" % (v, line))
            continue
        with Mount(a) as m:
            exp = compare_tree(m, a, src)
            with zipfile.ZipFile(a) as zf:
                for path, e in exp.items():
                    if e["type"] != "file":
                        continue
                    try:
                        with open(os.path.join(m, path), "rb") as f:
                            got = f.read()
                    except OSError as err:
                        raise H.Failure("%s: %s: errno %d on read" % (v, path, err.errno))
                    check(got == zf.read(path), "%s: %s: bytes differ from the archive's" % (v, path))


def t_self_extracting_archives_said_so():
    """An unadjusted stub is found and named in verify's log; an adjusted
    one (whose offsets are the file's) needs nothing."""
    for v, prefix in (("sfx-raw", True), ("sfx-zip64-raw", True), ("sfx-adjusted", False)):
        r = archfs("verify", odd(v)[0])
        check(r.returncode == 0, "%s: verify: %s" % (v, r.stderr[-800:]))
        said = "the archive starts after %d bytes of other data (a self-extracting stub)" % oddzips.STUB_LEN
        check((said in r.stderr) == prefix, "%s: verify's log: %s" % (v, r.stderr[-800:]))


def t_verify_says_what_restore_says():
    """Every fixture, side by side: `archfs verify A` (no target) and
    `archfs restore A` into a live target of the archive's kind both refuse
    with the same reason, or verify passes and the restore succeeds; a
    refused restore changes nothing (database, uploads, no snapshot, no
    flag file).  PostgreSQL archives need a server (ARCHFS_PG_HOST): without
    one they are skipped, and listed as skipped."""
    skipped = []
    for name, a, kind in every_fixture():
        if kind == "pg" and not os.environ.get("ARCHFS_PG_HOST"):
            skipped.append(name)
            continue
        v = archfs("verify", a)
        t = Target(kind)
        before = t.state()
        r = archfs("restore", a, *t.opts())
        why_v, why_r = reason(v, "verify"), reason(r, "restore")
        check(why_v == why_r, "%s: verify says %r, restore says %r" % (name, why_v, why_r))
        check(v.returncode == r.returncode, "%s: verify exits %d, restore %d" % (name, v.returncode, r.returncode))
        if name in ODD:
            want = ODD[name][1]
            check(why_v == want if want != NUL else why_v and why_v.endswith(NUL),
                  "%s: refused with %r, expected %r" % (name, why_v, want))
        if why_r is not None:
            check(t.state() == before, "%s: a refused restore changed the target" % name)
    if skipped:
        print("    skipped, no PostgreSQL test cluster (ARCHFS_PG_HOST unset): %s" % ", ".join(skipped), flush=True)
